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
use serde::{Deserialize, Serialize};

/// Errors produced while parsing or validating retention settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A `keep_within*` duration such as `1y2m3d4h` could not be parsed.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidSpan {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tier such as `6h:1d` could not be parsed.
    #[error("invalid tier {input:?}: {reason}")]
    InvalidTier {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A group-by list such as `host,paths` could not be parsed.
    #[error("invalid group-by {input:?}: {reason}")]
    InvalidGroupBy {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy holds a value that the parsers would never produce.
    #[error("invalid retention policy: {0}")]
    InvalidPolicy(String),
}

// ---------------------------------------------------------------------------
// Input

/// The metadata of one snapshot that retention needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// When it was taken.
    pub time: Timestamp,
    /// The host it was taken on.
    pub host: String,
    /// The paths it saved.
    pub paths: Vec<String>,
    /// Its tags.
    pub tags: Vec<String>,
}

mod spec;

pub use spec::{Span, Tier, TierInterval, TierUnit};

// ---------------------------------------------------------------------------
// Policy

/// What to keep. Counts use `-1` for unlimited and `None`/`0` for "rule off".
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Keep the newest N snapshots.
    pub keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    pub keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the last N days that have one.
    pub keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    pub keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the last N months that have one.
    pub keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the last N years that have one.
    pub keep_yearly: Option<i64>,
    /// Keep every snapshot within this span of the group's newest.
    pub keep_within: Option<Span>,
    /// Keep the newest snapshot of each hour within this span.
    pub keep_within_hourly: Option<Span>,
    /// Keep the newest snapshot of each day within this span.
    pub keep_within_daily: Option<Span>,
    /// Keep the newest snapshot of each ISO week within this span.
    pub keep_within_weekly: Option<Span>,
    /// Keep the newest snapshot of each month within this span.
    pub keep_within_monthly: Option<Span>,
    /// Keep the newest snapshot of each year within this span.
    pub keep_within_yearly: Option<Span>,
    /// Each inner list is a set of tags that must all be present.
    pub keep_tags: Vec<Vec<String>>,
    /// Tiers such as `6h:1d`, `1d:7d`, `1w:4w`, `1M:12M`.
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
    /// Group by host.
    pub host: bool,
    /// Group by the (sorted) paths.
    pub paths: bool,
    /// Group by the (sorted) tags.
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
    /// The host, when grouping by host.
    pub host: Option<String>,
    /// The sorted paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
    /// The sorted tags, when grouping by tags.
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
    /// Whether any rule keeps it.
    pub keep: bool,
    /// Why it is kept (empty when forgotten), e.g. `last snapshot`,
    /// `daily snapshot`, `within 1d`, `hourly within 1d`, `tagged foo,bar`,
    /// `tier 6h:1d`.
    pub reasons: Vec<String>,
}

/// The decisions for one group, newest snapshot first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlan {
    /// The group.
    pub key: GroupKey,
    /// One decision per snapshot of the group, newest first.
    pub decisions: Vec<Decision>,
}

/// The decisions for all groups, ordered by group key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    /// The groups, ordered by key.
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

impl Tier {
    /// The bucket of this tier's interval that `t` falls in, counted as `forget` counts them
    /// (aligned to the Unix epoch).
    #[must_use]
    pub fn bucket_of(&self, t: Timestamp) -> i128 {
        tier_bucket(&self.interval, &Civil::of(t))
    }

    /// When bucket `bucket` of this tier's interval begins.
    #[must_use]
    pub fn bucket_start(&self, bucket: i128) -> Timestamp {
        let units = bucket * i128::from(self.interval.count.max(1));
        let nanos = match self.interval.unit {
            TierUnit::Hour => units * NANOS_PER_HOUR,
            TierUnit::Day => units * NANOS_PER_DAY,
            TierUnit::Week => (units * 7 - 3) * NANOS_PER_DAY,
            TierUnit::Month => days_from_civil(units.div_euclid(12), units.rem_euclid(12) + 1) * NANOS_PER_DAY,
            TierUnit::Year => days_from_civil(units, 1) * NANOS_PER_DAY,
        };
        Timestamp::from_nanosecond(nanos).unwrap_or(Timestamp::MIN)
    }

    /// The start of the tier's reach back from `newest`: the tier keeps snapshots strictly
    /// after it.
    #[must_use]
    pub fn reach_from(&self, newest: Timestamp) -> Timestamp {
        Timestamp::from_nanosecond(cutoff(&Civil::of(newest), &self.duration)).unwrap_or(Timestamp::MIN)
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

#[cfg(test)]
mod tests;
