//! `cairn restore`

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_core::restore::{self, RestoreOptions};

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
    #[command(flatten)]
    filter: FilterArgs,
}

/// Splits `SNAP[:PATH]` at the first `:`, keeping PATH as raw bytes.
pub fn split_snapshot_arg(arg: &std::ffi::OsStr) -> Result<(String, Option<std::path::PathBuf>)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = arg.as_bytes();
    let (snap, path) = match bytes.iter().position(|&b| b == b':') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    let snap = std::str::from_utf8(snap)
        .map_err(|_| anyhow::anyhow!("snapshot id `{}` is not text", arg.to_string_lossy()))?;
    let path = path.filter(|p| !p.is_empty()).map(|p| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p)));
    Ok((snap.to_string(), path))
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let opts = RestoreOptions {
        target: args.target.clone(),
        includes: args.includes,
        excludes: args.excludes,
        verify: args.verify,
        filter: args.filter.filter(),
        connections: global.connections,
    };
    let progress = cairn_core::NoProgress;
    let (snap, sub) = split_snapshot_arg(&args.snapshot)?;
    let s = restore::run_path(&repo, &snap, sub.as_deref(), &opts, &progress)
        .with_context(|| format!("restoring {}", args.snapshot.to_string_lossy()))?;
    if global.json {
        print_json(&s)?;
    } else if !global.quiet {
        let rate = if s.seconds > 0.0 { s.bytes as f64 / s.seconds } else { 0.0 };
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} others, {} in {:.2}s ({}/s)",
            &s.snapshot[..8],
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
        for w in &s.warnings {
            eprintln!("warning: {w}");
        }
    }
    if !s.failed.is_empty() {
        eprintln!("cairn: {} entries could not be restored:", s.failed.len());
        for (path, reason) in &s.failed {
            eprintln!("  {path}: {reason}");
        }
        return Ok(crate::exit::FAILED);
    }
    Ok(0)
}
