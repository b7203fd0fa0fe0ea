//! `autopatch watch`: proof of zero downtime. It loads an HTTP URL over
//! keep-alive connections and records every response: its status, latency,
//! which image served it (a response header, else the lab's `/details.php`
//! line), and why it failed.
//!
//! - [`run`] is the async runner (`concurrency` workers, each with its own
//!   HTTP/1.1 connection, optionally paced by a total rate); it hands each
//!   [`Response`] to a sink as it arrives and returns an [`Outcome`].
//! - [`summarize`] and [`svg`] are pure functions of the responses: the
//!   [`Summary`] (failures by kind, the longest gap without a success,
//!   latency percentiles, which image answered when) and an SVG timeline.
//!
//! The CLI (`autopatch watch`) prints lines and writes the files; a benchmark
//! or another crate calls [`run`] in process. Only `http://` URLs are
//! supported.

#![forbid(unsafe_code)]

mod config;
mod response;
mod run;
mod summary;
mod svg;

pub use config::{DEFAULT_IMAGE_HEADER, WatchConfig, WatchError};
pub use response::{FailureKind, Response, classify_status, image_from_body};
pub use run::{Outcome, run};
pub use summary::{Gap, ImageCount, Latency, Second, Summary, UNKNOWN_IMAGE, summarize};
pub use svg::svg;
