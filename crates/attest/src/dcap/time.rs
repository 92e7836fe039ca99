//! Times as Unix seconds, the form every DCAP date is compared in, and their display.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second humantime can print (9999-12-31T23:59:59Z).
const MAX_PRINTABLE: u64 = 253_402_300_799;

/// Seconds since the Unix epoch; times before it count as 0.
pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An RFC 3339 time (as Intel writes `issueDate` and `nextUpdate`) as Unix seconds.
pub(super) fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339(s).map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    i64::try_from(unix_secs(t)).map_err(|_| format!("{s:?} is out of range"))
}

/// Unix seconds as an RFC 3339 time, never failing.
pub(super) fn fmt_secs(secs: i64) -> String {
    match u64::try_from(secs) {
        Err(_) => format!("{} s before 1970", secs.unsigned_abs()),
        Ok(s) if s > MAX_PRINTABLE => format!("{s} s after 1970"),
        Ok(s) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_panics_at_the_edges() {
        let t = parse_rfc3339("2025-06-19T10:56:11Z").expect("valid time");
        assert_eq!(fmt_secs(t), "2025-06-19T10:56:11Z");
        assert!(parse_rfc3339("yesterday").is_err());
        assert_eq!(fmt_secs(-1), "1 s before 1970");
        assert_eq!(fmt_secs(i64::MAX), format!("{} s after 1970", i64::MAX));
        assert_eq!(fmt_secs(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
