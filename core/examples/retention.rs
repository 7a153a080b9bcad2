//! Apply a tiered retention policy and prune what no snapshot needs any more.
//!
//! A backup policy such as "every 6 hours kept for a day, daily for a week, weekly for a
//! month" is a list of tiers. This example makes a local repository with a month of snapshots
//! taken every six hours (the times are given, so it runs in seconds), forgets what the tiers
//! do not keep, and prunes with no grace period (nothing else writes to this repository).
//!
//! ```sh
//! cargo run -p cairn-core --example retention
//! ```

use std::time::Duration;

use cairn_core::backup::{self, BackupOptions, BackupSource};
use cairn_core::forget::{self, ForgetOptions};
use cairn_core::prune::{self, PruneOptions};
use cairn_core::retention::Policy;
use cairn_core::{InitOptions, NoProgress, Repository};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = dir.path().join("repo").to_string_lossy().into_owned();
    let repo = Repository::init_url(&url, b"example password", &InitOptions::default())?;

    // A month of backups of a small, changing "database", every six hours.
    let start: jiff::Timestamp = "2026-11-01T00:00:00Z".parse()?;
    let backups = 4 * 30;
    for n in 0..backups {
        let dump = format!("-- state {n}\n").repeat(1_000) + &"stable data\n".repeat(50_000);
        let mut options = BackupOptions::default();
        options.time = Some(start + jiff::SignedDuration::from_hours(6 * n));
        backup::run(&repo, BackupSource::reader("db.sql", dump.as_bytes()), &options, &NoProgress)?;
    }
    println!("{} snapshots", repo.snapshots()?.len());

    let policy = Policy { keep_tiers: vec!["6h:1d".parse()?, "1d:7d".parse()?, "1w:4w".parse()?], ..Policy::default() };
    let forgotten = forget::run(&repo, &ForgetOptions::new(policy))?;
    println!("forgot {} snapshots, kept {}", forgotten.removed.len(), forgotten.kept);
    for group in &forgotten.groups {
        for verdict in group.verdicts.iter().filter(|v| v.keep) {
            println!("  keep {} {} ({})", verdict.snapshot.short(), verdict.time, verdict.reasons.join(", "));
        }
    }

    let mut options = PruneOptions::default();
    options.grace = Duration::ZERO;
    // The first prune marks unused packs; the next one, after the grace period, deletes them.
    let marked = prune::run(&repo, &options)?;
    let swept = prune::run(&repo, &options)?;
    println!(
        "prune: {} packs marked ({} bytes), then {} deleted ({} bytes freed)",
        marked.packs_marked, marked.bytes_marked, swept.packs_deleted, swept.bytes_freed
    );
    assert_eq!(repo.snapshots()?.len(), forgotten.kept);
    assert!(cairn_core::check::run(&repo, cairn_core::check::ReadData::All)?.ok(), "the repository checks clean");
    Ok(())
}
