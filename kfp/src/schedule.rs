//! Cron for KFP recurring runs. Users write standard 5-field cron (parsed by
//! `flowpack_core::flow::schedule`, the same parser `check` uses); KFP's scheduled-workflow
//! controller parses the `cron` of a recurring run with robfig/cron v1's `cron.Parse`, whose
//! first field is **seconds** and whose day-of-week runs 0-6. A 5-field expression passed
//! through unchanged is read as `second minute hour day-of-month month` (`0 2 * * *` would
//! run at minute 2 of every hour), so [`kfp_cron`] prepends `0` seconds, writes Sunday as 0,
//! and refuses what robfig reads differently from standard cron.

use flowpack_core::flow::schedule::{Cron, parse_cron};

/// The time zone a KFP cluster reads cron in when nobody configured one
/// (`CRON_SCHEDULE_TIMEZONE` of its scheduled-workflow controller).
pub const KFP_DEFAULT_TIMEZONE: &str = "UTC";

/// A cron expression KFP cannot run as written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// The 6-field cron KFP's recurring runs read (`second minute hour day-of-month month
/// day-of-week`) for a standard 5-field expression or macro.
pub fn kfp_cron(cron: &str) -> Result<String, CronError> {
    let parsed = parse_cron(cron).map_err(CronError)?;
    check_day_rule(cron, &parsed)?;
    let [minute, hour, dom, month, _] = &parsed.fields;
    Ok(format!(
        "0 {minute} {hour} {dom} {month} {}",
        day_of_week(&parsed)
    ))
}

/// The day-of-week field with Sunday as 0: robfig/cron's range is 0-6, so a 7 (standard
/// cron's second Sunday) becomes 0 and the field becomes the list of the days it matches.
fn day_of_week(c: &Cron) -> String {
    let text = &c.fields[Cron::DAY_OF_WEEK];
    let mask = c.matches[Cron::DAY_OF_WEEK];
    if mask & 1 << 7 == 0 {
        return text.clone();
    }
    let days = (mask | 1) & 0x7f;
    if days == 0x7f {
        return "*".into();
    }
    (0..7)
        .filter(|d| days & 1 << d != 0)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Standard (Vixie) cron runs on days matching both day fields when either *begins with*
/// `*` (so `*/2`), and either day otherwise; robfig/cron treats only a bare `*` as a star.
/// The one case where they differ, a day field `*/n` beside a restricted other one, is
/// refused rather than run on other days.
fn check_day_rule(cron: &str, c: &Cron) -> Result<(), CronError> {
    let (dom, dow) = (&c.fields[Cron::DAY_OF_MONTH], &c.fields[Cron::DAY_OF_WEEK]);
    let stepped = |f: &str| f.starts_with("*/");
    let restricted = |f: &str| !f.starts_with('*');
    if (stepped(dom) && restricted(dow)) || (stepped(dow) && restricted(dom)) {
        return Err(CronError(format!(
            "cron {cron:?}: day of month {dom:?} with day of week {dow:?} runs on days matching both in standard cron but on days matching either on KFP: write the stepped field as a list or range (e.g. `1-31/2`) to mean either, or restrict only one day field"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_get_a_leading_seconds_field() {
        for (standard, kfp) in [
            ("0 2 * * *", "0 0 2 * * *"),
            ("*/15 9-17 * * mon-fri", "0 */15 9-17 * * mon-fri"),
            ("5,35 0-23/2 1,15 JAN-jun 1", "0 5,35 0-23/2 1,15 JAN-jun 1"),
            ("  30   4 1 * * ", "0 30 4 1 * *"),
            ("0 0 1-31/2 * 1", "0 0 0 1-31/2 * 1"),
        ] {
            assert_eq!(kfp_cron(standard).unwrap(), kfp, "{standard}");
        }
    }

    #[test]
    fn macros_become_their_five_fields() {
        for (m, kfp) in [
            ("@daily", "0 0 0 * * *"),
            ("@midnight", "0 0 0 * * *"),
            ("@hourly", "0 0 * * * *"),
            ("@weekly", "0 0 0 * * 0"),
            ("@monthly", "0 0 0 1 * *"),
            ("@yearly", "0 0 0 1 1 *"),
            ("@ANNUALLY", "0 0 0 1 1 *"),
        ] {
            assert_eq!(kfp_cron(m).unwrap(), kfp, "{m}");
        }
    }

    #[test]
    fn sunday_as_seven_becomes_zero() {
        for (standard, dow) in [
            ("0 0 * * 7", "0"),
            ("0 0 * * 5-7", "0,5,6"),
            ("0 0 * * 0-7", "*"),
            ("0 0 * * 1,7", "0,1"),
            ("0 0 * * sun", "sun"),
        ] {
            let kfp = kfp_cron(standard).unwrap();
            assert_eq!(kfp.rsplit(' ').next().unwrap(), dow, "{standard}: {kfp}");
        }
    }

    #[test]
    fn what_kfp_would_read_differently_is_refused_with_the_field() {
        for (c, says) in [
            ("0 0 */2 * 1", "matching both in standard cron"),
            ("0 0 1 * */2", "matching both in standard cron"),
            ("0 0 * * * *", "has 6 fields"),
            ("0 24 * * *", "the hour field"),
            ("@reboot", "not a macro"),
        ] {
            let e = kfp_cron(c).unwrap_err().to_string();
            assert!(e.contains(says), "{c}: {e}");
        }
    }
}
