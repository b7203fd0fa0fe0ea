//! Wall-clock instants as plain data. Nothing here reads a clock: the shell
//! passes `now` in, so decisions stay testable with virtual time.

use std::fmt;
use std::str::FromStr;

/// Milliseconds since the Unix epoch, UTC. Displayed as RFC 3339
/// (`2026-11-24T12:00:00.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let second_of_day = seconds.rem_euclid(86_400);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )
    }
}

/// Text that is not a timestamp as [`Timestamp`] displays it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a timestamp like 2026-11-24T12:54:56.789Z")]
pub struct ParseTimestampError {
    pub text: String,
}

/// Days since 1970-01-01 of a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `days_from_civil`, the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Reads back exactly what [`Timestamp`] displays
/// (`2026-11-24T12:54:56.789Z`, as artifacts and the API hold it).
impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(text: &str) -> Result<Timestamp, ParseTimestampError> {
        let invalid = || ParseTimestampError { text: text.to_owned() };
        let bytes = text.as_bytes();
        let shape = "dddd-dd-ddTdd:dd:dd.dddZ".as_bytes();
        let matches = bytes.len() == shape.len()
            && bytes.iter().zip(shape).all(|(byte, expected)| match expected {
                b'd' => byte.is_ascii_digit(),
                expected => byte == expected,
            });
        if !matches {
            return Err(invalid());
        }
        // Digits only, by the shape above.
        let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap_or(-1);
        let (year, month, day) = (number(0..4), number(5..7), number(8..10));
        let (hour, minute, second, millis) =
            (number(11..13), number(14..16), number(17..19), number(20..23));
        let in_month =
            civil_from_days(days_from_civil(year, month, day)) == (year, month as u32, day as u32);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || !in_month
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(invalid());
        }
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        Ok(Timestamp::from_millis(seconds * 1000 + millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        // 2026-11-24T12:54:56.789Z, checked with `date -u -d @1795524896`.
        assert_eq!(Timestamp(1_795_524_896_789).to_string(), "2026-11-24T12:54:56.789Z");
        // A leap day.
        assert_eq!(Timestamp(951_782_400_000).to_string(), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parses_what_it_displays_and_nothing_else() {
        for millis in [0, 951_782_400_000, 1_795_524_896_789, 4_102_444_799_999] {
            let at = Timestamp(millis);
            assert_eq!(at.to_string().parse::<Timestamp>(), Ok(at), "{at}");
        }
        for text in [
            "",
            "2026-11-24T12:54:56Z",
            "2026-13-24T12:54:56.789Z",
            "2026-02-30T12:54:56.789Z",
            "2026-11-24T24:00:00.000Z",
            "2026-11-24T12:54:60.000Z",
            "x026-11-24T12:54:56.789Z",
        ] {
            assert!(text.parse::<Timestamp>().is_err(), "{text}");
        }
    }
}
