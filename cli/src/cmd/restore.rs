//! `cairn restore`

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_core::SnapshotPath;
use cairn_core::restore::{self, Overwrite, RestoreOptions};

use super::FilterArgs;
use crate::context::{GlobalArgs, bytes, print_json};

/// Restore a snapshot, or a path in it, into a directory.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// `SNAP` or `SNAP:PATH` (SNAP is an id prefix or `latest`; PATH need not be UTF-8).
    snapshot: std::ffi::OsString,
    /// Directory to restore into.
    #[arg(long, short = 't')]
    target: PathBuf,
    /// Only restore paths matching this glob, and what is inside them (repeatable).
    #[arg(long = "include", short = 'i')]
    includes: Vec<String>,
    /// Leave out paths matching this glob (repeatable).
    #[arg(long = "exclude", short = 'e')]
    excludes: Vec<String>,
    /// Check every restored file against the hash stored at backup time.
    #[arg(long)]
    verify: bool,
    /// What to do with files the target already has: keep them (never), replace them unless
    /// they match the snapshot's size and mtime (if-changed), or replace them (always).
    /// Without this option they are kept, named, and the exit code is 3.
    #[arg(long, value_name = "never|if-changed|always")]
    overwrite: Option<Overwrite>,
    /// With --overwrite if-changed: also compare the content of files whose size and mtime
    /// match.
    #[arg(long, requires = "overwrite")]
    verify_existing: bool,
    /// Remove what the restored directories hold that the snapshot does not.
    #[arg(long)]
    delete: bool,
    /// Do not restore extended attributes (ACLs are restored unless --no-acls).
    #[arg(long)]
    no_xattrs: bool,
    /// Do not restore POSIX ACLs.
    #[arg(long)]
    no_acls: bool,
    /// For data packs in an archive storage class (S3 GLACIER, DEEP_ARCHIVE): how fast to warm
    /// up the packs this restore reads: standard, bulk or expedited.
    #[arg(long, value_name = "TIER", default_value = "standard")]
    warm_up_tier: cairn_core::store::WarmTier,
    /// Days the warmed-up copies stay readable.
    #[arg(long, value_name = "DAYS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=30))]
    warm_up_days: u32,
    /// Ask for the warm-up and stop (exit 23) instead of waiting; run the restore again later.
    #[arg(long)]
    no_wait: bool,
    /// Seconds between two looks at packs still warming up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, hide = true)]
    warm_up_poll: u64,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let which = SnapshotPath::parse(&args.snapshot)?;
    let repo = global.open()?;
    let mut opts = RestoreOptions::new(&args.target);
    opts.includes = args.includes;
    opts.excludes = args.excludes;
    opts.verify = args.verify;
    opts.filter = args.filter.filter();
    opts.connections = global.connections;
    opts.overwrite = args.overwrite.unwrap_or(Overwrite::Unspecified);
    opts.verify_existing = args.verify_existing;
    opts.delete = args.delete;
    opts.no_xattrs = args.no_xattrs;
    opts.no_acls = args.no_acls;
    opts.warm.request = cairn_core::store::WarmUp { tier: args.warm_up_tier, days: args.warm_up_days };
    opts.warm.wait = !args.no_wait;
    opts.warm.poll = std::time::Duration::from_secs(args.warm_up_poll);
    let progress = crate::progress::Reporter::new(global, "restore");
    let s = restore::run(&repo, &which.snapshot, which.path.as_deref(), &opts, &progress)
        .with_context(|| format!("restoring {}", args.snapshot.to_string_lossy()))?;
    progress.finish();
    if global.json {
        print_json(&s)?;
    } else if !global.quiet {
        let rate = if s.seconds > 0.0 { s.bytes as f64 / s.seconds } else { 0.0 };
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} others, {} in {:.2}s ({}/s)",
            s.snapshot.short(),
            args.target.display(),
            s.files,
            s.dirs,
            s.others,
            bytes(s.bytes),
            s.seconds,
            bytes(rate as u64)
        );
        if args.verify {
            println!("verified {} files against their stored hashes", s.verified);
        }
        if s.unchanged > 0 {
            println!("{} files were already there, unchanged", s.unchanged);
        }
        for path in &s.deleted {
            println!("deleted {} (not in the snapshot)", path.display());
        }
        for w in &s.warnings {
            eprintln!("warning: {w}");
        }
    }
    if !s.failed.is_empty() {
        eprintln!("cairn: {} entries could not be restored:", s.failed.len());
        for f in &s.failed {
            eprintln!("  {}: {}", f.path.display(), f.reason);
        }
        return Ok(crate::exit::FAILED);
    }
    if !s.skipped.is_empty() && args.overwrite.is_none() {
        eprintln!(
            "cairn: {} entries were already in the target and were kept (choose with --overwrite never|if-changed|always):",
            s.skipped.len()
        );
        for path in &s.skipped {
            eprintln!("  {}", path.display());
        }
        return Ok(crate::exit::PARTIAL);
    }
    let lost: Vec<_> = s.warnings.iter().filter(|w| w.lost).collect();
    if !lost.is_empty() {
        eprintln!("cairn: {} entries were restored without all of their metadata:", lost.len());
        for w in lost {
            eprintln!("  {w}");
        }
        return Ok(crate::exit::PARTIAL);
    }
    Ok(0)
}
