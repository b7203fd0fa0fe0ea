//! A self-contained SVG timeline of a run, written by hand: x is seconds
//! since the start; stacked bars are successful responses per second by
//! image (one colour each, with a legend), failures per second are stacked
//! on top in red, and a line on a second axis is the p99 latency of each
//! second. Pure: a function of the responses.
//!
//! Each bar series is a `<g class="series" data-series="...">` (`image:NAME`
//! or `failures`), so tools and tests can find them.

use std::fmt::Write;
use std::time::Duration;

use crate::response::Response;
use crate::summary::{Second, UNKNOWN_IMAGE, summarize};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 110.0;
/// More seconds than this are grouped into wider bars (averaged per second).
const MAX_BARS: usize = 600;

const FAILURE_COLOUR: &str = "#d62728";
const UNKNOWN_COLOUR: &str = "#9e9e9e";
const LATENCY_COLOUR: &str = "#222222";
/// Okabe and Ito's colour-blind-safe palette, without its red.
const PALETTE: [&str; 7] =
    ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#f0e442", "#8c564b"];

/// One bar: a second (or a group of seconds when the run is long).
struct Bar {
    /// Per image (in the order of `images`), per second.
    images: Vec<f64>,
    failures: f64,
    p99_ms: Option<f64>,
}

/// The run's timeline as an SVG document.
pub fn svg(responses: &[Response]) -> String {
    let summary = summarize(responses, Duration::ZERO);
    let images: Vec<&str> = summary.images.iter().map(|i| i.image.as_str()).collect();
    let group = summary.timeline.len().div_ceil(MAX_BARS).max(1);
    let bars: Vec<Bar> =
        summary.timeline.chunks(group).map(|seconds| bar(seconds, &images)).collect();

    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let bottom = TOP + plot_height;
    let max_rate =
        bars.iter().map(|bar| bar.images.iter().sum::<f64>() + bar.failures).fold(0.0, f64::max);
    let rate_top = nice_ceiling(max_rate);
    let latency_top = nice_ceiling(bars.iter().filter_map(|bar| bar.p99_ms).fold(0.0, f64::max));
    let bar_step = plot_width / bars.len().max(1) as f64;
    let bar_width = if bar_step >= 3.0 { bar_step * 0.85 } else { bar_step };
    let y_rate = |value: f64| bottom - value / rate_top * plot_height;
    let y_latency = |value: f64| bottom - value / latency_top * plot_height;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ =
        writeln!(out, r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##);
    let title = format!(
        "autopatch watch: {} requests, {} failed, longest gap without a success {:.1} ms",
        summary.requests, summary.failures, summary.longest_gap.ms
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&title));
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(&title)
    );
    let subtitle = match summary.latency_ms.p99 {
        Some(p99) => format!("{:.1} requests/s, p99 latency {p99} ms", summary.rps),
        None => "no responses".to_owned(),
    };
    let _ = writeln!(
        out,
        r##"<text x="{}" y="44" text-anchor="middle" fill="#555555">{}</text>"##,
        WIDTH / 2.0,
        escape(&subtitle)
    );

    // Grid and axes.
    for tick in 0..=5 {
        let fraction = f64::from(tick) / 5.0;
        let y = bottom - fraction * plot_height;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/>"##,
            LEFT + plot_width
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            number(fraction * rate_top)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="start">{}</text>"#,
            LEFT + plot_width + 6.0,
            y + 4.0,
            number(fraction * latency_top)
        );
    }
    let seconds = (bars.len() * group) as f64;
    let x_step = nice_ceiling(seconds / 10.0).max(1.0);
    let mut tick = 0.0;
    while tick <= seconds {
        let x = LEFT + tick / seconds.max(1.0) * plot_width;
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333333"/>"##,
            bottom + 4.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 18.0,
            number(tick)
        );
        tick += x_step;
    }
    let _ = writeln!(
        out,
        r##"<path d="M{LEFT} {TOP} V{bottom:.1} H{:.1} V{TOP}" fill="none" stroke="#333333"/>"##,
        LEFT + plot_width
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the start</text>"#,
        LEFT + plot_width / 2.0,
        bottom + 38.0
    );
    let per = if group > 1 { format!(" (average of {group} s)") } else { String::new() };
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">responses per second{}</text>"#,
        TOP + plot_height / 2.0,
        escape(&per)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate({:.1} {:.1}) rotate(90)" text-anchor="middle">p99 latency (ms)</text>"#,
        WIDTH - 18.0,
        TOP + plot_height / 2.0
    );

    // Stacked bars: images bottom up in the order first seen, failures on top.
    let mut stacked = vec![0.0; bars.len()];
    let series = images
        .iter()
        .enumerate()
        .map(|(index, image)| {
            (format!("image:{image}"), colour(image, index), (*image).to_owned(), Some(index))
        })
        .chain([("failures".to_owned(), FAILURE_COLOUR.to_owned(), "failed".to_owned(), None)]);
    let mut legend = Vec::new();
    for (id, colour, label, image_index) in series {
        let _ = writeln!(
            out,
            r#"<g class="series" data-series="{}" fill="{colour}"><title>{}</title>"#,
            escape(&id),
            escape(&label)
        );
        for (index, bar) in bars.iter().enumerate() {
            let value = match image_index {
                Some(image_index) => bar.images[image_index],
                None => bar.failures,
            };
            if value <= 0.0 {
                continue;
            }
            let y_top = y_rate(stacked[index] + value);
            let height = y_rate(stacked[index]) - y_top;
            stacked[index] += value;
            let _ = writeln!(
                out,
                r#"<rect x="{:.2}" y="{y_top:.2}" width="{bar_width:.2}" height="{height:.2}"/>"#,
                LEFT + index as f64 * bar_step + (bar_step - bar_width) / 2.0
            );
        }
        out.push_str("</g>\n");
        legend.push((label, colour));
    }

    // The latency line, broken where a second had no response.
    let mut path = String::new();
    let mut drawing = false;
    for (index, bar) in bars.iter().enumerate() {
        match bar.p99_ms {
            Some(p99) => {
                let x = LEFT + (index as f64 + 0.5) * bar_step;
                let command = if drawing { 'L' } else { 'M' };
                let _ = write!(path, "{command}{x:.2} {:.2} ", y_latency(p99));
                drawing = true;
            }
            None => drawing = false,
        }
    }
    let _ = writeln!(
        out,
        r#"<path class="latency" d="{}" fill="none" stroke="{LATENCY_COLOUR}" stroke-width="1.5"><title>p99 latency per second (ms)</title></path>"#,
        path.trim_end()
    );

    // Legend, in one row under the x axis label.
    let mut x = LEFT;
    let y = HEIGHT - 28.0;
    for (label, colour) in &legend {
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 10.0,
            x + 16.0,
            escape(label)
        );
        x += 28.0 + 7.0 * label.chars().count() as f64;
    }
    let _ = writeln!(
        out,
        r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{LATENCY_COLOUR}" stroke-width="1.5"/><text x="{:.1}" y="{y:.1}">p99 latency (right axis)</text>"#,
        y - 4.0,
        x + 12.0,
        y - 4.0,
        x + 16.0
    );
    out.push_str("</svg>\n");
    out
}

fn bar(seconds: &[Second], images: &[&str]) -> Bar {
    let n = seconds.len() as f64;
    Bar {
        images: images
            .iter()
            .map(|image| {
                seconds.iter().map(|s| s.images.get(*image).copied().unwrap_or(0)).sum::<u64>()
                    as f64
                    / n
            })
            .collect(),
        failures: seconds.iter().map(|s| s.failures).sum::<u64>() as f64 / n,
        p99_ms: seconds.iter().filter_map(|s| s.p99_ms).reduce(f64::max),
    }
}

fn colour(image: &str, index: usize) -> String {
    if image == UNKNOWN_IMAGE {
        return UNKNOWN_COLOUR.to_owned();
    }
    match PALETTE.get(index) {
        Some(colour) => (*colour).to_owned(),
        // Past the palette: hues a golden angle apart, skipping the reds.
        None => format!("hsl({:.0}, 60%, 45%)", 30.0 + (index as f64 * 137.5) % 300.0),
    }
}

/// The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for 0).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= value * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A tick label: integers plainly, else up to two decimals.
fn number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(character),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::FailureKind;

    fn response(t_ms: u64, image: Option<&str>, error: Option<FailureKind>) -> Response {
        Response {
            t: Duration::from_millis(t_ms),
            status: if error.is_some() { Some(503) } else { Some(200) },
            latency: Duration::from_millis(5),
            image: image.map(str::to_owned),
            error,
        }
    }

    /// The series of a chart: (data-series, number of bars).
    fn series(svg: &str) -> Vec<(String, usize)> {
        let document = roxmltree::Document::parse(svg).expect("the chart is XML");
        document
            .descendants()
            .filter(|node| node.attribute("class") == Some("series"))
            .map(|node| {
                let bars = node.children().filter(|c| c.has_tag_name("rect")).count();
                (node.attribute("data-series").expect("a series name").to_owned(), bars)
            })
            .collect()
    }

    #[test]
    fn one_series_per_image_and_one_for_failures() {
        let responses = [
            response(0, Some("webapp/1.0.0/1"), None),
            response(1000, Some("webapp/1.0.0/1"), None),
            response(1000, None, Some(FailureKind::Http5xx)),
            response(2000, Some("webapp/1.0.0/2 <&>"), None),
            response(3000, None, None),
        ];
        let svg = svg(&responses);
        assert_eq!(
            series(&svg),
            [
                ("image:webapp/1.0.0/1".to_owned(), 2),
                ("image:webapp/1.0.0/2 <&>".to_owned(), 1),
                ("image:-".to_owned(), 1),
                ("failures".to_owned(), 1),
            ]
        );
        assert!(svg.contains("5 requests, 1 failed"), "{svg}");
        assert!(svg.contains("p99 latency (ms)"));
    }

    #[test]
    fn an_empty_run_is_still_a_chart() {
        assert_eq!(series(&svg(&[])), [("failures".to_owned(), 0)]);
    }

    #[test]
    fn long_runs_are_grouped_into_at_most_600_bars() {
        let responses: Vec<Response> =
            (0..1500).map(|second| response(second * 1000, Some("A"), None)).collect();
        let chart = svg(&responses);
        let bars = &series(&chart)[0];
        assert_eq!(bars.1, 500);
        assert!(chart.contains("(average of 3 s)"));
    }

    #[test]
    fn axis_tops_are_round() {
        let table = [(0.0, 1.0), (0.7, 1.0), (1.0, 1.0), (1.2, 2.0), (3.0, 5.0), (7.0, 10.0)];
        for (value, expected) in table {
            assert_eq!(nice_ceiling(value), expected, "{value}");
        }
        assert_eq!(nice_ceiling(480.0), 500.0);
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(100.0), "100");
    }
}
