//! Durations as operators write them: `30s`, `10m`, `6h`, `2d` (prune's grace period, the
//! recovery point objective of `status`). Calendar spans such as `1y2m` are retention's own
//! ([`crate::retention::Span`]), since months and years have no fixed length.

use std::time::Duration;

use crate::foundation::error::{Error, Result};

/// Parses a whole number followed by `s`, `m`, `h` or `d`; `default_unit` is used when there
/// is no unit.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the text.
pub fn parse_duration(s: &str, default_unit: char) -> Result<Duration> {
    let text = s.trim();
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let bad = || Error::InvalidArgument(format!("`{s}` is not a duration like 30s, 10m, 6h, 2d"));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit = match unit {
        "" => default_unit,
        u if u.chars().count() == 1 => u.chars().next().ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let secs = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3600),
        'd' => n.checked_mul(86_400),
        _ => {
            return Err(Error::InvalidArgument(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")));
        }
    };
    secs.map(Duration::from_secs).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_defaults() {
        assert_eq!(parse_duration("30s", 's').unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m", 's').unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("6h", 's').unwrap(), Duration::from_secs(21_600));
        assert_eq!(parse_duration("2d", 's').unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("0s", 's').unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("24", 'h').unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("24", 's').unwrap(), Duration::from_secs(24));
        for bad in ["", "h", "1y", "1.5h", "-1h", "1hh", "99999999999999999999d", "18446744073709551615d"] {
            assert!(parse_duration(bad, 's').is_err(), "{bad}");
        }
    }
}
