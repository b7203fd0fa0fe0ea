//! Semantic versions as Image Builder uses them: `major.minor.patch`, three
//! non-negative integers, no pre-release or build suffix.

use std::fmt;
use std::str::FromStr;

/// A recipe or component version, `x.y.z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SemanticVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Why a string is not a semantic version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {text:?}: {reason}")]
pub struct VersionError {
    pub text: String,
    pub reason: &'static str,
}

impl SemanticVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> SemanticVersion {
        SemanticVersion { major, minor, patch }
    }
}

impl FromStr for SemanticVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<SemanticVersion, VersionError> {
        let error = |reason| VersionError { text: text.to_owned(), reason };
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() != 3 {
            return Err(error("expected three numbers separated by dots, like 1.0.0"));
        }
        let mut numbers = [0u32; 3];
        for (number, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error("each part must be a non-negative integer"));
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(error("a part must not have leading zeros"));
            }
            *number = part.parse().map_err(|_| error("a part is too large"))?;
        }
        Ok(SemanticVersion::new(numbers[0], numbers[1], numbers[2]))
    }
}

impl fmt::Display for SemanticVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let a: SemanticVersion = "1.2.10".parse().unwrap();
        let b: SemanticVersion = "1.10.0".parse().unwrap();
        assert_eq!(a.to_string(), "1.2.10");
        assert!(a < b, "versions order numerically, not as text");
    }

    #[test]
    fn rejects_malformed() {
        for (text, reason) in [
            ("1.0", "expected three numbers separated by dots, like 1.0.0"),
            ("1.0.0.0", "expected three numbers separated by dots, like 1.0.0"),
            ("1.a.0", "each part must be a non-negative integer"),
            ("1.-1.0", "each part must be a non-negative integer"),
            ("01.0.0", "a part must not have leading zeros"),
            ("1..0", "each part must be a non-negative integer"),
            ("99999999999.0.0", "a part is too large"),
        ] {
            let error = text.parse::<SemanticVersion>().unwrap_err();
            assert_eq!(error.reason, reason, "for {text:?}");
        }
    }
}
