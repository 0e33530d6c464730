//! The parsing of a flow's `schedule`, shared by `check` and the schedulers (the KFP
//! recurring-run conversion is `flowpack_kfp::schedule`): a standard 5-field cron expression
//! (`minute hour day-of-month month day-of-week`; each field `*`, a number, a range `a-b`, a
//! step `*/n` or `a-b/n`, or a comma list of those; months and days of the week also by their
//! three-letter English names) or one of the macros `@yearly`, `@annually`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight`, `@hourly`; and an IANA-looking time zone name. The time
//! zone is checked for its shape only: flowpack carries no time zone database.

/// The macros and the 5-field expressions they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// The five fields as written (a macro expanded), minute first.
    pub fields: [String; 5],
    /// The values each field matches: bit `n` for value `n` (day of week 0 and 7 both
    /// stand for Sunday and are kept as written).
    pub matches: [u64; 5],
}

impl Cron {
    /// The index of the day-of-month field in [`Cron::fields`].
    pub const DAY_OF_MONTH: usize = 2;
    /// The index of the day-of-week field in [`Cron::fields`].
    pub const DAY_OF_WEEK: usize = 4;
}

/// One cron field: its name for messages, its range, and its names (index = value).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

/// Checks a cron expression; the error says which field is wrong and why.
pub fn check_cron(cron: &str) -> Result<(), String> {
    parse_cron(cron).map(|_| ())
}

/// Parses a 5-field cron expression or a macro; the error says which field is wrong and why.
pub fn parse_cron(cron: &str) -> Result<Cron, String> {
    let trimmed = cron.trim();
    let text = if trimmed.starts_with('@') {
        let lower = trimmed.to_ascii_lowercase();
        MACROS
            .iter()
            .find(|(m, _)| *m == lower)
            .map(|(_, five)| *five)
            .ok_or_else(|| {
                format!(
                    "cron {cron:?} is not a macro flowpack knows: write 5 fields or one of {}",
                    MACROS.map(|(m, _)| m).join(", ")
                )
            })?
    } else {
        trimmed
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!(
            "cron {cron:?} has {} fields: write 5, `minute hour day-of-month month day-of-week`, e.g. \"0 0 * * *\" (daily at midnight)",
            parts.len()
        ));
    }
    let mut matches = [0u64; 5];
    for ((text, field), m) in parts.iter().zip(&FIELDS).zip(&mut matches) {
        *m = check_field(text, field).map_err(|why| {
            format!(
                "cron {cron:?}: the {} field {text:?} {why} (it takes {}-{}, `*`, ranges `a-b`, steps `*/n` and lists `a,b`)",
                field.name, field.min, field.max
            )
        })?;
    }
    Ok(Cron {
        fields: [0, 1, 2, 3, 4].map(|i| parts[i].to_string()),
        matches,
    })
}

/// The values `text` matches in field `f`, bit `n` for value `n`.
fn check_field(text: &str, f: &Field) -> Result<u64, String> {
    let mut mask = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let every = match step {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n >= 1 && n <= f.max => n,
                _ => {
                    return Err(format!(
                        "has step {s:?}: a step is a number from 1 to {}",
                        f.max
                    ));
                }
            },
        };
        let (a, b) = match range.split_once('-') {
            _ if range == "*" => (f.min, f.max),
            Some((a, b)) => {
                let (a, b) = (value(a, f)?, value(b, f)?);
                if a > b {
                    return Err(format!("has the range {range:?}, which runs backwards"));
                }
                (a, b)
            }
            None => {
                let v = value(range, f)?;
                if step.is_some() {
                    return Err("has a step after a single value: write `a-b/n` or `*/n`".into());
                }
                (v, v)
            }
        };
        mask |= (a..=b).step_by(every as usize).fold(0, |m, v| m | 1 << v);
    }
    Ok(mask)
}

fn value(text: &str, f: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = f.names.iter().position(|n| !n.is_empty() && *n == lower) {
        return Ok(i as u32);
    }
    match text.parse::<u32>() {
        Ok(n) if (f.min..=f.max).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        Ok(n) => Err(format!("has {n}, outside {}-{}", f.min, f.max)),
        Err(_) => Err(format!("has {text:?}, which is not a number")),
    }
}

/// Whether `tz` looks like an IANA time zone name: `UTC`, or `Area/Location[/More]` of
/// letters, digits, `_`, `-` and `+`, each part starting with a letter.
pub fn is_timezone(tz: &str) -> bool {
    !tz.is_empty()
        && tz.len() <= 64
        && tz.split('/').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_cron_expressions_pass() {
        for c in [
            "0 0 * * *",
            "0 * * * *",
            "0 0 * * 0",
            "*/15 9-17 * * mon-fri",
            "5,35 0-23/2 1,15 JAN-jun 7",
            "59 23 31 12 6",
            "@daily",
            " @Weekly ",
        ] {
            assert_eq!(check_cron(c), Ok(()), "{c}");
        }
    }

    #[test]
    fn parsing_says_what_each_field_matches() {
        let c = parse_cron("*/20 9-17/4 1,15 jan-mar mon-fri").unwrap();
        assert_eq!(c.fields[1], "9-17/4");
        assert_eq!(c.matches[0], 1 | 1 << 20 | 1 << 40);
        assert_eq!(c.matches[1], 1 << 9 | 1 << 13 | 1 << 17);
        assert_eq!(c.matches[2], 1 << 1 | 1 << 15);
        assert_eq!(c.matches[3], 0b1110);
        assert_eq!(c.matches[4], 0b11_1110);
        let daily = parse_cron("@midnight").unwrap();
        assert_eq!(daily.fields, ["0", "0", "*", "*", "*"].map(String::from));
        assert_eq!(parse_cron("0 0 * * 5-7").unwrap().matches[4], 0b1110_0000);
    }

    #[test]
    fn bad_cron_expressions_say_which_field_and_why() {
        for (c, says) in [
            ("0 0 * *", "has 4 fields"),
            ("0 0 * * * *", "has 6 fields"),
            ("60 0 * * *", "the minute field \"60\" has 60, outside 0-59"),
            ("0 24 * * *", "the hour field"),
            (
                "0 0 0 * *",
                "the day of month field \"0\" has 0, outside 1-31",
            ),
            ("0 0 * 13 *", "the month field"),
            ("0 0 * * 8", "the day of week field"),
            ("0 0 * * fry", "not a number"),
            ("*/0 * * * *", "a step is a number from 1 to 59"),
            ("5-1 * * * *", "runs backwards"),
            ("5/2 * * * *", "a step after a single value"),
            ("-1 * * * *", "not a number"),
            ("@reboot", "not a macro flowpack knows"),
            ("@every 5m", "not a macro flowpack knows"),
        ] {
            let e = check_cron(c).unwrap_err();
            assert!(e.contains(says), "{c}: {e}");
        }
    }

    #[test]
    fn time_zones_are_checked_for_their_shape() {
        for tz in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(is_timezone(tz), "{tz}");
        }
        for tz in [
            "",
            "/UTC",
            "Europe//Berlin",
            "Europe/Ber lin",
            "1UTC",
            "../etc",
        ] {
            assert!(!is_timezone(tz), "{tz}");
        }
    }
}
