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

/// The restic retention cases, kept with the tests (core/tests/data/retention/README.md).
fn conformance_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/retention"))
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
    let cases: Vec<ConfCase> = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert_eq!(snaps.len(), 103);
    assert_eq!(cases.len(), 40);

    let input: Vec<SnapshotInfo> = snaps
        .iter()
        .map(|s| SnapshotInfo { time: s.time, host: "host".to_string(), paths: s.paths.clone(), tags: s.tags.clone() })
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
