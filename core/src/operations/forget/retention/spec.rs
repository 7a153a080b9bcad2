//! The retention settings' own syntax: calendar spans (`1y2m3d4h`) and tiers (`6h:1d`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RetentionError;
// ---------------------------------------------------------------------------
// Span

/// A restic-style calendar duration: `1y2m3d4h` (years, months, days, hours).
///
/// Parsing accepts the units `y`, `m` (months), `d` and `h` in any order (restic
/// does too), each at most once, with non-negative decimal numbers. It is
/// serialised as its string form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Calendar years.
    pub years: i64,
    /// Calendar months.
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl Span {
    /// True when every component is zero; a zero span disables its rule.
    pub fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    pub(super) fn has_negative(&self) -> bool {
        self.years < 0 || self.months < 0 || self.days < 0 || self.hours < 0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (n, unit) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Splits `12d3h` into `[(12, 'd'), (3, 'h')]`, rejecting anything else.
fn split_number_units(s: &str) -> Result<Vec<(i64, char)>, String> {
    if s.is_empty() {
        return Err("empty string".to_string());
    }
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if !c.is_ascii_digit() {
            return Err(if c == '-' || c == '+' {
                "signs are not allowed, use a plain non-negative number".to_string()
            } else {
                format!("expected a number at position {start}, found {c:?}")
            });
        }
        let mut end = start;
        while let Some(&(i, d)) = chars.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            end = i + d.len_utf8();
            chars.next();
        }
        let digits = &s[start..end];
        let n: i64 = digits.parse().map_err(|_| format!("number {digits} is too large"))?;
        let Some((_, unit)) = chars.next() else {
            return Err(format!("number {digits} has no unit"));
        };
        out.push((n, unit));
    }
    Ok(out)
}

impl FromStr for Span {
    type Err = RetentionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| RetentionError::InvalidSpan { input: input.to_string(), reason };
        let parts = split_number_units(input.trim()).map_err(err)?;
        let mut span = Span::default();
        let mut seen = Vec::new();
        for (n, unit) in parts {
            if seen.contains(&unit) {
                return Err(err(format!("unit '{unit}' appears more than once")));
            }
            seen.push(unit);
            match unit {
                'y' => span.years = n,
                'm' => span.months = n,
                'd' => span.days = n,
                'h' => span.hours = n,
                'M' => return Err(err("unknown unit 'M': months are 'm' here".to_string())),
                'w' => {
                    return Err(err("unknown unit 'w': weeks are not supported, use days (7d)".to_string()));
                }
                other => {
                    return Err(err(format!(
                        "unknown unit {other:?}: expected y (years), m (months), d (days) or h (hours)"
                    )));
                }
            }
        }
        Ok(span)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Tiers

/// The unit of a tier interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TierUnit {
    /// Hours since the epoch.
    Hour,
    /// Days since the epoch.
    Day,
    /// ISO 8601 weeks (Monday to Sunday).
    Week,
    /// Calendar months.
    Month,
    /// Calendar years.
    Year,
}

impl TierUnit {
    fn suffix(self) -> char {
        match self {
            TierUnit::Hour => 'h',
            TierUnit::Day => 'd',
            TierUnit::Week => 'w',
            TierUnit::Month => 'M',
            TierUnit::Year => 'y',
        }
    }

    fn from_suffix(c: char) -> Result<Self, String> {
        match c {
            'h' => Ok(TierUnit::Hour),
            'd' => Ok(TierUnit::Day),
            'w' => Ok(TierUnit::Week),
            'M' => Ok(TierUnit::Month),
            'y' => Ok(TierUnit::Year),
            'm' => Err("unit 'm' is not valid in tiers: use M for months".to_string()),
            other => Err(format!("unknown unit {other:?}: expected h, d, w, M (months) or y")),
        }
    }
}

/// The bucket width of a tier: `count` consecutive `unit`s, aligned to the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TierInterval {
    /// Always at least 1.
    pub count: u32,
    /// The unit counted.
    pub unit: TierUnit,
}

impl fmt::Display for TierInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

/// One retention tier `INTERVAL:DURATION`, e.g. `6h:1d` (one snapshot per six
/// hours for the last day). Serialised as its string form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tier {
    /// The bucket width: the tier keeps the newest snapshot of each bucket.
    pub interval: TierInterval,
    /// How far back from the newest snapshot the tier reaches (weeks are stored as
    /// 7 days).
    pub duration: Span,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.interval)?;
        let d = &self.duration;
        if d.is_zero() {
            return f.write_str("0d");
        }
        if d.years != 0 {
            write!(f, "{}y", d.years)?;
        }
        if d.months != 0 {
            write!(f, "{}M", d.months)?;
        }
        if d.days != 0 {
            // Write weeks back as weeks for weekly tiers ("1w:4w"), days otherwise
            // ("1d:7d"); both parse to the same span.
            if self.interval.unit == TierUnit::Week && d.days % 7 == 0 {
                write!(f, "{}w", d.days / 7)?;
            } else {
                write!(f, "{}d", d.days)?;
            }
        }
        if d.hours != 0 {
            write!(f, "{}h", d.hours)?;
        }
        Ok(())
    }
}

impl FromStr for Tier {
    type Err = RetentionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| RetentionError::InvalidTier { input: input.to_string(), reason };
        let s = input.trim();
        let Some((interval_s, duration_s)) = s.split_once(':') else {
            return Err(err("expected INTERVAL:DURATION, for example 6h:1d or 1M:12M".to_string()));
        };
        if duration_s.contains(':') {
            return Err(err("more than one ':'".to_string()));
        }

        let parts = split_number_units(interval_s).map_err(|e| err(format!("interval: {e}")))?;
        let [(n, unit)] = parts[..] else {
            return Err(err("interval must be one number and one unit, for example 6h".to_string()));
        };
        let unit = TierUnit::from_suffix(unit).map_err(|e| err(format!("interval: {e}")))?;
        let count = u32::try_from(n)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| err(format!("interval count must be between 1 and {}", u32::MAX)))?;

        let parts = split_number_units(duration_s).map_err(|e| err(format!("duration: {e}")))?;
        let mut duration = Span::default();
        let mut seen = Vec::new();
        for (n, c) in parts {
            let unit = TierUnit::from_suffix(c).map_err(|e| err(format!("duration: {e}")))?;
            if seen.contains(&unit) {
                return Err(err(format!("duration: unit '{c}' appears more than once")));
            }
            seen.push(unit);
            let overflow = || err(format!("duration: number {n} is too large"));
            match unit {
                TierUnit::Hour => duration.hours = n,
                TierUnit::Day => {
                    duration.days = duration.days.checked_add(n).ok_or_else(overflow)?;
                }
                TierUnit::Week => {
                    let days = n.checked_mul(7).ok_or_else(overflow)?;
                    duration.days = duration.days.checked_add(days).ok_or_else(overflow)?;
                }
                TierUnit::Month => duration.months = n,
                TierUnit::Year => duration.years = n,
            }
        }
        if duration.is_zero() {
            return Err(err("duration must be positive".to_string()));
        }
        Ok(Tier { interval: TierInterval { count, unit }, duration })
    }
}

impl Serialize for Tier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
