//! Target group health-check settings with AWS's names, defaults and limits.
//!
//! Defaults are those of an HTTP target group in the ELBv2 API reference
//! (CreateTargetGroup): path `/`, port `traffic-port`, interval 30 s, healthy
//! threshold 5, unhealthy threshold 2, matcher `200`. The timeout default is
//! 6 s: the current API reference gives 6 s for HTTP target groups (older
//! pages and some SDKs still say 5 s).
//!
//! Design note: AWS's lower bound on the interval (5 s) is not enforced,
//! because local templates use intervals of a second or two; thresholds keep
//! AWS's range 2-10 and the timeout must not exceed the interval.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// Where health checks connect: the target's own traffic port or a fixed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckPort {
    /// `traffic-port`: the port the target receives traffic on.
    TrafficPort,
    /// A fixed port on the target's address.
    Port(u16),
}

impl HealthCheckPort {
    /// Parses `HealthCheckPort` as CloudFormation spells it: `traffic-port` or a number.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        if text == "traffic-port" {
            return Ok(Self::TrafficPort);
        }
        match text.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Self::Port(port)),
            _ => Err(SettingsError::InvalidPort { text: text.to_owned() }),
        }
    }
}

impl fmt::Display for HealthCheckPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TrafficPort => f.write_str("traffic-port"),
            Self::Port(port) => write!(f, "{port}"),
        }
    }
}

/// The HTTP codes that count as a passing check (`Matcher.HttpCode`):
/// `200`, `200-299`, `200,302` or a mix such as `200,300-399`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    text: String,
    ranges: Vec<RangeInclusive<u16>>,
}

impl Matcher {
    /// Parses a matcher; codes must be within 200-499 as for ALB HTTP target groups.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let invalid = || SettingsError::InvalidMatcher { text: text.to_owned() };
        let code = |part: &str| -> Result<u16, SettingsError> {
            let code: u16 = part.trim().parse().map_err(|_| invalid())?;
            if (200..=499).contains(&code) { Ok(code) } else { Err(invalid()) }
        };
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let range = match part.split_once('-') {
                Some((low, high)) => code(low)?..=code(high)?,
                None => {
                    let single = code(part)?;
                    single..=single
                }
            };
            if range.is_empty() {
                return Err(invalid());
            }
            ranges.push(range);
        }
        Ok(Self { text: text.to_owned(), ranges })
    }

    /// Whether `status` is one of the matcher's codes.
    pub fn matches(&self, status: u16) -> bool {
        self.ranges.iter().any(|range| range.contains(&status))
    }

    /// The matcher as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Default for Matcher {
    fn default() -> Self {
        Self { text: "200".to_owned(), ranges: vec![200..=200] }
    }
}

/// A target group's health-check settings (`HealthCheck*` properties and `Matcher`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// `HealthCheckPath`; must start with `/`.
    pub path: String,
    /// `HealthCheckPort`.
    pub port: HealthCheckPort,
    /// `HealthCheckIntervalSeconds`: time between the starts of two checks of one target.
    pub interval: Duration,
    /// `HealthCheckTimeoutSeconds`: a check without a response by then fails.
    pub timeout: Duration,
    /// `HealthyThresholdCount`: consecutive passes before a target is healthy.
    pub healthy_threshold: u32,
    /// `UnhealthyThresholdCount`: consecutive failures before a target is unhealthy.
    pub unhealthy_threshold: u32,
    /// `Matcher.HttpCode`.
    pub matcher: Matcher,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        Self {
            path: "/".to_owned(),
            port: HealthCheckPort::TrafficPort,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(6),
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: Matcher::default(),
        }
    }
}

impl HealthCheckSettings {
    /// Checks the settings against AWS's limits (see the module notes for the one relaxed bound).
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !self.path.starts_with('/') {
            return Err(SettingsError::InvalidPath { path: self.path.clone() });
        }
        for (name, value) in [
            ("HealthyThresholdCount", self.healthy_threshold),
            ("UnhealthyThresholdCount", self.unhealthy_threshold),
        ] {
            if !(2..=10).contains(&value) {
                return Err(SettingsError::ThresholdOutOfRange { name, value });
            }
        }
        if self.interval.is_zero() || self.timeout.is_zero() || self.timeout > self.interval {
            return Err(SettingsError::TimeoutNotBelowInterval {
                timeout: self.timeout,
                interval: self.interval,
            });
        }
        Ok(())
    }
}

/// Invalid health-check settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `HealthCheckPort` is neither `traffic-port` nor a port number.
    #[error("parse health check port {text:?}: expected traffic-port or 1-65535")]
    InvalidPort { text: String },
    /// `Matcher.HttpCode` is not a list of codes or ranges within 200-499.
    #[error("parse matcher {text:?}: expected codes 200-499 such as 200, 200-299 or 200,302")]
    InvalidMatcher { text: String },
    /// `HealthCheckPath` does not start with `/`.
    #[error("use health check path {path:?}: it must start with /")]
    InvalidPath { path: String },
    /// A threshold outside 2-10.
    #[error("use {name} {value}: the range is 2-10")]
    ThresholdOutOfRange { name: &'static str, value: u32 },
    /// The timeout is zero or longer than the interval.
    #[error(
        "use health check timeout {timeout:?} with interval {interval:?}: both must be positive and the timeout at most the interval"
    )]
    TimeoutNotBelowInterval { timeout: Duration, interval: Duration },
}
