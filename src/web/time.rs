//! Times as people read them on a page: "3 days ago" in the text, the
//! exact time (UTC) on hover.

use chrono::{Datelike, NaiveDateTime, Timelike, Utc};

/// How long ago `at` was, in words, as of now.
pub fn ago(at: NaiveDateTime) -> String {
    ago_from(at, Utc::now().naive_utc())
}

/// How long before `now` `at` was. Past two months, the date says more
/// than a count of months would.
pub fn ago_from(at: NaiveDateTime, now: NaiveDateTime) -> String {
    let seconds = (now - at).num_seconds();
    let plural = |n: i64, one: &str, many: &str| {
        if n == 1 { format!("1 {one} ago") } else { format!("{n} {many} ago") }
    };
    match seconds {
        // A clock a little ahead of this one's says "just now" too.
        ..60 => "just now".to_owned(),
        60..3_600 => format!("{} min ago", seconds / 60),
        3_600..86_400 => plural(seconds / 3_600, "hour", "hours"),
        86_400..172_800 => "yesterday".to_owned(),
        172_800..5_184_000 => plural(seconds / 86_400, "day", "days"),
        _ => format!("on {:04}-{:02}-{:02}", at.year(), at.month(), at.day()),
    }
}

// Written field by field rather than through chrono's `format`, which
// parses its pattern again on every call: a page of the list writes three
// hundred of these.

/// The exact time, for the hover text and the edit view.
pub fn exact(at: NaiveDateTime) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", at.year(), at.month(), at.day(), at.hour(), at.minute())
}

/// The machine-readable form for `<time datetime>`.
pub fn iso(at: NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, NaiveDate};

    #[test]
    fn ago_reads_as_a_person_would_say_it() {
        let now = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap().and_hms_opt(12, 0, 0).unwrap();
        let said = |d: Duration| ago_from(now - d, now);
        assert_eq!(said(Duration::seconds(-30)), "just now");
        assert_eq!(said(Duration::seconds(59)), "just now");
        assert_eq!(said(Duration::minutes(5)), "5 min ago");
        assert_eq!(said(Duration::minutes(61)), "1 hour ago");
        assert_eq!(said(Duration::hours(23)), "23 hours ago");
        assert_eq!(said(Duration::hours(30)), "yesterday");
        assert_eq!(said(Duration::days(3)), "3 days ago");
        assert_eq!(said(Duration::days(59)), "59 days ago");
        assert_eq!(said(Duration::days(60)), "on 2026-01-09");
        assert_eq!(exact(now), "2026-03-10 12:00 UTC");
        assert_eq!(iso(now + Duration::seconds(7)), "2026-03-10T12:00:07Z");
    }
}
