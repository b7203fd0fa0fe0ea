//! One observed response: when it was asked, what came back, which image
//! served it, and how a failure is classified. Pure: the runner fills these
//! in, the summary and the chart read them.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// What one request got.
///
/// `error` is `None` exactly when the request succeeded (a 2xx or 3xx
/// status). A response with an HTTP error status has both `status` and
/// `error`; a request that got no response head has no `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    /// When the request started, since the start of the run (a new
    /// connection's connect is part of the request).
    #[serde(rename = "t_ms", serialize_with = "millis")]
    pub t: Duration,
    /// The HTTP status, when a response head arrived.
    pub status: Option<u16>,
    /// From the request's start to the end of its body (or to the failure).
    #[serde(rename = "latency_ms", serialize_with = "millis")]
    pub latency: Duration,
    /// The image that served it (see [`crate::WatchConfig::image_header`]).
    pub image: Option<String>,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<FailureKind>,
}

impl Response {
    /// Whether the request succeeded.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// When the response was complete (or the request failed), since the
    /// start of the run.
    pub fn completed(&self) -> Duration {
        self.t + self.latency
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FailureKind {
    /// No connection, or the connection was refused, reset or closed before
    /// a response head arrived.
    #[serde(rename = "connect")]
    Connect,
    /// No complete response within the request timeout.
    #[serde(rename = "timeout")]
    Timeout,
    /// A 5xx status.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// A 4xx status.
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// Anything else: an HTTP protocol error, a body that could not be read,
    /// a 1xx status as the final answer.
    #[serde(rename = "other")]
    Other,
}

impl FailureKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Http5xx,
        FailureKind::Http4xx,
        FailureKind::Other,
    ];

    /// The kind's name in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Http5xx => "http_5xx",
            FailureKind::Http4xx => "http_4xx",
            FailureKind::Other => "other",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies a status: `None` for a success (2xx, 3xx), else the failure.
pub fn classify_status(status: u16) -> Option<FailureKind> {
    match status {
        200..=399 => None,
        400..=499 => Some(FailureKind::Http4xx),
        500..=599 => Some(FailureKind::Http5xx),
        _ => Some(FailureKind::Other),
    }
}

/// The marker before the image id on the lab's `/details.php` page.
const IMAGE_MARKER: &str = "Amazon Image Id:";

/// The image id on a page like the lab's `/details.php`
/// (`<b>Amazon Image Id:</b> webapp/1.0.0/1<hr>...`): the first word after
/// `Amazon Image Id:`, with HTML tags removed. `None` when the page has no
/// such line or nothing follows it.
pub fn image_from_body(body: &[u8]) -> Option<String> {
    let marker = IMAGE_MARKER.as_bytes();
    let start = body.windows(marker.len()).position(|window| window == marker)? + marker.len();
    // The rest of the line (the id never spans lines), at most 1 KiB of it.
    let rest = &body[start..body.len().min(start + 1024)];
    let rest = rest.split(|&byte| byte == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(rest);
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for character in text.chars() {
        match character {
            '<' => {
                in_tag = true;
                plain.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => plain.push(character),
            _ => {}
        }
    }
    plain.split_whitespace().next().map(str::to_owned)
}

fn millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_millis(duration.as_secs_f64() * 1000.0))
}

/// Milliseconds rounded to the microsecond, so JSON stays readable.
pub(crate) fn round_millis(millis: f64) -> f64 {
    (millis * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let table = [
            (200, None),
            (204, None),
            (301, None),
            (399, None),
            (400, Some(FailureKind::Http4xx)),
            (404, Some(FailureKind::Http4xx)),
            (500, Some(FailureKind::Http5xx)),
            (503, Some(FailureKind::Http5xx)),
            (101, Some(FailureKind::Other)),
            (600, Some(FailureKind::Other)),
        ];
        for (status, expected) in table {
            assert_eq!(classify_status(status), expected, "status {status}");
        }
    }

    #[test]
    fn the_image_is_read_from_the_details_page() {
        let page =
            b"<br><b>Amazon Image Id:</b> webapp/1.0.0/1<hr><b>Installed Packages:</b><br>adduser";
        assert_eq!(image_from_body(page).as_deref(), Some("webapp/1.0.0/1"));
        // A plain text line, and an id followed by a space.
        assert_eq!(
            image_from_body(b"Amazon Image Id: ami-0abc def\n").as_deref(),
            Some("ami-0abc")
        );
        // Tags around the id itself.
        assert_eq!(
            image_from_body(b"Amazon Image Id:<i>b/2.0.0/3</i>").as_deref(),
            Some("b/2.0.0/3")
        );
        // Nothing after the marker on its line, or no marker at all.
        assert_eq!(image_from_body(b"Amazon Image Id:</b>\nwebapp/1"), None);
        assert_eq!(image_from_body(b"<html>Welcome<html>"), None);
        assert_eq!(image_from_body(b""), None);
    }

    #[test]
    fn a_response_serializes_as_a_json_line_record() {
        let response = Response {
            t: Duration::from_micros(1_500_250),
            status: Some(503),
            latency: Duration::from_micros(2_125),
            image: None,
            error: Some(FailureKind::Http5xx),
        };
        let json = serde_json::to_string(&response).expect("serializable");
        assert_eq!(
            json,
            r#"{"t_ms":1500.25,"status":503,"latency_ms":2.125,"image":null,"error":"http_5xx"}"#
        );
        assert!(!response.is_success());
        assert_eq!(response.completed(), Duration::from_micros(1_502_375));
    }
}
