//! `cairn prune`: remove data no snapshot needs, safely while backups run.

use std::time::Duration;

use anyhow::{Context, Result};
use cairn_core::Repository;
use cairn_core::prune::{self, PruneOptions, PruneStats};

use crate::context::{GlobalArgs, bytes, duration_text, print_json};

/// Options shared by `prune` and `forget --prune`.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    /// Repack partly used packs until unused space is at most this share (e.g. 5%, 0%).
    #[arg(long, default_value = "5%", value_parser = parse_percent)]
    pub max_unused: f64,
    /// How long unreferenced packs wait before deletion, by the store's clock (e.g. 1h, 30m, 0s).
    /// Backups running meanwhile are safe whatever it is: each announces itself (a session
    /// marker), and what it may reuse waits until it ends.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub grace: Duration,
}

/// Remove unused data.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    prune: PruneArgs,
    /// Only report what would be done.
    #[arg(long, short = 'n')]
    dry_run: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| format!("`{s}` is not a percentage"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("`{s}` must be between 0% and 100%"));
    }
    Ok(v / 100.0)
}

/// A duration in seconds unless a unit says otherwise (`30s`, `10m`, `1h`, `2d`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    cairn_core::parse_duration(s, 's').map_err(|e| e.to_string())
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    run_on(&repo, global, &args.prune, args.dry_run)
}

/// Prunes an open repository and prints the outcome.
pub fn run_on(repo: &Repository, global: &GlobalArgs, args: &PruneArgs, dry_run: bool) -> Result<u8> {
    let mut opts = PruneOptions::default();
    opts.max_unused = args.max_unused;
    opts.grace = args.grace;
    opts.dry_run = dry_run;
    let progress = crate::progress::Reporter::new(global, "prune");
    let stats = prune::run_with_progress(repo, &opts, &progress);
    progress.finish();
    let stats = stats.context("prune failed (the repository is unchanged or consistent)")?;
    // WAL no kept base backup needs goes with them (nothing is waiting on it: a base backup
    // running now starts after every kept one).
    let wal = cairn_core::postgres::chain::expire(repo, dry_run).context("expiring archived WAL")?;
    report(global, &stats, &wal, dry_run, args.grace)?;
    Ok(0)
}

fn report(
    global: &GlobalArgs,
    s: &PruneStats,
    wal: &cairn_core::postgres::chain::Expired,
    dry_run: bool,
    grace: std::time::Duration,
) -> Result<()> {
    if global.json {
        return print_json(&serde_json::json!({ "dry_run": dry_run, "stats": s, "wal_expired": wal }));
    }
    if global.quiet {
        return Ok(());
    }
    let would = if dry_run { "would " } else { "" };
    println!(
        "{} blobs in use; {} packs kept ({}), {} unused bytes left in them",
        s.used_blobs,
        s.packs_kept,
        bytes(s.bytes_kept),
        bytes(s.bytes_unused_left)
    );
    println!(
        "{would}repack {} packs; {would}mark {} packs ({}) for deletion after the grace period",
        s.packs_repacked,
        s.packs_marked,
        bytes(s.bytes_marked)
    );
    if s.packs_unindexed > 0 {
        println!(
            "{} packs in no index object (from backups that stopped before indexing them) are marked too",
            s.packs_unindexed
        );
    }
    if s.packs_young > 0 {
        println!(
            "held back: {} packs younger than the grace period ({}) are neither marked nor repacked: a backup \
             running now may be writing or reusing them; a prune after that frees what they do not need",
            s.packs_young,
            duration_text(grace)
        );
    }
    if s.lists_held > 0 {
        println!(
            "held back: {} garbage lists past the grace period, because a backup that started before them is still \
             running; a prune after it ends frees them",
            s.lists_held
        );
    }
    if wal.files > 0 {
        println!(
            "{would}delete {} archived WAL files ({}) older than the oldest base backup kept",
            wal.files,
            bytes(wal.bytes)
        );
    }
    if !dry_run {
        println!("deleted {} packs whose grace period ended, freeing {}", s.packs_deleted, bytes(s.bytes_freed));
        if s.packs_marked > 0 {
            let when = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::ZERO))
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            println!(
                "the {} marked now are freed by the first prune after {when} (the grace period of {} lets backups \
                 running now finish)",
                bytes(s.bytes_marked),
                duration_text(grace)
            );
        }
        if s.objects_held > 0 {
            let until = s.held_until.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
            println!(
                "{} objects due for deletion are held by object lock (the latest until {until}): the first prune after \
                 that deletes them",
                s.objects_held
            );
        }
        if s.retention_extended > 0 {
            println!("extended the object lock of {} objects kept snapshots need", s.retention_extended);
        }
        if s.packs_resurrected > 0 {
            println!("{} packs were needed again by newer snapshots and were kept", s.packs_resurrected);
        }
    }
    Ok(())
}
