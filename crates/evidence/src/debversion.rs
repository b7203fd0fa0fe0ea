//! Debian package versions: parsing per Debian Policy 5.6.12 and ordering exactly like dpkg.
//!
//! A version is `[epoch:]upstream_version[-debian_revision]`.
//! The epoch is everything before the first colon, the revision everything after the last hyphen.
//! Comparison follows dpkg's `verrevcmp` (lib/dpkg/version.c): epochs numerically, then upstream,
//! then revision, each compared as alternating runs of non-digits (letters before non-letters, `~`
//! before everything, even the end of the string) and digits (numerically).
//!
//! Design notes:
//! - `Eq` agrees with `Ord`, as `BTreeMap` and sorting need: `1.0` equals `0:1.0` and `1.0-0`
//!   even though their texts differ. Compare [`DebianVersion::as_str`] for textual identity.
//!   There is no `Hash`, because a hash consistent with that equality would need a normal form
//!   that dpkg does not define.
//! - Policy says the upstream version "should" start with a digit; dpkg only warns, so we accept
//!   it. Everything the policy says "must" is enforced.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A parsed Debian version. `Display` gives back the original text.
#[derive(Debug, Clone)]
pub struct DebianVersion {
    original: String,
    epoch: u32,
    upstream: String,
    revision: String,
}

/// Why a text is not a valid Debian version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid debian version `{version}`: {kind}")]
pub struct DebianVersionError {
    /// The text that failed to parse.
    pub version: String,
    /// What is wrong with it.
    pub kind: DebianVersionErrorKind,
}

/// The ways a Debian version can be invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebianVersionErrorKind {
    #[error("version is empty")]
    Empty,
    #[error("version contains whitespace")]
    Whitespace,
    #[error("epoch `{epoch}` is not a number")]
    EpochNotNumber { epoch: String },
    #[error("epoch `{epoch}` is too large")]
    EpochTooLarge { epoch: String },
    #[error("upstream version is empty")]
    EmptyUpstream,
    #[error("revision is empty after the last hyphen")]
    EmptyRevision,
    #[error("character `{character}` is not allowed in the upstream version")]
    InvalidUpstreamCharacter { character: char },
    #[error("character `{character}` is not allowed in the revision")]
    InvalidRevisionCharacter { character: char },
}

impl DebianVersion {
    /// Parses `[epoch:]upstream[-revision]`.
    pub fn parse(text: &str) -> Result<DebianVersion, DebianVersionError> {
        let error = |kind| DebianVersionError { version: text.to_owned(), kind };
        if text.is_empty() {
            return Err(error(DebianVersionErrorKind::Empty));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(error(DebianVersionErrorKind::Whitespace));
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((epoch_text, rest)) => {
                if epoch_text.is_empty() || !epoch_text.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(error(DebianVersionErrorKind::EpochNotNumber {
                        epoch: epoch_text.to_owned(),
                    }));
                }
                // dpkg limits epochs to INT_MAX.
                let epoch = epoch_text
                    .parse::<u32>()
                    .ok()
                    .filter(|epoch| i32::try_from(*epoch).is_ok())
                    .ok_or_else(|| {
                        error(DebianVersionErrorKind::EpochTooLarge {
                            epoch: epoch_text.to_owned(),
                        })
                    })?;
                (epoch, rest)
            }
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((_, "")) => return Err(error(DebianVersionErrorKind::EmptyRevision)),
            Some((upstream, revision)) => (upstream, revision),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(error(DebianVersionErrorKind::EmptyUpstream));
        }
        if let Some(character) =
            upstream.chars().find(|c| !(c.is_ascii_alphanumeric() || ".+~-".contains(*c)))
        {
            return Err(error(DebianVersionErrorKind::InvalidUpstreamCharacter { character }));
        }
        if let Some(character) =
            revision.chars().find(|c| !(c.is_ascii_alphanumeric() || ".+~".contains(*c)))
        {
            return Err(error(DebianVersionErrorKind::InvalidRevisionCharacter { character }));
        }
        Ok(DebianVersion {
            original: text.to_owned(),
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }

    /// The original text, as parsed.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The epoch; 0 when the text has none.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream version, without epoch and revision.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision; empty when the text has no hyphen (a native package).
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

impl fmt::Display for DebianVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl FromStr for DebianVersion {
    type Err = DebianVersionError;

    fn from_str(text: &str) -> Result<DebianVersion, DebianVersionError> {
        DebianVersion::parse(text)
    }
}

impl Ord for DebianVersion {
    fn cmp(&self, other: &DebianVersion) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for DebianVersion {
    fn partial_cmp(&self, other: &DebianVersion) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebianVersion {
    fn eq(&self, other: &DebianVersion) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebianVersion {}

/// The weight of one character in a non-digit run, as dpkg's `order()`.
/// The end of a run (a digit or the end of the string) weighs 0.
fn order(byte: Option<u8>) -> i32 {
    match byte {
        None => 0,
        Some(byte) if byte.is_ascii_digit() => 0,
        Some(byte) if byte.is_ascii_alphabetic() => i32::from(byte),
        Some(b'~') => -1,
        Some(byte) => i32::from(byte) + 256,
    }
}

/// dpkg's `verrevcmp`, over one part (upstream or revision).
fn verrevcmp(left: &str, right: &str) -> Ordering {
    let left = left.as_bytes();
    let right = right.as_bytes();
    let at = |text: &[u8], index: usize| text.get(index).copied();
    let is_digit = |byte: Option<u8>| byte.is_some_and(|byte| byte.is_ascii_digit());
    let (mut left_index, mut right_index) = (0, 0);
    while left_index < left.len() || right_index < right.len() {
        // Non-digit run: compare character weights until both sides reach a digit or the end.
        while (left_index < left.len() && !is_digit(at(left, left_index)))
            || (right_index < right.len() && !is_digit(at(right, right_index)))
        {
            let left_order = order(at(left, left_index));
            let right_order = order(at(right, right_index));
            if left_order != right_order {
                return left_order.cmp(&right_order);
            }
            // Each side stops advancing at its own end or digit, as the weights there are 0.
            if left_index < left.len() && !is_digit(at(left, left_index)) {
                left_index += 1;
            }
            if right_index < right.len() && !is_digit(at(right, right_index)) {
                right_index += 1;
            }
        }
        // Digit run: skip leading zeros, then the longer number wins, else the first difference.
        while at(left, left_index) == Some(b'0') {
            left_index += 1;
        }
        while at(right, right_index) == Some(b'0') {
            right_index += 1;
        }
        let mut first_difference = Ordering::Equal;
        while is_digit(at(left, left_index)) && is_digit(at(right, right_index)) {
            if first_difference == Ordering::Equal {
                first_difference = left[left_index].cmp(&right[right_index]);
            }
            left_index += 1;
            right_index += 1;
        }
        if is_digit(at(left, left_index)) {
            return Ordering::Greater;
        }
        if is_digit(at(right, right_index)) {
            return Ordering::Less;
        }
        if first_difference != Ordering::Equal {
            return first_difference;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> DebianVersion {
        DebianVersion::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Pairs with `left < right`, checked both ways.
    const LESS: &[(&str, &str)] = &[
        ("1.0~rc1", "1.0"),
        ("2.0", "1:0.1"),
        ("2.36-9+deb12u4", "2.36-9+deb12u10"),
        ("1.0-1", "1.0-1+b1"),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
        ("a~~", "a~"),
        ("a~", "a"),
        ("a", "a+"),
        ("1.0~", "1.0"),
        ("1.0", "1.0.1"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0+"),
        ("1.0+", "1.0."),
        ("1.9", "1.10"),
        ("1.0-1", "1.0-2"),
        ("1.0-9", "1.0-10"),
        ("3.0.17-1~deb12u3", "3.0.17-1"),
        ("3.0.19-1~deb12u1", "3.0.19-1~deb12u2"),
        ("2026b-0+deb12u1", "2026f-0+deb12u1"),
        ("10.42-1", "10.42-1+deb12u2"),
        ("2.6.1", "2.6.2"),
        ("1:1.2.13.dfsg-1", "2:0"),
        ("1.2.3-1", "1.2.3-a"),
        ("0.1", "0.1-0.1"),
        ("252.36-1~deb12u1", "252.38-1~deb12u1"),
        ("1.34+dfsg-1.2", "1.34+dfsg-1.2+deb12u1"),
        ("1.0~~rc1", "1.0~rc1"),
        ("1.0-1~bpo1", "1.0-1"),
    ];

    /// Pairs that dpkg considers equal although the texts differ.
    const EQUAL: &[(&str, &str)] =
        &[("1.0", "0:1.0"), ("1.0", "1.0-0"), ("1.00", "1.0"), ("1.0", "1."), ("01", "1")];

    #[test]
    fn table_of_known_pairs() {
        for (left, right) in LESS {
            assert_eq!(version(left).cmp(&version(right)), Ordering::Less, "{left} < {right}");
            assert_eq!(version(right).cmp(&version(left)), Ordering::Greater, "{right} > {left}");
        }
        for (left, right) in EQUAL {
            assert_eq!(version(left).cmp(&version(right)), Ordering::Equal, "{left} = {right}");
            assert_eq!(version(left), version(right));
        }
    }

    #[test]
    fn ordering_is_antisymmetric_and_transitive_on_a_list() {
        let mut texts: Vec<&str> = LESS.iter().flat_map(|(left, right)| [*left, *right]).collect();
        texts.extend(EQUAL.iter().flat_map(|(left, right)| [*left, *right]));
        texts.extend(["0", "~", "~~", "1", "1-1", "1:0", "a", "a.b", "1.0~rc1-1", "9999"]);
        let versions: Vec<DebianVersion> = texts.iter().map(|text| version(text)).collect();
        for a in &versions {
            assert_eq!(a.cmp(a), Ordering::Equal, "{a} is equal to itself");
            for b in &versions {
                assert_eq!(a.cmp(b), b.cmp(a).reverse(), "antisymmetry of {a} and {b}");
                for c in &versions {
                    if a <= b && b <= c {
                        assert!(a <= c, "transitivity of {a} <= {b} <= {c}");
                    }
                }
            }
        }
        // Sorting must agree with the table: sort, then check each adjacent pair is ordered.
        let mut sorted = versions.clone();
        sorted.sort();
        assert!(sorted.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(sorted.first().map(DebianVersion::as_str), Some("~~"));
    }

    #[test]
    fn parts_and_display() {
        let parsed = version("1:2.36-9+deb12u4");
        assert_eq!(
            (parsed.epoch(), parsed.upstream(), parsed.revision()),
            (1, "2.36", "9+deb12u4")
        );
        assert_eq!(parsed.to_string(), "1:2.36-9+deb12u4");
        // The revision is after the last hyphen; the upstream part may hold hyphens.
        let parsed = version("1.2-3-4");
        assert_eq!((parsed.upstream(), parsed.revision()), ("1.2-3", "4"));
        let native = version("2.6.1");
        assert_eq!((native.epoch(), native.revision()), (0, ""));
        assert_eq!("0:1.0".parse::<DebianVersion>().map(|v| v.to_string()), Ok("0:1.0".into()));
    }

    #[test]
    fn invalid_versions_are_rejected_with_a_reason() {
        let cases = [
            ("", "invalid debian version ``: version is empty"),
            ("1.0 -1", "invalid debian version `1.0 -1`: version contains whitespace"),
            ("a:1.0", "invalid debian version `a:1.0`: epoch `a` is not a number"),
            (":1.0", "invalid debian version `:1.0`: epoch `` is not a number"),
            (
                "99999999999:1",
                "invalid debian version `99999999999:1`: epoch `99999999999` is too large",
            ),
            ("1:", "invalid debian version `1:`: upstream version is empty"),
            ("-1", "invalid debian version `-1`: upstream version is empty"),
            ("1.0-", "invalid debian version `1.0-`: revision is empty after the last hyphen"),
            (
                "1:2:3",
                "invalid debian version `1:2:3`: character `:` is not allowed in the upstream version",
            ),
            (
                "1.0_1",
                "invalid debian version `1.0_1`: character `_` is not allowed in the upstream version",
            ),
            (
                "1.0-1_2",
                "invalid debian version `1.0-1_2`: character `_` is not allowed in the revision",
            ),
        ];
        for (text, message) in cases {
            let error = DebianVersion::parse(text).expect_err(text);
            assert_eq!(error.to_string(), message);
        }
        // dpkg only warns about a non-digit start, so it parses.
        assert_eq!(version("abc").upstream(), "abc");
    }
}
