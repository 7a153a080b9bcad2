//! `cairn find`, `cairn diff` and `cairn stats`: looking inside snapshots.

use anyhow::Result;
use cairn_core::SnapshotRef;
use cairn_core::inspect::{self, Change};

use super::FilterArgs;
use crate::context::{GlobalArgs, bytes, print_json};

/// Find paths in snapshots.
#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// Glob patterns: without `/` they match a name, with `/` a whole path.
    #[arg(required = true)]
    patterns: Vec<String>,
    /// Only these snapshots (id prefixes or `latest`; repeatable).
    #[arg(long = "snapshot", short = 's')]
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn find(global: &GlobalArgs, args: FindArgs) -> Result<u8> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let snaps = super::select_snapshots(&repo, &args.snapshots, &filter)?;
    let found = inspect::find(&repo, &snaps, &args.patterns)?;
    if global.json {
        print_json(&found)?;
    } else {
        for f in &found {
            println!(
                "{} {} {:>12} {} {}",
                f.snapshot.short(),
                f.time.strftime("%Y-%m-%dT%H:%M:%S"),
                f.size,
                super::kind_name(f.kind),
                f.path.display()
            );
        }
        if !global.quiet {
            println!("{} matches in {} snapshots", found.len(), snaps.len());
        }
    }
    Ok(if found.is_empty() { crate::exit::FAILED } else { 0 })
}

/// Show what changed between two snapshots.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot.
    first: String,
    /// The newer snapshot.
    second: String,
}

pub fn diff(global: &GlobalArgs, args: DiffArgs) -> Result<u8> {
    let (first, second): (SnapshotRef, SnapshotRef) = (args.first.parse()?, args.second.parse()?);
    let repo = global.open()?;
    let (_, a) = repo.find_snapshot(&first, &Default::default())?;
    let (_, b) = repo.find_snapshot(&second, &Default::default())?;
    let changes = inspect::diff(&repo, &a, &b)?;
    if global.json {
        print_json(&changes)?;
    } else {
        for c in &changes {
            let mark = match c.change {
                Change::Added => '+',
                Change::Removed => '-',
                Change::Modified => 'M',
                Change::Metadata => 'U',
            };
            println!("{mark}  {}", c.path.display());
        }
        if !global.quiet {
            let count = |k: Change| changes.iter().filter(|c| c.change == k).count();
            println!(
                "{} added, {} removed, {} modified, {} metadata only",
                count(Change::Added),
                count(Change::Removed),
                count(Change::Modified),
                count(Change::Metadata)
            );
        }
    }
    Ok(0)
}

/// Sizes: what a restore writes, what deduplication and compression make of it.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Snapshots (default: all matching the filters).
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn stats(global: &GlobalArgs, args: StatsArgs) -> Result<u8> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let snaps: Vec<_> = super::select_snapshots(&repo, &args.snapshots, &filter)?.into_iter().map(|(_, s)| s).collect();
    let s = inspect::stats(&repo, &snaps)?;
    if global.json {
        return print_json(&s).map(|()| 0);
    }
    println!("snapshots:          {}", s.snapshots);
    println!("files, dirs:        {}, {}", s.files, s.dirs);
    println!("restore size:       {}", bytes(s.restore_size));
    println!("deduplicated size:  {} in {} blobs", bytes(s.dedup_size), s.blobs);
    println!("stored size:        {} in {} packs", bytes(s.stored_size), s.packs);
    println!("compression ratio:  {:.2}x", s.compression_ratio);
    println!("space saving:       {:.2}x (restore size / stored size)", s.space_saving_ratio);
    println!("repository packs:   {}", bytes(s.repository_size));
    Ok(0)
}
