//! What a run does ([`WatchConfig`]), its errors, and the checked target
//! the runner connects to.

use std::time::Duration;

use http::header::HeaderName;
use http::uri::{Authority, PathAndQuery, Uri};

/// What to load and how hard.
///
/// [`WatchConfig::new`] gives the lab's watch script: one request a second,
/// sequential, for 60 s.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// An `http://` URL; `host:port/path` without a scheme means `http://`.
    pub url: String,
    /// Workers, each with its own keep-alive connection (at least 1).
    pub concurrency: usize,
    /// Requests per second over all workers (at least 1/3600); `None` sends each worker's next
    /// request as soon as its previous response is complete.
    pub rate: Option<f64>,
    /// Stop starting requests after this long; requests in flight then are
    /// still waited for (at most `timeout`).
    pub duration: Option<Duration>,
    /// Stop after this many requests (at least 1). With neither `duration`
    /// nor `requests`, the run lasts until the stop future resolves.
    pub requests: Option<u64>,
    /// Per request, including a new connection's connect and the body.
    pub timeout: Duration,
    /// The response header naming the image that served the response.
    pub image_header: String,
}

/// The slowest rate: one request an hour.
const MIN_RATE: f64 = 1.0 / 3600.0;

/// The header the shipped webapp component sets.
pub const DEFAULT_IMAGE_HEADER: &str = "X-Image-Id";

impl WatchConfig {
    /// The lab's defaults: one request a second, sequential, for 60 s, a 5 s
    /// timeout, the image from `X-Image-Id`.
    pub fn new(url: impl Into<String>) -> WatchConfig {
        WatchConfig {
            url: url.into(),
            concurrency: 1,
            rate: Some(1.0),
            duration: Some(Duration::from_secs(60)),
            requests: None,
            timeout: Duration::from_secs(5),
            image_header: DEFAULT_IMAGE_HEADER.to_owned(),
        }
    }

    /// The error [`crate::run`] would fail with, without running: a caller
    /// checks the configuration before preparing anything for the run
    /// (files, say).
    pub fn check(&self) -> Result<(), WatchError> {
        Target::check(self).map(|_| ())
    }
}

/// Why a run could not start. Failed requests are not errors: they are
/// responses with a [`crate::FailureKind`].
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("unsupported url scheme {scheme:?} in {url:?}: only http:// is supported")]
    UnsupportedScheme { url: String, scheme: String },
    #[error("invalid port {port:?} in {url:?}: a port is a number from 1 to 65535")]
    InvalidPort { url: String, port: String },
    #[error("invalid image header name {name:?}")]
    InvalidImageHeader { name: String },
    #[error("invalid concurrency 0: at least one worker is needed")]
    NoConcurrency,
    #[error("invalid number of requests 0: at least one request is needed")]
    NoRequests,
    #[error("invalid rate {rate}: requests per second must be a number of at least 1/3600")]
    InvalidRate { rate: f64 },
    #[error("invalid timeout 0: a request needs some time")]
    NoTimeout,
}

/// A checked [`WatchConfig::url`].
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Where to connect: `host:port`.
    pub(crate) address: String,
    /// The `Host` header.
    pub(crate) authority: Authority,
    /// The request target (origin form).
    pub(crate) path_and_query: PathAndQuery,
    pub(crate) image_header: HeaderName,
}

impl Target {
    pub(crate) fn check(config: &WatchConfig) -> Result<Target, WatchError> {
        if config.concurrency == 0 {
            return Err(WatchError::NoConcurrency);
        }
        if config.requests == Some(0) {
            return Err(WatchError::NoRequests);
        }
        if let Some(rate) = config.rate
            && !(rate.is_finite() && rate >= MIN_RATE)
        {
            return Err(WatchError::InvalidRate { rate });
        }
        if config.timeout.is_zero() {
            return Err(WatchError::NoTimeout);
        }
        let image_header = HeaderName::from_bytes(config.image_header.as_bytes())
            .map_err(|_| WatchError::InvalidImageHeader { name: config.image_header.clone() })?;
        let url = config.url.trim();
        let invalid = |reason: &str| WatchError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let with_scheme =
            if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let uri: Uri = with_scheme
            .parse()
            .map_err(|error: http::uri::InvalidUri| invalid(&error.to_string().to_lowercase()))?;
        let scheme = uri.scheme_str().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(WatchError::UnsupportedScheme {
                url: url.to_owned(),
                scheme: scheme.to_owned(),
            });
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid("user information in urls is not supported"));
        }
        // Not `port_u16`: it is `None` for a port that does not fit 16 bits
        // as for no port at all, and such a port must not mean 80.
        let port = match &authority.as_str()[authority.host().len()..] {
            // No port, or an empty one (RFC 3986: the scheme's default).
            "" | ":" => 80,
            rest => {
                let text = rest.strip_prefix(':').unwrap_or(rest);
                let invalid_port =
                    || WatchError::InvalidPort { url: url.to_owned(), port: text.to_owned() };
                if !text.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(invalid_port());
                }
                match text.parse::<u16>() {
                    Ok(port) if port != 0 => port,
                    _ => return Err(invalid_port()),
                }
            }
        };
        // An IPv6 host keeps its brackets, as `ToSocketAddrs` wants.
        let address = format!("{}:{port}", authority.host());
        let path_and_query =
            uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        Ok(Target { address, authority, path_and_query, image_header })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, WatchError> {
        Target::check(&WatchConfig::new(url))
    }

    #[test]
    fn urls_are_checked() {
        let target = target("http://127.0.0.1:8080/details.php?x=1").expect("valid");
        assert_eq!(target.address, "127.0.0.1:8080");
        assert_eq!(target.authority.as_str(), "127.0.0.1:8080");
        assert_eq!(target.path_and_query.as_str(), "/details.php?x=1");

        // A load balancer's DNSName has no scheme.
        let target = self::target("127.0.0.1:41000").expect("valid");
        assert_eq!(
            (target.address.as_str(), target.path_and_query.as_str()),
            ("127.0.0.1:41000", "/")
        );
        let target = self::target("http://example.com").expect("valid");
        assert_eq!(target.address, "example.com:80");
        let target = self::target("http://[::1]:9000/").expect("valid");
        assert_eq!(target.address, "[::1]:9000");

        let refused = |url: &str| self::target(url).expect_err(url).to_string();
        assert_eq!(
            refused("https://example.com/"),
            "unsupported url scheme \"https\" in \"https://example.com/\": only http:// is supported"
        );
        assert!(refused("http://").starts_with("invalid url"), "{}", refused("http://"));
        assert!(refused("http://a b/").starts_with("invalid url"));
    }

    #[test]
    fn a_port_is_a_number_from_1_to_65535_and_never_silently_80() {
        for (url, address) in [
            ("http://127.0.0.1:65535/", "127.0.0.1:65535"),
            ("127.0.0.1:1", "127.0.0.1:1"),
            ("http://127.0.0.1:/", "127.0.0.1:80"),
            ("http://[::1]/", "[::1]:80"),
        ] {
            assert_eq!(target(url).expect(url).address, address, "{url}");
        }
        for (url, port) in [
            ("http://127.0.0.1:99999/", "99999"),
            ("http://127.0.0.1:70000/", "70000"),
            ("127.0.0.1:65536", "65536"),
            ("http://127.0.0.1:0/", "0"),
            ("http://[::1]:123456/", "123456"),
            ("http://127.0.0.1:+80/", "+80"),
        ] {
            let error = target(url).expect_err(url).to_string();
            assert_eq!(
                error,
                format!("invalid port {port:?} in {url:?}: a port is a number from 1 to 65535"),
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        let url = "http://127.0.0.1:1/";
        let check = |config: WatchConfig| config.check().map_err(|e| e.to_string());
        assert_eq!(
            check(WatchConfig { concurrency: 0, ..WatchConfig::new(url) }),
            Err("invalid concurrency 0: at least one worker is needed".to_owned())
        );
        assert_eq!(
            check(WatchConfig { requests: Some(0), ..WatchConfig::new(url) }),
            Err("invalid number of requests 0: at least one request is needed".to_owned())
        );
        assert_eq!(check(WatchConfig { requests: Some(1), ..WatchConfig::new(url) }), Ok(()));
        assert!(check(WatchConfig { rate: Some(0.0), ..WatchConfig::new(url) }).is_err());
        assert!(check(WatchConfig { rate: Some(f64::NAN), ..WatchConfig::new(url) }).is_err());
        assert!(check(WatchConfig { timeout: Duration::ZERO, ..WatchConfig::new(url) }).is_err());
        assert_eq!(
            check(WatchConfig { image_header: "bad header".into(), ..WatchConfig::new(url) }),
            Err("invalid image header name \"bad header\"".to_owned())
        );
        assert_eq!(
            check(WatchConfig { rate: None, concurrency: 8, ..WatchConfig::new(url) }),
            Ok(())
        );
    }
}
