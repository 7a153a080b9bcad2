//! `cairn forget`: apply a retention policy (restic-compatible options plus tiers).

use anyhow::Result;
use cairn_core::forget::{self, ForgetOptions};
use cairn_core::retention::{GroupBy, Policy, Span, Tier, parse_tag_set};

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
    let mut opts = ForgetOptions::new(policy);
    opts.group_by = args.group_by;
    opts.filter = args.filter.filter();
    opts.dry_run = args.dry_run;
    // An empty or invalid policy is refused before the repository is opened.
    if opts.policy.is_empty() {
        return Err(crate::usage("refusing to forget with an empty policy: give at least one --keep-* option"));
    }
    opts.policy.validate().map_err(|e| crate::usage(e.to_string()))?;
    let repo = global.open()?;
    let outcome = forget::run(&repo, &opts)?;
    if global.json {
        print_json(&outcome)?;
    } else if !global.quiet {
        for g in &outcome.groups {
            println!("group {}:", g.key);
            for v in &g.verdicts {
                let verdict = if v.keep { format!("keep   ({})", v.reasons.join(", ")) } else { "remove".to_string() };
                println!("  {} {} {verdict}", v.snapshot.short(), v.time.strftime("%Y-%m-%d %H:%M:%S"));
            }
        }
        let verb = if args.dry_run { "would remove" } else { "removed" };
        println!("{verb} {} snapshots, kept {}", outcome.removed.len(), outcome.kept);
        for (id, until) in &outcome.held {
            println!(
                "held by object lock until {}: {} (removed once that has passed)",
                until.strftime("%Y-%m-%d %H:%M:%S UTC"),
                id.short()
            );
        }
    }
    if args.prune {
        return super::prune::run_on(&repo, global, &args.prune_args, args.dry_run);
    }
    Ok(0)
}
