//! Pipeline schedule expressions, checked as AWS checks them: `cron(...)`
//! with the six fields of Image Builder's (and EventBridge's) cron format, or
//! EventBridge's `rate(value unit)`.
//!
//! Cron fields, from AWS's tables ("Use cron expressions in Image Builder",
//! EventBridge's "Cron expressions reference"):
//!
//! | field        | values             | wildcards       |
//! |--------------|--------------------|-----------------|
//! | minutes      | 0-59               | `, - * /`       |
//! | hours        | 0-23               | `, - * /`       |
//! | day-of-month | 1-31               | `, - * ? / L W` |
//! | month        | 1-12 or JAN-DEC    | `, - * /`       |
//! | day-of-week  | 1-7 or SUN-SAT     | `, - * ? L #`   |
//! | year         | 1970-2199          | `, - * /`       |
//!
//! Exactly one of day-of-month and day-of-week is `?`. `L`, `W` and `#`
//! stand alone in their field (`L`, `LW` and `15W` in day-of-month; `L`,
//! `6L` and `3#2`, `#` followed by 1 to 5, in day-of-week): AWS allows one
//! expression in a field that uses `#`. Names are case-insensitive (Image
//! Builder's documentation writes them in lowercase, EventBridge's in
//! uppercase).
//!
//! Only the syntax is checked here; when a schedule runs is the scheduler's
//! business.

/// A problem in a schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScheduleError {
    /// The byte offset in the expression of what is wrong.
    pub(crate) offset: usize,
    pub(crate) message: String,
}

/// Every problem of the schedule expression `text`; empty when it is valid.
pub(crate) fn check_schedule_expression(text: &str) -> Vec<ScheduleError> {
    if let Some(inner) = text.strip_prefix("cron(").and_then(|rest| rest.strip_suffix(')')) {
        check_cron(inner, "cron(".len())
    } else if let Some(inner) = text.strip_prefix("rate(").and_then(|rest| rest.strip_suffix(')')) {
        check_rate(inner, "rate(".len())
    } else {
        vec![ScheduleError {
            offset: 0,
            message: format!(
                "found the schedule expression {text:?}; expected cron(minutes hours day-of-month month day-of-week year) or rate(value unit), like cron(0 3 ? * SUN *) or rate(1 day)"
            ),
        }]
    }
}

/// The whitespace-separated words of `text`, each with its byte offset.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (offset, character) in text.char_indices() {
        match (character.is_whitespace(), start) {
            (true, Some(from)) => {
                words.push((from, &text[from..offset]));
                start = None;
            }
            (false, None) => start = Some(offset),
            _ => {}
        }
    }
    if let Some(from) = start {
        words.push((from, &text[from..]));
    }
    words
}

fn check_rate(inner: &str, base: usize) -> Vec<ScheduleError> {
    let error =
        |offset: usize, message: String| vec![ScheduleError { offset: base + offset, message }];
    let [(value_at, value), (unit_at, unit)] = words(inner)[..] else {
        return error(
            0,
            format!(
                "found `rate({inner})`; expected rate(value unit) with a positive whole number and minute(s), hour(s) or day(s), like rate(1 day) or rate(12 hours)"
            ),
        );
    };
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    let value = match value.parse::<u32>() {
        Ok(number) if number > 0 && digits => number,
        _ => {
            return error(
                value_at,
                format!("found the rate value {value:?}; expected a positive whole number"),
            );
        }
    };
    let Some(singular) = ["minute", "hour", "day"]
        .into_iter()
        .find(|singular| unit == *singular || unit.strip_suffix('s') == Some(singular))
    else {
        return error(
            unit_at,
            format!(
                "found the rate unit {unit:?}; expected minute, hour or day (minutes, hours or days for a value over 1)"
            ),
        );
    };
    let plural = unit != singular;
    match (value == 1, plural) {
        (true, true) => error(
            unit_at,
            format!("found `{unit}` after the value 1; expected the singular `{singular}`"),
        ),
        (false, false) => error(
            unit_at,
            format!("found `{unit}` after the value {value}; expected the plural `{singular}s`"),
        ),
        _ => Vec::new(),
    }
}

/// A cron field: its name, its range, the names that stand for its values
/// (the first one for `low`), and the wildcards it allows besides `, - *`.
struct Field {
    name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
    /// `/` (increments).
    increments: bool,
    /// `?`.
    any: bool,
    /// What the field accepts, for messages.
    expected: &'static str,
}

const MONTHS: [&str; 12] =
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [Field; 6] = [
    Field {
        name: "minutes",
        low: 0,
        high: 59,
        names: &[],
        increments: true,
        any: false,
        expected: "0-59 and the wildcards , - * /",
    },
    Field {
        name: "hours",
        low: 0,
        high: 23,
        names: &[],
        increments: true,
        any: false,
        expected: "0-23 and the wildcards , - * /",
    },
    Field {
        name: "day-of-month",
        low: 1,
        high: 31,
        names: &[],
        increments: true,
        any: true,
        expected: "1-31 and the wildcards , - * ? / L W",
    },
    Field {
        name: "month",
        low: 1,
        high: 12,
        names: &MONTHS,
        increments: true,
        any: false,
        expected: "1-12 or JAN-DEC and the wildcards , - * /",
    },
    Field {
        name: "day-of-week",
        low: 1,
        high: 7,
        names: &DAYS,
        increments: false,
        any: true,
        expected: "1-7 or SUN-SAT and the wildcards , - * ? L #",
    },
    Field {
        name: "year",
        low: 1970,
        high: 2199,
        names: &[],
        increments: true,
        any: false,
        expected: "1970-2199 and the wildcards , - * /",
    },
];

const DAY_OF_MONTH: usize = 2;
const DAY_OF_WEEK: usize = 4;

fn check_cron(inner: &str, base: usize) -> Vec<ScheduleError> {
    let words = words(inner);
    if words.len() != FIELDS.len() {
        return vec![ScheduleError {
            offset: base,
            message: format!(
                "found {} fields in `cron({inner})`; expected 6: minutes hours day-of-month month day-of-week year, like cron(0 3 ? * SUN *)",
                words.len()
            ),
        }];
    }
    let mut errors = Vec::new();
    for ((offset, word), field) in words.iter().zip(&FIELDS) {
        let mut checker = FieldChecker { field, base: base + offset, errors: &mut errors };
        checker.check(word);
    }
    let (_, dom) = words[DAY_OF_MONTH];
    let (dow_at, dow) = words[DAY_OF_WEEK];
    match (dom == "?", dow == "?") {
        (true, true) => errors.push(ScheduleError {
            offset: base + dow_at,
            message: "found `?` in both day-of-month and day-of-week; expected `?` in one of them and a value or `*` in the other".to_owned(),
        }),
        (false, false) => errors.push(ScheduleError {
            offset: base + dow_at,
            message: format!(
                "found day-of-month {dom:?} and day-of-week {dow:?}; expected `?` in one of them (AWS cannot match both), like cron(0 3 ? * SUN *) or cron(0 3 1 * ? *)"
            ),
        }),
        _ => {}
    }
    errors
}

/// Checks one field, reporting into `errors` with offsets from `base`.
struct FieldChecker<'a> {
    field: &'a Field,
    base: usize,
    errors: &'a mut Vec<ScheduleError>,
}

impl FieldChecker<'_> {
    fn error(&mut self, offset: usize, message: String) {
        self.errors.push(ScheduleError { offset: self.base + offset, message });
    }

    /// The standard complaint about `token` at `offset`.
    fn unexpected(&mut self, offset: usize, token: &str) {
        let field = self.field;
        self.error(
            offset,
            format!("found {token:?} in the {} field; expected {}", field.name, field.expected),
        );
    }

    fn check(&mut self, word: &str) {
        let field = self.field;
        if word == "?" {
            if !field.any {
                self.error(
                    0,
                    format!(
                        "found `?` in the {} field; expected it in day-of-month or day-of-week only",
                        field.name
                    ),
                );
            }
            return;
        }
        if self.special(word) {
            return;
        }
        let mut offset = 0;
        for item in word.split(',') {
            self.item(offset, item);
            offset += item.len() + 1;
        }
    }

    /// `L`, `W` and `#` forms, which stand alone in their field; true when
    /// `word` is one (checked and reported here).
    fn special(&mut self, word: &str) -> bool {
        let field = self.field;
        match field.name {
            "day-of-month" => {
                if word == "L" || word == "LW" {
                    return true;
                }
                if let Some(day) = word.strip_suffix('W')
                    && !day.is_empty()
                    && day.bytes().all(|b| b.is_ascii_digit())
                {
                    self.value(0, day);
                    return true;
                }
                false
            }
            "day-of-week" => {
                if word == "L" {
                    return true;
                }
                if let Some(day) = word.strip_suffix('L')
                    && !day.is_empty()
                    && !day.contains([',', '-', '*', '/', '#'])
                {
                    self.value(0, day);
                    return true;
                }
                if let Some((day, nth)) = word.split_once('#') {
                    if day.contains([',', '-', '*', '/']) || nth.contains(',') {
                        self.error(
                            0,
                            format!(
                                "found {word:?} in the day-of-week field; expected one expression with `#`, like 3#2 or FRI#2 (AWS allows no list or range with it)"
                            ),
                        );
                        return true;
                    }
                    self.value(0, day);
                    if !matches!(nth, "1" | "2" | "3" | "4" | "5") {
                        self.error(
                            day.len() + 1,
                            format!(
                                "found {nth:?} after `#` in the day-of-week field; expected 1 to 5, the week of the month"
                            ),
                        );
                    }
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// One item of a list: `*`, a value or a range, optionally `/step`.
    fn item(&mut self, offset: usize, item: &str) {
        let field = self.field;
        if item.is_empty() {
            let message = format!(
                "found an empty item in the {} field; expected {}",
                field.name, field.expected
            );
            self.error(offset, message);
            return;
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            let step_at = offset + range.len() + 1;
            if !field.increments {
                self.error(
                    offset + range.len(),
                    format!(
                        "found {item:?} in the {} field, which has no `/` increments; expected {}",
                        field.name, field.expected
                    ),
                );
                return;
            }
            let span = field.high - field.low + 1;
            match step.parse::<u32>() {
                Ok(step_value) if (1..=span).contains(&step_value) && step.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => self.error(
                    step_at,
                    format!(
                        "found the increment {step:?} in the {} field; expected a whole number from 1 to {span}",
                        field.name
                    ),
                ),
            }
        }
        if range == "*" {
            return;
        }
        match range.split_once('-') {
            Some((from, to)) => {
                self.value(offset, from);
                self.value(offset + from.len() + 1, to);
            }
            None => self.value(offset, range),
        }
    }

    /// A single value: a number in the field's range or one of its names.
    fn value(&mut self, offset: usize, token: &str) {
        let field = self.field;
        if field.names.iter().any(|name| name.eq_ignore_ascii_case(token)) {
            return;
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
            self.unexpected(offset, token);
            return;
        }
        let in_range =
            token.parse::<u32>().is_ok_and(|value| (field.low..=field.high).contains(&value));
        if !in_range {
            let names = match field.names {
                [] => String::new(),
                names => format!(" or {}-{}", names[0], names[names.len() - 1]),
            };
            self.error(
                offset,
                format!(
                    "found {token} in the {} field; expected {}-{}{names}",
                    field.name, field.low, field.high
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn render(expressions: &[&str]) -> String {
        expressions
            .iter()
            .map(|expression| {
                let errors = check_schedule_expression(expression);
                if errors.is_empty() {
                    format!("{expression}: ok\n")
                } else {
                    errors
                        .iter()
                        .map(|error| format!("{expression} @{}: {}\n", error.offset, error.message))
                        .collect()
                }
            })
            .collect()
    }

    #[test]
    fn valid_expressions() {
        let valid = [
            "cron(0 3 ? * SUN *)",
            "cron(0 3 * * ? *)",
            "cron(15 10 ? * 6L 2022-2023)",
            "cron(0/15 * ? * MON-FRI *)",
            "cron(0 8 1 * ? *)",
            "cron(0 18 ? * mon-fri *)",
            "cron(0 0 L * ? *)",
            "cron(0 0 LW * ? *)",
            "cron(0 0 15W * ? *)",
            "cron(0 0 ? * 3#2 *)",
            "cron(0 0 ? * FRI#5 *)",
            "cron(0 0 ? * L *)",
            "cron(5,35 14 * jan,feb,MAR ? *)",
            "cron(*/10 1-5/2 ? 1/3 2,4,6 */4)",
            "rate(1 minute)",
            "rate(5 minutes)",
            "rate(1 hour)",
            "rate(12 hours)",
            "rate(1 day)",
            "rate(7 days)",
        ];
        let rendered = render(&valid);
        assert!(rendered.lines().all(|line| line.ends_with(": ok")), "{rendered}");
    }

    #[test]
    fn invalid_expressions_say_what_and_where() {
        let invalid = [
            "nonsense",
            "cron(0 3 * * ?)",
            "cron(0 3 * * ? * *)",
            "cron(60 24 32 13 8 2200)",
            "cron(0 3 * * * *)",
            "cron(0 3 ? * ? *)",
            "cron(0 3 1 * MON *)",
            "cron(? 3 * * ? *)",
            "cron(0 3 ? * MON/2 *)",
            "cron(0 3 ? * 3#6 *)",
            "cron(0 3 ? * 1#1,2#2 *)",
            "cron(0/0 3 * * ? *)",
            "cron(0 3 ? FOO * *)",
            "cron(0 3 L,5 * ? *)",
            "cron(0 3 ? * 8L *)",
            "cron(0,,5 3 * * ? *)",
            "rate(0 days)",
            "rate(1 days)",
            "rate(5 day)",
            "rate(2 weeks)",
            "rate(-1 day)",
            "rate(day)",
            "cron(0 3 * * ? *",
        ];
        expect![[r#"
            nonsense @0: found the schedule expression "nonsense"; expected cron(minutes hours day-of-month month day-of-week year) or rate(value unit), like cron(0 3 ? * SUN *) or rate(1 day)
            cron(0 3 * * ?) @5: found 5 fields in `cron(0 3 * * ?)`; expected 6: minutes hours day-of-month month day-of-week year, like cron(0 3 ? * SUN *)
            cron(0 3 * * ? * *) @5: found 7 fields in `cron(0 3 * * ? * *)`; expected 6: minutes hours day-of-month month day-of-week year, like cron(0 3 ? * SUN *)
            cron(60 24 32 13 8 2200) @5: found 60 in the minutes field; expected 0-59
            cron(60 24 32 13 8 2200) @8: found 24 in the hours field; expected 0-23
            cron(60 24 32 13 8 2200) @11: found 32 in the day-of-month field; expected 1-31
            cron(60 24 32 13 8 2200) @14: found 13 in the month field; expected 1-12 or JAN-DEC
            cron(60 24 32 13 8 2200) @17: found 8 in the day-of-week field; expected 1-7 or SUN-SAT
            cron(60 24 32 13 8 2200) @19: found 2200 in the year field; expected 1970-2199
            cron(60 24 32 13 8 2200) @17: found day-of-month "32" and day-of-week "8"; expected `?` in one of them (AWS cannot match both), like cron(0 3 ? * SUN *) or cron(0 3 1 * ? *)
            cron(0 3 * * * *) @13: found day-of-month "*" and day-of-week "*"; expected `?` in one of them (AWS cannot match both), like cron(0 3 ? * SUN *) or cron(0 3 1 * ? *)
            cron(0 3 ? * ? *) @13: found `?` in both day-of-month and day-of-week; expected `?` in one of them and a value or `*` in the other
            cron(0 3 1 * MON *) @13: found day-of-month "1" and day-of-week "MON"; expected `?` in one of them (AWS cannot match both), like cron(0 3 ? * SUN *) or cron(0 3 1 * ? *)
            cron(? 3 * * ? *) @5: found `?` in the minutes field; expected it in day-of-month or day-of-week only
            cron(0 3 ? * MON/2 *) @16: found "MON/2" in the day-of-week field, which has no `/` increments; expected 1-7 or SUN-SAT and the wildcards , - * ? L #
            cron(0 3 ? * 3#6 *) @15: found "6" after `#` in the day-of-week field; expected 1 to 5, the week of the month
            cron(0 3 ? * 1#1,2#2 *) @13: found "1#1,2#2" in the day-of-week field; expected one expression with `#`, like 3#2 or FRI#2 (AWS allows no list or range with it)
            cron(0/0 3 * * ? *) @7: found the increment "0" in the minutes field; expected a whole number from 1 to 60
            cron(0 3 ? FOO * *) @11: found "FOO" in the month field; expected 1-12 or JAN-DEC and the wildcards , - * /
            cron(0 3 L,5 * ? *) @9: found "L" in the day-of-month field; expected 1-31 and the wildcards , - * ? / L W
            cron(0 3 ? * 8L *) @13: found 8 in the day-of-week field; expected 1-7 or SUN-SAT
            cron(0,,5 3 * * ? *) @7: found an empty item in the minutes field; expected 0-59 and the wildcards , - * /
            rate(0 days) @5: found the rate value "0"; expected a positive whole number
            rate(1 days) @7: found `days` after the value 1; expected the singular `day`
            rate(5 day) @7: found `day` after the value 5; expected the plural `days`
            rate(2 weeks) @7: found the rate unit "weeks"; expected minute, hour or day (minutes, hours or days for a value over 1)
            rate(-1 day) @5: found the rate value "-1"; expected a positive whole number
            rate(day) @5: found `rate(day)`; expected rate(value unit) with a positive whole number and minute(s), hour(s) or day(s), like rate(1 day) or rate(12 hours)
            cron(0 3 * * ? * @0: found the schedule expression "cron(0 3 * * ? *"; expected cron(minutes hours day-of-month month day-of-week year) or rate(value unit), like cron(0 3 ? * SUN *) or rate(1 day)
        "#]]
        .assert_eq(&render(&invalid));
    }
}
