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
    /// Only entries modified at or after this time (2026-11-30, 2026-11-30T08:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    oldest: Option<jiff::Timestamp>,
    /// Only entries modified at or before this time (a date alone means its end).
    #[arg(long, value_name = "TIME", value_parser = parse_time_end)]
    newest: Option<jiff::Timestamp>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// An RFC 3339 time, or a date (`YYYY-MM-DD`, midnight UTC at its start).
fn parse_time(s: &str) -> std::result::Result<jiff::Timestamp, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let date: jiff::civil::Date =
        s.parse().map_err(|_| format!("`{s}` is not a time like 2026-11-30 or 2026-11-30T08:00:00Z"))?;
    date.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|e| e.to_string())
}

/// As [`parse_time`], a date alone meaning the last instant of that day.
fn parse_time_end(s: &str) -> std::result::Result<jiff::Timestamp, String> {
    if s.parse::<jiff::Timestamp>().is_ok() {
        return parse_time(s);
    }
    let start = parse_time(s)?;
    start
        .checked_add(jiff::SignedDuration::from_secs(86_400) - jiff::SignedDuration::from_nanos(1))
        .map_err(|e| e.to_string())
}

pub fn find(global: &GlobalArgs, args: FindArgs) -> Result<u8> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let snaps = super::select_snapshots(&repo, &args.snapshots, &filter)?;
    let mut found = inspect::find(&repo, &snaps, &args.patterns)?;
    found.retain(|f| {
        let after = args.oldest.is_none_or(|t| f.mtime.is_some_and(|m| m >= t));
        let before = args.newest.is_none_or(|t| f.mtime.is_some_and(|m| m <= t));
        after && before
    });
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
