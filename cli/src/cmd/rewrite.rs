//! `cairn rewrite`: erase paths from existing snapshots (e.g. a customer's data on request).

use anyhow::{Context, Result};
use cairn_core::repair;

use crate::context::{GlobalArgs, print_json};

/// Remove paths matching --exclude from snapshots; then `cairn prune` removes the data.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots to rewrite (id prefixes or `latest`; default: all).
    snapshots: Vec<String>,
    /// Glob of the paths to erase (repeatable): without `/` it matches a name, with `/` a path.
    #[arg(long = "exclude", short = 'e', required = true)]
    excludes: Vec<String>,
    /// Write the rewritten snapshots and remove the originals (otherwise only report).
    #[arg(long)]
    apply: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let ids = super::snapshot_ids(&repo, &args.snapshots)?;
    let progress = crate::progress::Reporter::new(global, "rewrite");
    let changed = repair::erase(&repo, &ids, &args.excludes, args.apply, &progress);
    progress.finish();
    let changed = changed.context("rewriting snapshots")?;
    if global.quiet {
        return Ok(0);
    }
    if global.json {
        return print_json(&serde_json::json!({ "applied": args.apply, "snapshots": changed })).map(|()| 0);
    }
    for c in &changed {
        match &c.replacement {
            Some(new) => println!("snapshot {} replaced by {} (tagged `rewritten`):", c.snapshot.short(), new.short()),
            None => println!("snapshot {} would be rewritten (dry run; --apply to write):", c.snapshot.short()),
        }
        for p in &c.removed {
            println!("  erased {p}");
        }
    }
    if changed.is_empty() {
        println!("no snapshot holds a matching path");
    } else if args.apply {
        println!("run `cairn prune` to remove the erased data from the repository");
    }
    Ok(0)
}
