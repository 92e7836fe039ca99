//! Byte sizes (`64MiB`) and durations (`2s`) as users type them on the command line.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A number of bytes, parsed from forms such as `65536`, `64KiB`, `64MiB`, `1.5GiB` or `64MB`.
///
/// Binary suffixes (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024; decimal ones (`KB`, `MB`, …)
/// powers of 1000, as the `bytesize` crate defines them. Displayed in binary units.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// `n` gibibytes.
    pub const fn gib(n: u64) -> Self {
        Self(n * 1024 * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (unit, name) in UNITS {
            if b >= unit {
                return if b.is_multiple_of(unit) {
                    write!(f, "{} {name}", b / unit)
                } else {
                    write!(f, "{:.1} {name}", b as f64 / unit as f64)
                };
            }
        }
        write!(f, "{b} B")
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A size that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a size: {reason} (write it like `64MiB`, `512KiB` or `1GiB`)")]
pub struct ParseSizeError {
    input: String,
    reason: String,
}

impl FromStr for ByteSize {
    type Err = ParseSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParseSizeError { input: s.chars().take(80).collect(), reason: reason.to_owned() };
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(err("it is empty"));
        }
        if !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("it must start with a number"));
        }
        let parsed = trimmed.parse::<bytesize::ByteSize>().map_err(|e| err(&e.to_string()))?.as_u64();
        // The parser saturates what does not fit in 64 bits (`18446744073709551615TiB` comes
        // back as u64::MAX): anything at or past MAX_SIZE is refused rather than clamped.
        if parsed >= MAX_SIZE.0 {
            return Err(err(&format!("it is too large (sizes go up to {})", MAX_SIZE)));
        }
        Ok(ByteSize(parsed))
    }
}

/// Sizes are below this: 1 EiB, far beyond any machine, and far from 64-bit overflow when
/// sizes are added or multiplied by small counts.
pub const MAX_SIZE: ByteSize = ByteSize(1 << 60);

/// Durations are at most this: one year. Longer ones are surely mistakes, and near
/// `u64::MAX` seconds they overflow an `Instant` (a panic when added to now).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a duration: {reason} (write it like `2s`, `500ms` or `1m 30s`)")]
pub struct ParseDurationError {
    input: String,
    reason: String,
}

/// Parses a human duration such as `2s`, `500ms` or `1m 30s` (the `humantime` syntax).
///
/// A zero duration is rejected: a timeout of nothing is always a mistake.
pub fn parse_duration(s: &str) -> Result<Duration, ParseDurationError> {
    let err = |reason: String| ParseDurationError { input: s.chars().take(80).collect(), reason };
    let d = humantime::parse_duration(s.trim()).map_err(|e| err(e.to_string()))?;
    if d.is_zero() {
        return Err(err("it must be longer than zero".into()));
    }
    if d > MAX_DURATION {
        return Err(err("it is longer than a year, the longest accepted".into()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overflowing_sizes_and_durations_are_refused_not_clamped() {
        let e = "18446744073709551615TiB".parse::<ByteSize>().expect_err("overflows");
        assert!(e.to_string().contains("too large"), "{e}");
        assert!("16EiB".parse::<ByteSize>().is_err());
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize::mib(64)));
        let e = parse_duration("18446744073709551615s").expect_err("overflows an Instant");
        assert!(e.to_string().contains("longer than a year"), "{e}");
        assert!(parse_duration("366days").is_err());
        assert_eq!(parse_duration("365days"), Ok(MAX_DURATION));
    }

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize::mib(64)));
        assert_eq!("64 MiB".parse::<ByteSize>(), Ok(ByteSize::mib(64)));
        assert_eq!("512KiB".parse::<ByteSize>(), Ok(ByteSize(512 * 1024)));
        assert_eq!("1GiB".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!("65536".parse::<ByteSize>(), Ok(ByteSize(65536)));
        assert_eq!("64MB".parse::<ByteSize>(), Ok(ByteSize(64_000_000)));
    }

    #[test]
    fn rejects_malformed_sizes_with_a_hint() {
        for bad in ["", "MiB", "-1MiB", "64 lightyears", "sixty"] {
            let e = bad.parse::<ByteSize>().expect_err(bad);
            assert!(e.to_string().contains("64MiB"), "{e}");
        }
    }

    #[test]
    fn displays_in_binary_units() {
        assert_eq!(ByteSize::mib(64).to_string(), "64 MiB");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
        assert_eq!(ByteSize(12).to_string(), "12 B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    proptest! {
        #[test]
        fn size_parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<ByteSize>();
        }

        #[test]
        fn duration_parse_never_panics(s in ".{0,40}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn whole_mebibytes_parse_exactly(n in 1u64..1_000_000) {
            prop_assert_eq!(format!("{n}MiB").parse::<ByteSize>(), Ok(ByteSize::mib(n)));
        }

        #[test]
        fn exact_displays_round_trip(n in 1u64..1_000_000, shift in prop::sample::select(vec![0u32, 10, 20, 30])) {
            let size = ByteSize(n << shift);
            let shown = size.to_string();
            if !shown.contains('.') {
                prop_assert_eq!(shown.replace(' ', "").parse::<ByteSize>(), Ok(size));
            }
        }
    }
}
