//! Retention policy evaluation: which snapshots to keep, which to forget, and why.
//!
//! This module is pure: it takes snapshot metadata and a [`Policy`] and returns a
//! [`RetentionPlan`]. It performs no I/O and never deletes anything itself.
//!
//! # Semantics (identical to restic's `forget`)
//!
//! 1. Snapshots are split into groups by [`GroupBy`] (host, sorted paths, sorted
//!    tags; the default is host + paths). Every group is evaluated on its own.
//! 2. Inside a group snapshots are ordered newest first. The sort is stable, so
//!    snapshots with the same timestamp keep their input order.
//! 3. Every rule below is applied to every snapshot; a snapshot is kept when *any*
//!    rule keeps it, and [`Decision::reasons`] lists every rule that did.
//!
//! All calendar computations are done in UTC.
//!
//! ## Count rules: `keep_last`, `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`, `keep_yearly`
//!
//! Each count rule has a bucket function: `last` puts every snapshot in its own
//! bucket; `hourly` buckets by year-month-day-hour, `daily` by year-month-day,
//! `weekly` by ISO 8601 week-year and week, `monthly` by year-month and `yearly`
//! by year. Walking newest to oldest, a snapshot is kept when its bucket differs
//! from the bucket of the last snapshot this rule kept, and that spends one unit
//! of the count. A count of `-1` is unlimited; `0` (or `None`) disables the rule.
//! If the rule still has count left when the walk reaches the oldest snapshot of
//! the group, the oldest snapshot is kept as well, even if it shares a bucket with
//! a snapshot already kept (this maximises the history length; its reason then
//! carries an `(oldest)` suffix, e.g. `daily snapshot (oldest)`).
//!
//! ## Duration rules: `keep_within`, `keep_within_hourly` … `keep_within_yearly`
//!
//! A [`Span`] (`1y2m3d4h`: years, months, days, hours) is measured back from the
//! time of the *newest snapshot in the group*, not from now, using restic's
//! (Go's) calendar arithmetic: `newest.AddDate(-y, -m, -d).Add(-h hours)`.
//! `AddDate` normalises overflowing days the Go way, so 31 March minus one month
//! is "31 February", i.e. 3 March (2 March in leap years). `keep_within` keeps every
//! snapshot *strictly after* that cutoff. `keep_within_<bucket>` keeps, among the
//! snapshots strictly after the cutoff, the newest of each bucket (same buckets as
//! the count rules, no count), and, like restic, also the oldest snapshot of the
//! group if it is itself inside the window. A zero span disables the rule.
//!
//! ## Tag rule: `keep_tags`
//!
//! Each entry is a set of tags; a snapshot carrying *all* of them is kept
//! (`[["foo", "bar"]]` keeps snapshots tagged both foo and bar, `[["foo"], ["bar"]]`
//! keeps snapshots tagged foo or bar). As in restic, an empty set matches every
//! snapshot. A tag rule can keep nothing at all, so a policy made only of tag rules
//! may forget every snapshot of a group, including the newest.
//!
//! ## Tiers: `keep_tiers`
//!
//! A [`Tier`] `I:D` (for example `6h:1d`, `1d:7d`, `1w:4w`, `1M:12M`, `1y:5y`)
//! keeps, among the snapshots strictly after `newest - D`, the newest snapshot of
//! each interval bucket of width `I`. A tier is therefore the same thing as
//! restic's `keep_within_<unit> D`, generalised to any multiple of the unit:
//! `1d:7d` keeps exactly what `keep_within_daily = 7d` keeps (except for restic's
//! oldest-snapshot rule, which tiers do not apply: a tier only ever keeps the
//! newest snapshot of a bucket), while `6h:1d` ("one per six hours for a day") has
//! no restic spelling. Interval buckets are aligned to the Unix epoch so they are
//! stable from run to run: `Nh` is `hours since epoch / N`, `Nd` is `days since
//! epoch / N`, `Nw` is `ISO weeks since epoch / N` (weeks start on Monday, so
//! `1w` is the ISO week), `NM` is `(year * 12 + month - 1) / N`, `Ny` is `year / N`
//! (all divisions round down). A tier's duration is subtracted with the same
//! calendar arithmetic as a [`Span`] (`w` counts as 7 days). In tier syntax months
//! are `M`; a lower-case `m` is rejected to avoid confusion with minutes.
//!
//! ## Empty policies
//!
//! A policy with no active rule ([`Policy::is_empty`]) keeps nothing here. Callers
//! (the CLI) must refuse to run `forget` with an empty policy instead of passing
//! it on: restic does the same.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::Offset;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Errors produced while parsing or validating retention settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A `keep_within*` duration such as `1y2m3d4h` could not be parsed.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidSpan { input: String, reason: String },
    /// A tier such as `6h:1d` could not be parsed.
    #[error("invalid tier {input:?}: {reason}")]
    InvalidTier { input: String, reason: String },
    /// A group-by list such as `host,paths` could not be parsed.
    #[error("invalid group-by {input:?}: {reason}")]
    InvalidGroupBy { input: String, reason: String },
    /// A policy holds a value that the parsers would never produce.
    #[error("invalid retention policy: {0}")]
    InvalidPolicy(String),
}

// ---------------------------------------------------------------------------
// Input

/// The metadata of one snapshot that retention needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub time: Timestamp,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
}

// ---------------------------------------------------------------------------
// Span

/// A restic-style calendar duration: `1y2m3d4h` (years, months, days, hours).
///
/// Parsing accepts the units `y`, `m` (months), `d` and `h` in any order (restic
/// does too), each at most once, with non-negative decimal numbers. It is
/// serialised as its string form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl Span {
    /// True when every component is zero; a zero span disables its rule.
    pub fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    fn has_negative(&self) -> bool {
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
    Hour,
    Day,
    /// ISO 8601 weeks (Monday to Sunday).
    Week,
    /// Calendar months.
    Month,
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

// ---------------------------------------------------------------------------
// Policy

/// What to keep. Counts use `-1` for unlimited and `None`/`0` for "rule off".
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub keep_last: Option<i64>,
    pub keep_hourly: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    pub keep_within: Option<Span>,
    pub keep_within_hourly: Option<Span>,
    pub keep_within_daily: Option<Span>,
    pub keep_within_weekly: Option<Span>,
    pub keep_within_monthly: Option<Span>,
    pub keep_within_yearly: Option<Span>,
    /// Each inner list is a set of tags that must all be present.
    pub keep_tags: Vec<Vec<String>>,
    pub keep_tiers: Vec<Tier>,
}

impl Policy {
    fn counts(&self) -> [(Option<i64>, &'static str); 6] {
        [
            (self.keep_last, "keep_last"),
            (self.keep_hourly, "keep_hourly"),
            (self.keep_daily, "keep_daily"),
            (self.keep_weekly, "keep_weekly"),
            (self.keep_monthly, "keep_monthly"),
            (self.keep_yearly, "keep_yearly"),
        ]
    }

    fn spans(&self) -> [(Option<Span>, &'static str); 6] {
        [
            (self.keep_within, "keep_within"),
            (self.keep_within_hourly, "keep_within_hourly"),
            (self.keep_within_daily, "keep_within_daily"),
            (self.keep_within_weekly, "keep_within_weekly"),
            (self.keep_within_monthly, "keep_within_monthly"),
            (self.keep_within_yearly, "keep_within_yearly"),
        ]
    }

    /// True when no rule is active: all counts `None` or `0`, all spans `None` or
    /// zero, no tag sets and no tiers. Such a policy keeps nothing; the CLI must
    /// refuse it.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(c, _)| c.unwrap_or(0) == 0)
            && self.spans().iter().all(|(s, _)| s.is_none_or(|s| s.is_zero()))
            && self.keep_tags.is_empty()
            && self.keep_tiers.is_empty()
    }

    /// Rejects values the parsers never produce: counts below `-1`, negative span
    /// components, zero tier intervals and non-positive tier durations. [`RetentionPlan::compute`]
    /// accepts any policy (counts below `-1` are inactive, as in restic's library),
    /// so callers building a policy by hand should validate it first.
    pub fn validate(&self) -> Result<(), RetentionError> {
        for (count, name) in self.counts() {
            if let Some(c) = count
                && c < -1
            {
                return Err(RetentionError::InvalidPolicy(format!(
                    "{name} = {c}: negative values other than -1 are not allowed"
                )));
            }
        }
        for (span, name) in self.spans() {
            if let Some(s) = span
                && s.has_negative()
            {
                return Err(RetentionError::InvalidPolicy(format!(
                    "{name} = {s:?}: negative durations are not allowed"
                )));
            }
        }
        for tier in &self.keep_tiers {
            if tier.interval.count == 0 {
                return Err(RetentionError::InvalidPolicy(format!("tier {tier}: interval count must be at least 1")));
            }
            if tier.duration.is_zero() || tier.duration.has_negative() {
                return Err(RetentionError::InvalidPolicy(format!("tier {tier}: duration must be positive")));
            }
        }
        Ok(())
    }
}

/// Splits a CLI `--keep-tag` value such as `foo,bar` into a tag set, trimming
/// blanks and dropping empty items.
pub fn parse_tag_set(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

// ---------------------------------------------------------------------------
// Grouping

/// Which snapshot fields form the group key. Default: host and paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy { host: true, paths: true, tags: false }
    }
}

impl FromStr for GroupBy {
    type Err = RetentionError;

    /// Parses a comma-separated list of `host`, `paths`, `tags` (singular forms are
    /// accepted too). The empty string groups nothing: all snapshots form one group.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut g = GroupBy { host: false, paths: false, tags: false };
        for item in input.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                other => {
                    return Err(RetentionError::InvalidGroupBy {
                        input: input.to_string(),
                        reason: format!("unknown field {other:?}: expected host, paths or tags"),
                    });
                }
            }
        }
        Ok(g)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [(self.host, "host"), (self.paths, "paths"), (self.tags, "tags")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The key of one group; a field is `None` when grouping does not use it. Paths and
/// tags are sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupKey {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    fn of(sn: &SnapshotInfo, by: &GroupBy) -> GroupKey {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        GroupKey {
            host: by.host.then(|| sn.host.clone()),
            paths: by.paths.then(|| sorted(&sn.paths)),
            tags: by.tags.then(|| sorted(&sn.tags)),
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host [{h}]"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() { f.write_str("all snapshots") } else { f.write_str(&parts.join(", ")) }
    }
}

// ---------------------------------------------------------------------------
// Output

/// The verdict for one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Index into the slice passed to [`RetentionPlan::compute`].
    pub index: usize,
    pub keep: bool,
    /// Why it is kept (empty when forgotten), e.g. `last snapshot`,
    /// `daily snapshot`, `within 1d`, `hourly within 1d`, `tagged foo,bar`,
    /// `tier 6h:1d`.
    pub reasons: Vec<String>,
}

/// The decisions for one group, newest snapshot first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlan {
    pub key: GroupKey,
    pub decisions: Vec<Decision>,
}

/// The decisions for all groups, ordered by group key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    pub groups: Vec<GroupPlan>,
}

impl RetentionPlan {
    /// Evaluates `policy` over `snapshots`, grouped by `group_by`.
    pub fn compute(snapshots: &[SnapshotInfo], policy: &Policy, group_by: &GroupBy) -> RetentionPlan {
        let mut groups: BTreeMap<GroupKey, Vec<usize>> = BTreeMap::new();
        for (i, sn) in snapshots.iter().enumerate() {
            groups.entry(GroupKey::of(sn, group_by)).or_default().push(i);
        }
        let groups = groups
            .into_iter()
            .map(|(key, mut indices)| {
                // Newest first; `sort_by` is stable, so ties keep input order.
                indices.sort_by(|&a, &b| snapshots[b].time.cmp(&snapshots[a].time));
                GroupPlan { key, decisions: apply_policy(snapshots, &indices, policy) }
            })
            .collect();
        RetentionPlan { groups }
    }

    /// Indices (into the input slice) of the kept snapshots, ascending.
    pub fn keep_indices(&self) -> Vec<usize> {
        self.indices(true)
    }

    /// Indices (into the input slice) of the snapshots to forget, ascending.
    pub fn forget_indices(&self) -> Vec<usize> {
        self.indices(false)
    }

    fn indices(&self, keep: bool) -> Vec<usize> {
        let mut v: Vec<usize> =
            self.groups.iter().flat_map(|g| g.decisions.iter()).filter(|d| d.keep == keep).map(|d| d.index).collect();
        v.sort_unstable();
        v
    }
}

// ---------------------------------------------------------------------------
// Evaluation

const NANOS_PER_HOUR: i128 = 3_600_000_000_000;
const NANOS_PER_DAY: i128 = 24 * NANOS_PER_HOUR;

/// Calendar fields of a snapshot time, in UTC.
struct Civil {
    nanos: i128,
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    iso_year: i64,
    iso_week: i64,
}

impl Civil {
    fn of(t: Timestamp) -> Civil {
        let dt = Offset::UTC.to_datetime(t);
        let iso = dt.date().iso_week_date();
        Civil {
            nanos: t.as_nanosecond(),
            year: i64::from(dt.year()),
            month: i64::from(dt.month()),
            day: i64::from(dt.day()),
            hour: i64::from(dt.hour()),
            iso_year: i64::from(iso.year()),
            iso_week: i64::from(iso.week()),
        }
    }
}

/// Days from 1970-01-01 to `y-m-01` in the proleptic Gregorian calendar, for any
/// year (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i128, m: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5; // day of year of the 1st of the month, from March
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `newest.AddDate(-years, -months, -days).Add(-hours)` with Go's normalisation,
/// in UTC, as nanoseconds since the epoch. Computed in `i128` so that no span can
/// overflow.
fn cutoff(newest: &Civil, span: &Span) -> i128 {
    let total_months = i128::from(newest.year) * 12 + i128::from(newest.month - 1)
        - i128::from(span.years) * 12
        - i128::from(span.months);
    let year = total_months.div_euclid(12);
    let month = total_months.rem_euclid(12) + 1;
    let days = days_from_civil(year, month) + i128::from(newest.day) - 1 - i128::from(span.days);
    let time_of_day = newest.nanos.rem_euclid(NANOS_PER_DAY);
    days * NANOS_PER_DAY + time_of_day - i128::from(span.hours) * NANOS_PER_HOUR
}

#[derive(Clone, Copy)]
enum Calendar {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Calendar {
    fn key(self, c: &Civil, nr: usize) -> [i64; 4] {
        match self {
            Calendar::Last => [i64::try_from(nr).unwrap_or(i64::MAX), 0, 0, 0],
            Calendar::Hourly => [c.year, c.month, c.day, c.hour],
            Calendar::Daily => [c.year, c.month, c.day, 0],
            Calendar::Weekly => [c.iso_year, c.iso_week, 0, 0],
            Calendar::Monthly => [c.year, c.month, 0, 0],
            Calendar::Yearly => [c.year, 0, 0, 0],
        }
    }

    fn adjective(self) -> &'static str {
        match self {
            Calendar::Last => "last",
            Calendar::Hourly => "hourly",
            Calendar::Daily => "daily",
            Calendar::Weekly => "weekly",
            Calendar::Monthly => "monthly",
            Calendar::Yearly => "yearly",
        }
    }
}

fn tier_bucket(interval: &TierInterval, c: &Civil) -> i128 {
    let n = i128::from(interval.count.max(1));
    let days = c.nanos.div_euclid(NANOS_PER_DAY);
    let units = match interval.unit {
        TierUnit::Hour => c.nanos.div_euclid(NANOS_PER_HOUR),
        TierUnit::Day => days,
        // 1970-01-01 is a Thursday; the ISO week containing it starts on day -3.
        TierUnit::Week => (days + 3).div_euclid(7),
        TierUnit::Month => i128::from(c.year) * 12 + i128::from(c.month - 1),
        TierUnit::Year => i128::from(c.year),
    };
    units.div_euclid(n)
}

struct CountRule {
    calendar: Calendar,
    remaining: i64,
    last: Option<[i64; 4]>,
}

struct WithinRule {
    calendar: Calendar,
    span: Span,
    cutoff: i128,
    last: Option<[i64; 4]>,
}

struct TierRule {
    tier: Tier,
    cutoff: i128,
    last: Option<i128>,
}

/// restic's `ApplyPolicy` for one group; `order` lists the group's indices newest
/// first.
fn apply_policy(snapshots: &[SnapshotInfo], order: &[usize], policy: &Policy) -> Vec<Decision> {
    let civils: Vec<Civil> = order.iter().map(|&i| Civil::of(snapshots[i].time)).collect();
    let Some(newest) = civils.first() else {
        return Vec::new();
    };

    let mut counts: Vec<CountRule> = [
        (policy.keep_last, Calendar::Last),
        (policy.keep_hourly, Calendar::Hourly),
        (policy.keep_daily, Calendar::Daily),
        (policy.keep_weekly, Calendar::Weekly),
        (policy.keep_monthly, Calendar::Monthly),
        (policy.keep_yearly, Calendar::Yearly),
    ]
    .into_iter()
    .filter_map(|(count, calendar)| count.map(|remaining| CountRule { calendar, remaining, last: None }))
    .collect();

    let within = policy.keep_within.filter(|s| !s.is_zero()).map(|s| (s, cutoff(newest, &s)));

    let mut withins: Vec<WithinRule> = [
        (policy.keep_within_hourly, Calendar::Hourly),
        (policy.keep_within_daily, Calendar::Daily),
        (policy.keep_within_weekly, Calendar::Weekly),
        (policy.keep_within_monthly, Calendar::Monthly),
        (policy.keep_within_yearly, Calendar::Yearly),
    ]
    .into_iter()
    .filter_map(|(span, calendar)| {
        span.filter(|s| !s.is_zero()).map(|span| WithinRule {
            calendar,
            span,
            cutoff: cutoff(newest, &span),
            last: None,
        })
    })
    .collect();

    let mut tiers: Vec<TierRule> = policy
        .keep_tiers
        .iter()
        .map(|tier| TierRule { tier: *tier, cutoff: cutoff(newest, &tier.duration), last: None })
        .collect();

    let oldest = order.len() - 1;
    let mut decisions = Vec::with_capacity(order.len());
    for (nr, (&index, civil)) in order.iter().zip(&civils).enumerate() {
        let sn = &snapshots[index];
        let mut reasons = Vec::new();

        for set in &policy.keep_tags {
            if set.iter().all(|t| sn.tags.contains(t)) {
                reasons.push(format!("tagged {}", set.join(",")));
            }
        }

        if let Some((span, cut)) = within
            && civil.nanos > cut
        {
            reasons.push(format!("within {span}"));
        }

        for rule in &mut counts {
            if rule.remaining > 0 || rule.remaining == -1 {
                let key = rule.calendar.key(civil, nr);
                let new_bucket = rule.last != Some(key);
                if new_bucket || nr == oldest {
                    rule.last = Some(key);
                    if rule.remaining > 0 {
                        rule.remaining -= 1;
                    }
                    let suffix = if new_bucket { "" } else { " (oldest)" };
                    reasons.push(format!("{} snapshot{suffix}", rule.calendar.adjective()));
                }
            }
        }

        for rule in &mut withins {
            if civil.nanos > rule.cutoff {
                let key = rule.calendar.key(civil, nr);
                let new_bucket = rule.last != Some(key);
                if new_bucket || nr == oldest {
                    rule.last = Some(key);
                    let suffix = if new_bucket { "" } else { " (oldest)" };
                    reasons.push(format!("{} within {}{suffix}", rule.calendar.adjective(), rule.span));
                }
            }
        }

        for rule in &mut tiers {
            if civil.nanos > rule.cutoff {
                let bucket = tier_bucket(&rule.tier.interval, civil);
                if rule.last != Some(bucket) {
                    rule.last = Some(bucket);
                    reasons.push(format!("tier {}", rule.tier));
                }
            }
        }

        decisions.push(Decision { index, keep: !reasons.is_empty(), reasons });
    }
    decisions
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn snap(time: &str) -> SnapshotInfo {
        SnapshotInfo { time: ts(time), host: "h".to_string(), paths: vec!["/data".to_string()], tags: vec![] }
    }

    // ----- conformance --------------------------------------------------------

    fn conformance_dir() -> PathBuf {
        let in_tree = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/retention"));
        if in_tree.join("cases.json").is_file() { in_tree } else { PathBuf::from("/work/shared/conformance/retention") }
    }

    #[derive(Deserialize)]
    struct ConfSnapshot {
        time: Timestamp,
        tags: Vec<String>,
        paths: Vec<String>,
    }

    #[derive(Deserialize)]
    struct ConfCase {
        policy: serde_json::Map<String, serde_json::Value>,
        keep: Vec<ConfSnapshot>,
    }

    fn conformance_policy(raw: &serde_json::Map<String, serde_json::Value>) -> Policy {
        let mut p = Policy::default();
        for (name, value) in raw {
            let count = || Some(value.as_i64().unwrap());
            let span = || Some(value.as_str().unwrap().parse::<Span>().unwrap());
            match name.as_str() {
                "keep-last" => p.keep_last = count(),
                "keep-hourly" => p.keep_hourly = count(),
                "keep-daily" => p.keep_daily = count(),
                "keep-weekly" => p.keep_weekly = count(),
                "keep-monthly" => p.keep_monthly = count(),
                "keep-yearly" => p.keep_yearly = count(),
                "keep-within" => p.keep_within = span(),
                "keep-within-hourly" => p.keep_within_hourly = span(),
                "keep-within-daily" => p.keep_within_daily = span(),
                "keep-within-weekly" => p.keep_within_weekly = span(),
                "keep-within-monthly" => p.keep_within_monthly = span(),
                "keep-within-yearly" => p.keep_within_yearly = span(),
                "keep-tag" => {
                    p.keep_tags = value.as_array().unwrap().iter().map(|v| parse_tag_set(v.as_str().unwrap())).collect()
                }
                other => panic!("unknown policy option {other}"),
            }
        }
        p
    }

    #[test]
    fn conformance_restic_cases() {
        let dir = conformance_dir();
        let snaps: Vec<ConfSnapshot> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("snapshots.json")).unwrap()).unwrap();
        let cases: Vec<ConfCase> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
        assert_eq!(snaps.len(), 103);
        assert_eq!(cases.len(), 40);

        let input: Vec<SnapshotInfo> = snaps
            .iter()
            .map(|s| SnapshotInfo {
                time: s.time,
                host: "host".to_string(),
                paths: s.paths.clone(),
                tags: s.tags.clone(),
            })
            .collect();
        let one_group = GroupBy::from_str("").unwrap();

        let mut failures = Vec::new();
        for (n, case) in cases.iter().enumerate() {
            let policy = conformance_policy(&case.policy);
            policy.validate().unwrap();
            let plan = RetentionPlan::compute(&input, &policy, &one_group);
            assert_eq!(plan.groups.len(), 1);
            let got: Vec<(Timestamp, &[String], &[String])> = plan.groups[0]
                .decisions
                .iter()
                .filter(|d| d.keep)
                .map(|d| {
                    let s = &input[d.index];
                    (s.time, &s.tags[..], &s.paths[..])
                })
                .collect();
            let want: Vec<(Timestamp, &[String], &[String])> =
                case.keep.iter().map(|s| (s.time, &s.tags[..], &s.paths[..])).collect();
            if got != want {
                failures.push(format!("case {n} {:?}: kept {} want {}", case.policy, got.len(), want.len()));
            }
            // keep and forget partition the input
            let mut all = plan.keep_indices();
            all.extend(plan.forget_indices());
            all.sort_unstable();
            assert_eq!(all, (0..input.len()).collect::<Vec<_>>());
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    // ----- Span -----------------------------------------------------------------

    #[test]
    fn span_parse_and_display() {
        let s: Span = "1y2m3d4h".parse().unwrap();
        assert_eq!(s, Span { years: 1, months: 2, days: 3, hours: 4 });
        assert_eq!(s.to_string(), "1y2m3d4h");
        let s: Span = "1y1d1m".parse().unwrap(); // any order, as restic
        assert_eq!(s.to_string(), "1y1m1d");
        let s: Span = "13d23h".parse().unwrap();
        assert_eq!((s.days, s.hours), (13, 23));
        assert_eq!("2m".parse::<Span>().unwrap().months, 2);
        assert_eq!(" 7d ".parse::<Span>().unwrap().days, 7);
        assert_eq!("0d".parse::<Span>().unwrap(), Span::default());
        assert_eq!(Span::default().to_string(), "0d");
        assert_eq!("9999y".parse::<Span>().unwrap().years, 9999);
    }

    #[test]
    fn span_parse_errors() {
        for (input, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("d", "expected a number"),
            ("12", "no unit"),
            ("1d2", "no unit"),
            ("1w", "weeks are not supported"),
            ("1M", "months are 'm'"),
            ("1x", "unknown unit 'x'"),
            ("-1d", "signs are not allowed"),
            ("1d2d", "more than once"),
            ("1d 2h", "expected a number"),
            ("99999999999999999999y", "too large"),
        ] {
            let e = input.parse::<Span>().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(needle), "{input:?}: {msg}");
            assert!(matches!(e, RetentionError::InvalidSpan { .. }));
        }
    }

    #[test]
    fn cutoff_uses_go_adddate_normalisation() {
        let at = |s: &str| Civil::of(ts(s));
        let to_ts = |n: i128| Timestamp::from_nanosecond(n).unwrap();
        let span = |s: &str| s.parse::<Span>().unwrap();
        // 31 March - 1 month = 31 February = 3 March (2 in a leap year), like Go.
        assert_eq!(to_ts(cutoff(&at("2015-03-31T10:00:00Z"), &span("1m"))), ts("2015-03-03T10:00:00Z"));
        assert_eq!(to_ts(cutoff(&at("2016-03-31T10:00:00Z"), &span("1m"))), ts("2016-03-02T10:00:00Z"));
        // 29 Feb 2016 - 1 year = 29 Feb 2015 = 1 March 2015.
        assert_eq!(to_ts(cutoff(&at("2016-02-29T00:00:00.5Z"), &span("1y"))), ts("2015-03-01T00:00:00.5Z"));
        // Days and hours cross month and year boundaries.
        assert_eq!(to_ts(cutoff(&at("2016-01-01T02:00:00Z"), &span("1d3h"))), ts("2015-12-30T23:00:00Z"));
        assert_eq!(to_ts(cutoff(&at("2016-01-18T12:02:03Z"), &span("1y2m3d3h"))), ts("2014-11-15T09:02:03Z"));
        // Huge spans do not overflow; they reach before any representable time.
        let huge = Span { years: i64::MAX, months: i64::MAX, days: i64::MAX, hours: i64::MAX };
        assert!(cutoff(&at("2016-01-01T00:00:00Z"), &huge) < Timestamp::MIN.as_nanosecond());
    }

    #[test]
    fn days_from_civil_matches_jiff() {
        for (y, m) in [(1970, 1), (2000, 3), (2016, 2), (1, 1), (-44, 3), (9999, 12)] {
            let d = jiff::civil::date(y, m, 1);
            let want = d.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp().as_second() / 86_400;
            assert_eq!(days_from_civil(i128::from(y), i128::from(m)), i128::from(want), "{y}-{m}");
        }
    }

    // ----- Tier / GroupBy parsing -----------------------------------------------

    #[test]
    fn tier_parse_and_display() {
        for (input, count, unit, duration, display) in [
            ("6h:1d", 6, TierUnit::Hour, "1d", "6h:1d"),
            ("1d:7d", 1, TierUnit::Day, "7d", "1d:7d"),
            ("1w:4w", 1, TierUnit::Week, "28d", "1w:4w"),
            ("1M:12M", 1, TierUnit::Month, "12m", "1M:12M"),
            ("1y:5y", 1, TierUnit::Year, "5y", "1y:5y"),
            ("2d:1w3d", 2, TierUnit::Day, "10d", "2d:10d"),
            ("3M:1y6M", 3, TierUnit::Month, "1y6m", "3M:1y6M"),
        ] {
            let t: Tier = input.parse().unwrap();
            assert_eq!(t.interval, TierInterval { count, unit }, "{input}");
            assert_eq!(t.duration, duration.parse::<Span>().unwrap(), "{input}");
            assert_eq!(t.to_string(), display);
            assert_eq!(display.parse::<Tier>().unwrap(), t);
        }
    }

    #[test]
    fn tier_parse_errors() {
        for (input, needle) in [
            ("1m:12m", "use M for months"),
            ("1M:12m", "use M for months"),
            ("6h", "INTERVAL:DURATION"),
            ("", "INTERVAL:DURATION"),
            ("6h:1d:2d", "more than one"),
            ("0h:1d", "between 1 and"),
            ("6h:0d", "must be positive"),
            ("h:1d", "expected a number"),
            ("6:1d", "no unit"),
            ("6h2h:1d", "one number and one unit"),
            ("6x:1d", "unknown unit 'x'"),
            ("6h:", "empty"),
            ("6h:1d1d", "more than once"),
            ("-6h:1d", "signs are not allowed"),
            ("99999999999h:1d", "between 1 and"),
        ] {
            let e = input.parse::<Tier>().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(needle), "{input:?}: {msg}");
            assert!(matches!(e, RetentionError::InvalidTier { .. }));
        }
    }

    #[test]
    fn group_by_parse() {
        assert_eq!(GroupBy::from_str("host,paths").unwrap(), GroupBy::default());
        assert_eq!(GroupBy::from_str("").unwrap(), GroupBy { host: false, paths: false, tags: false });
        let all = GroupBy::from_str("host, paths ,tags").unwrap();
        assert!(all.host && all.paths && all.tags);
        assert_eq!(all.to_string(), "host,paths,tags");
        assert_eq!(GroupBy::from_str("tag").unwrap().to_string(), "tags");
        let e = GroupBy::from_str("host,color").unwrap_err();
        assert!(e.to_string().contains("unknown field \"color\""), "{e}");
    }

    #[test]
    fn policy_serde_round_trip_and_validation() {
        let p = Policy {
            keep_daily: Some(7),
            keep_within: Some("1y2m".parse().unwrap()),
            keep_tags: vec![vec!["foo".into(), "bar".into()]],
            keep_tiers: vec!["6h:1d".parse().unwrap(), "1w:4w".parse().unwrap()],
            ..Policy::default()
        };
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"keep_within\":\"1y2m\""), "{json}");
        assert!(json.contains("[\"6h:1d\",\"1w:4w\"]"), "{json}");
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        let partial: Policy = serde_json::from_str(r#"{"keep_last": 3}"#).unwrap();
        assert_eq!(partial.keep_last, Some(3));
        assert!(serde_json::from_str::<Policy>(r#"{"keep_tiers": ["1m:1y"]}"#).is_err());

        assert!(Policy::default().is_empty());
        assert!(Policy { keep_last: Some(0), keep_within: Some(Span::default()), ..Policy::default() }.is_empty());
        assert!(!p.is_empty());
        assert!(p.validate().is_ok());
        let bad = Policy { keep_daily: Some(-2), ..Policy::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("keep_daily"));
        let bad = Policy { keep_within: Some(Span { days: -1, ..Span::default() }), ..Policy::default() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn tag_sets() {
        assert_eq!(parse_tag_set("foo, bar,,"), vec!["foo", "bar"]);
        assert!(parse_tag_set("").is_empty());
    }

    // ----- behaviour ------------------------------------------------------------

    #[test]
    fn empty_policy_keeps_nothing() {
        let snaps = vec![snap("2020-01-01T00:00:00Z"), snap("2020-01-02T00:00:00Z")];
        let plan = RetentionPlan::compute(&snaps, &Policy::default(), &GroupBy::default());
        assert!(plan.keep_indices().is_empty());
        assert_eq!(plan.forget_indices(), vec![0, 1]);
        assert!(RetentionPlan::compute(&[], &Policy::default(), &GroupBy::default()).groups.is_empty());
    }

    #[test]
    fn reasons_and_grouping() {
        let mut snaps = vec![
            snap("2020-01-01T08:00:00Z"), // 25h before the newest
            snap("2020-01-01T11:00:00Z"),
            snap("2020-01-02T09:00:00Z"),
        ];
        snaps[0].tags = vec!["foo".into(), "bar".into()];
        let mut other = snap("2019-06-01T00:00:00Z");
        other.host = "other".into();
        snaps.push(other);
        let policy = Policy {
            keep_last: Some(1),
            keep_daily: Some(5),
            keep_within: Some("1d".parse().unwrap()),
            keep_tags: vec![vec!["bar".into(), "foo".into()]],
            ..Policy::default()
        };
        let plan = RetentionPlan::compute(&snaps, &policy, &GroupBy::default());
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.groups[0].key.host.as_deref(), Some("h"));
        assert_eq!(plan.groups[0].key.paths, Some(vec!["/data".to_string()]));
        assert_eq!(plan.groups[0].key.tags, None);
        let d = &plan.groups[0].decisions;
        assert_eq!(d.iter().map(|d| d.index).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert_eq!(d[0].reasons, vec!["within 1d", "last snapshot", "daily snapshot"]);
        assert_eq!(d[1].reasons, vec!["within 1d", "daily snapshot"]);
        assert_eq!(d[2].reasons, vec!["tagged bar,foo", "daily snapshot (oldest)"]);
        // The other host is its own group; its only snapshot is the newest there.
        assert_eq!(plan.groups[1].key.host.as_deref(), Some("other"));
        assert!(plan.groups[1].decisions[0].keep);
        assert_eq!(plan.keep_indices(), vec![0, 1, 2, 3]);

        let json = serde_json::to_value(&plan.groups[1].key).unwrap();
        assert_eq!(json["host"], "other");
    }

    #[test]
    fn ties_keep_input_order() {
        let snaps = vec![snap("2020-01-01T00:00:00Z"), snap("2020-01-02T00:00:00Z"), snap("2020-01-02T00:00:00Z")];
        let policy = Policy { keep_last: Some(1), ..Policy::default() };
        let plan = RetentionPlan::compute(&snaps, &policy, &GroupBy::default());
        let order: Vec<usize> = plan.groups[0].decisions.iter().map(|d| d.index).collect();
        assert_eq!(order, vec![1, 2, 0]);
        assert_eq!(plan.keep_indices(), vec![1]);
    }

    /// Snapshots every 6 hours for 400 days, newest 2024-06-30T18:00Z (a Sunday).
    ///
    /// * `6h:1d`  window (2024-06-29T18:00, newest]: the four snapshots of 06-30 → 4.
    /// * `1d:7d`  window (06-23T18:00, newest]: 18:00 of 06-24 … 06-30 → 7, of which
    ///   06-30T18:00 is already kept → 6 new.
    /// * `1w:4w`  window (06-02T18:00, newest] covers ISO weeks starting 06-03,
    ///   06-10, 06-17, 06-24 exactly; newest of each is Sunday 18:00: 06-09, 06-16,
    ///   06-23, 06-30 → 4, of which 06-30 is already kept (06-23T18:00 is *not*
    ///   inside the 7d window, which is exclusive) → 3 new.
    /// * `1M:12M` window (2023-06-30T18:00, newest] covers July 2023 … June 2024;
    ///   newest of each month is its last day at 18:00 → 12, of which 2024-06-30 is
    ///   already kept → 11 new.
    ///
    /// Total 4 + 6 + 3 + 11 = 24. The oldest snapshot (2023-05-28T00:00) is outside
    /// every window and tiers have no oldest-snapshot rule.
    #[test]
    fn tiers_over_400_days() {
        let newest = ts("2024-06-30T18:00:00Z");
        let snaps: Vec<SnapshotInfo> = (0..1600)
            .map(|i| SnapshotInfo {
                time: newest - jiff::SignedDuration::from_hours(6 * i),
                host: "h".into(),
                paths: vec![],
                tags: vec![],
            })
            .collect();
        assert_eq!(snaps[1599].time, ts("2023-05-28T00:00:00Z"));
        let tiers: Vec<Tier> = ["6h:1d", "1d:7d", "1w:4w", "1M:12M"].iter().map(|t| t.parse().unwrap()).collect();
        let policy = Policy { keep_tiers: tiers.clone(), ..Policy::default() };
        let plan = RetentionPlan::compute(&snaps, &policy, &GroupBy::default());
        let kept = plan.keep_indices();
        assert_eq!(kept.len(), 24);

        let per_tier = |name: &str| {
            plan.groups[0].decisions.iter().filter(|d| d.reasons.iter().any(|r| r == &format!("tier {name}"))).count()
        };
        assert_eq!(per_tier("6h:1d"), 4);
        assert_eq!(per_tier("1d:7d"), 7);
        assert_eq!(per_tier("1w:4w"), 4);
        assert_eq!(per_tier("1M:12M"), 12);

        let kept_times: Vec<Timestamp> = kept.iter().map(|&i| snaps[i].time).collect();
        for t in [
            "2024-06-30T00:00:00Z",
            "2024-06-24T18:00:00Z",
            "2024-06-23T18:00:00Z",
            "2024-06-09T18:00:00Z",
            "2024-02-29T18:00:00Z",
            "2023-07-31T18:00:00Z",
        ] {
            assert!(kept_times.contains(&ts(t)), "{t} should be kept");
        }

        // Every kept snapshot is, for each tier that claims it, the newest snapshot
        // of its bucket among those inside that tier's window. Checked with jiff
        // arithmetic independent of the module's bucket code.
        let window_start = |tier: &Tier| {
            let d = &tier.duration;
            newest
                .to_zoned(jiff::tz::TimeZone::UTC)
                .checked_sub(jiff::Span::new().years(d.years).months(d.months).days(d.days).hours(d.hours))
                .unwrap()
                .timestamp()
        };
        let bucket = |tier: &Tier, t: Timestamp| -> String {
            let z = t.to_zoned(jiff::tz::TimeZone::UTC);
            match tier.interval.unit {
                TierUnit::Hour => format!("{}-{}", z.date(), z.hour() / 6),
                TierUnit::Day => z.date().to_string(),
                TierUnit::Week => {
                    let w = z.date().iso_week_date();
                    format!("{}-W{}", w.year(), w.week())
                }
                TierUnit::Month => format!("{}-{}", z.year(), z.month()),
                TierUnit::Year => z.year().to_string(),
            }
        };
        for d in plan.groups[0].decisions.iter().filter(|d| d.keep) {
            assert!(!d.reasons.is_empty());
            for tier in tiers.iter().filter(|t| d.reasons.contains(&format!("tier {t}"))) {
                let t = snaps[d.index].time;
                let start = window_start(tier);
                assert!(t > start);
                let b = bucket(tier, t);
                assert!(
                    !snaps.iter().any(|s| s.time > t && s.time > start && bucket(tier, s.time) == b),
                    "{t} is not the newest of its {tier} bucket"
                );
            }
        }
    }

    #[test]
    fn tier_buckets_are_epoch_aligned() {
        let c = Civil::of(ts("1970-01-05T00:00:00Z")); // Monday of ISO week 2
        let iv = |count, unit| TierInterval { count, unit };
        assert_eq!(tier_bucket(&iv(1, TierUnit::Week), &c), 1);
        let c = Civil::of(ts("1970-01-04T23:59:59Z")); // Sunday, ISO week 1
        assert_eq!(tier_bucket(&iv(1, TierUnit::Week), &c), 0);
        let c = Civil::of(ts("1969-12-28T12:00:00Z")); // Sunday before, ISO week 52
        assert_eq!(tier_bucket(&iv(1, TierUnit::Week), &c), -1);
        assert_eq!(tier_bucket(&iv(1, TierUnit::Day), &c), -4);
        let c = Civil::of(ts("1970-01-01T13:00:00Z"));
        assert_eq!(tier_bucket(&iv(6, TierUnit::Hour), &c), 2);
        let c = Civil::of(ts("2024-05-15T00:00:00Z"));
        assert_eq!(tier_bucket(&iv(3, TierUnit::Month), &c), (2024 * 12 + 4) / 3);
        assert_eq!(tier_bucket(&iv(10, TierUnit::Year), &c), 202);
    }

    // ----- properties -------------------------------------------------------------

    fn arb_snapshots() -> impl Strategy<Value = Vec<SnapshotInfo>> {
        let one = (
            // 2000-01-01 .. ~2003, in minutes, so ties and shared buckets happen.
            946_684_800i64..1_050_000_000i64,
            0..3usize,
            0..3usize,
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3),
        )
            .prop_map(|(secs, host, path, tags)| SnapshotInfo {
                time: Timestamp::from_second(secs - secs % 60).unwrap(),
                host: format!("host{host}"),
                paths: vec![format!("/p{path}")],
                tags: tags.into_iter().map(str::to_string).collect(),
            });
        prop::collection::vec(one, 0..40)
    }

    fn arb_span() -> impl Strategy<Value = Option<Span>> {
        prop::option::of((0..2i64, 0..14i64, 0..40i64, 0..50i64).prop_map(|(years, months, days, hours)| Span {
            years,
            months,
            days,
            hours,
        }))
    }

    fn arb_count() -> impl Strategy<Value = Option<i64>> {
        prop::option::of(-1..6i64)
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        (
            [arb_count(), arb_count(), arb_count(), arb_count(), arb_count(), arb_count()],
            [arb_span(), arb_span(), arb_span(), arb_span(), arb_span(), arb_span()],
            prop::collection::vec(prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3), 0..2),
            prop::collection::vec(prop::sample::select(vec!["6h:1d", "1d:7d", "1w:4w", "1M:12M", "2y:10y"]), 0..3),
        )
            .prop_map(|(c, s, tags, tiers)| Policy {
                keep_last: c[0],
                keep_hourly: c[1],
                keep_daily: c[2],
                keep_weekly: c[3],
                keep_monthly: c[4],
                keep_yearly: c[5],
                keep_within: s[0],
                keep_within_hourly: s[1],
                keep_within_daily: s[2],
                keep_within_weekly: s[3],
                keep_within_monthly: s[4],
                keep_within_yearly: s[5],
                keep_tags: tags.into_iter().map(|set| set.into_iter().map(str::to_string).collect()).collect(),
                keep_tiers: tiers.into_iter().map(|t| t.parse().unwrap()).collect(),
            })
    }

    fn arb_group_by() -> impl Strategy<Value = GroupBy> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(host, paths, tags)| GroupBy { host, paths, tags })
    }

    proptest! {
        #[test]
        fn prop_plan_partitions_input(
            snaps in arb_snapshots(),
            policy in arb_policy(),
            group_by in arb_group_by(),
        ) {
            let plan = RetentionPlan::compute(&snaps, &policy, &group_by);
            let keep = plan.keep_indices();
            let forget = plan.forget_indices();
            // disjoint, and together exactly the input
            prop_assert!(keep.iter().all(|i| !forget.contains(i)));
            let mut all: Vec<usize> = keep.iter().chain(&forget).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..snaps.len()).collect::<Vec<_>>());
            for g in &plan.groups {
                prop_assert!(!g.decisions.is_empty());
                for w in g.decisions.windows(2) {
                    prop_assert!(snaps[w[0].index].time >= snaps[w[1].index].time);
                }
                for d in &g.decisions {
                    prop_assert_eq!(&GroupKey::of(&snaps[d.index], &group_by), &g.key);
                    prop_assert_eq!(d.keep, !d.reasons.is_empty());
                }
            }
        }

        /// With a valid policy that has at least one active count rule (non-zero,
        /// including -1), non-zero keep-within* span, or tier, the newest snapshot
        /// of every group is kept. Tag rules alone give no such guarantee, and an
        /// empty policy keeps nothing.
        #[test]
        fn prop_newest_of_each_group_kept(
            snaps in arb_snapshots(),
            policy in arb_policy(),
            group_by in arb_group_by(),
        ) {
            prop_assert!(policy.validate().is_ok());
            let has_positional_rule = policy.counts().iter().any(|(c, _)| c.unwrap_or(0) != 0)
                || policy.spans().iter().any(|(s, _)| s.is_some_and(|s| !s.is_zero()))
                || !policy.keep_tiers.is_empty();
            let plan = RetentionPlan::compute(&snaps, &policy, &group_by);
            if has_positional_rule {
                for g in &plan.groups {
                    prop_assert!(g.decisions[0].keep, "newest of {} forgotten", g.key);
                }
            }
            if policy.is_empty() {
                prop_assert!(plan.keep_indices().is_empty());
            }
        }

        /// keep-last N keeps exactly the N newest of each group.
        #[test]
        fn prop_keep_last(snaps in arb_snapshots(), n in 1..10i64) {
            let policy = Policy { keep_last: Some(n), ..Policy::default() };
            let plan = RetentionPlan::compute(&snaps, &policy, &GroupBy::default());
            for g in &plan.groups {
                let n = usize::try_from(n).unwrap();
                for (pos, d) in g.decisions.iter().enumerate() {
                    prop_assert_eq!(d.keep, pos < n);
                }
            }
        }

        #[test]
        fn prop_span_display_round_trips(
            years in 0..100i64, months in 0..100i64, days in 0..100i64, hours in 0..100i64,
        ) {
            let s = Span { years, months, days, hours };
            prop_assert_eq!(s.to_string().parse::<Span>().unwrap(), s);
        }
    }
}
