//! `cairn forget`: apply a retention policy (restic-compatible options plus tiers).

use anyhow::{Context, Result, bail};
use cairn_core::retention::{GroupBy, Policy, RetentionPlan, SnapshotInfo, Span, Tier, parse_tag_set};
use cairn_core::store::{ObjectKey, ObjectKind};

use super::FilterArgs;
use crate::context::{GlobalArgs, print_json};

/// Remove snapshots that a retention policy does not keep.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep the N newest snapshots (-1 = all).
    #[arg(long, allow_negative_numbers = true)]
    keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the last N hours.
    #[arg(long, allow_negative_numbers = true)]
    keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the last N days.
    #[arg(long, allow_negative_numbers = true)]
    keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the last N ISO weeks.
    #[arg(long, allow_negative_numbers = true)]
    keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, allow_negative_numbers = true)]
    keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, allow_negative_numbers = true)]
    keep_yearly: Option<i64>,
    /// Keep every snapshot within this duration of the newest (e.g. 1y2m3d4h).
    #[arg(long)]
    keep_within: Option<Span>,
    /// Keep hourly snapshots within this duration.
    #[arg(long)]
    keep_within_hourly: Option<Span>,
    /// Keep daily snapshots within this duration.
    #[arg(long)]
    keep_within_daily: Option<Span>,
    /// Keep weekly snapshots within this duration.
    #[arg(long)]
    keep_within_weekly: Option<Span>,
    /// Keep monthly snapshots within this duration.
    #[arg(long)]
    keep_within_monthly: Option<Span>,
    /// Keep yearly snapshots within this duration.
    #[arg(long)]
    keep_within_yearly: Option<Span>,
    /// Keep snapshots with these tags (`a,b` = both; repeatable = any).
    #[arg(long = "keep-tag")]
    keep_tags: Vec<String>,
    /// Keep the newest snapshot of each INTERVAL bucket within DURATION (e.g. 6h:1d, 1d:7d, 1w:4w, 1M:12M).
    #[arg(long = "keep-tier", value_name = "INTERVAL:DURATION")]
    keep_tiers: Vec<Tier>,
    /// Group snapshots by any of host,paths,tags (empty string for one group).
    #[arg(long, default_value = "host,paths")]
    group_by: GroupBy,
    /// Only show what would be removed.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Prune afterwards.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_args: super::prune::PruneArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let policy = Policy {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        keep_within: args.keep_within,
        keep_within_hourly: args.keep_within_hourly,
        keep_within_daily: args.keep_within_daily,
        keep_within_weekly: args.keep_within_weekly,
        keep_within_monthly: args.keep_within_monthly,
        keep_within_yearly: args.keep_within_yearly,
        keep_tags: args.keep_tags.iter().map(|t| parse_tag_set(t)).collect(),
        keep_tiers: args.keep_tiers,
    };
    policy.validate()?;
    if policy.is_empty() {
        bail!("refusing to forget with an empty policy: give at least one --keep-* option");
    }
    let repo = global.open()?;
    let filter = args.filter.filter();
    let snaps: Vec<_> = repo.snapshots()?.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    let infos: Vec<SnapshotInfo> = snaps
        .iter()
        .map(|(_, s)| SnapshotInfo { time: s.time, host: s.host.clone(), paths: s.paths.clone(), tags: s.tags.clone() })
        .collect();
    let plan = RetentionPlan::compute(&infos, &policy, &args.group_by);
    let mut groups = Vec::new();
    for g in &plan.groups {
        let decisions: Vec<_> = g
            .decisions
            .iter()
            .map(|d| {
                let (id, s) = &snaps[d.index];
                serde_json::json!({ "id": id.to_string(), "time": s.time.to_string(), "keep": d.keep, "reasons": d.reasons })
            })
            .collect();
        groups.push(serde_json::json!({ "group": g.key, "snapshots": decisions }));
        if !global.json && !global.quiet {
            println!("group {}:", g.key);
            for d in &g.decisions {
                let (id, s) = &snaps[d.index];
                let verdict = if d.keep { format!("keep   ({})", d.reasons.join(", ")) } else { "remove".to_string() };
                println!("  {} {} {verdict}", id.short(), s.time.strftime("%Y-%m-%d %H:%M:%S"));
            }
        }
    }
    let forget = plan.forget_indices();
    if !args.dry_run {
        for &i in &forget {
            let (id, _) = &snaps[i];
            let key = ObjectKey::new(ObjectKind::Snapshot, id.0);
            repo.store().delete(&key).with_context(|| format!("removing snapshot {id}"))?;
        }
    }
    if global.json {
        print_json(
            &serde_json::json!({ "dry_run": args.dry_run, "groups": groups, "removed": forget.iter().map(|&i| snaps[i].0.to_string()).collect::<Vec<_>>() }),
        )?;
    } else if !global.quiet {
        let verb = if args.dry_run { "would remove" } else { "removed" };
        println!("{verb} {} snapshots, kept {}", forget.len(), snaps.len() - forget.len());
    }
    if args.prune {
        return super::prune::run_on(&repo, global, &args.prune_args, args.dry_run);
    }
    Ok(0)
}
