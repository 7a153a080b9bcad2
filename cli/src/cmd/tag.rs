//! `cairn tag`: add, remove or set tags of existing snapshots.

use anyhow::{Context, Result};
use cairn_core::tag::{self, TagChange};

use super::FilterArgs;
use crate::context::{GlobalArgs, print_json};

/// Change the tags of snapshots (each changed one is written anew under a new id).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots (id prefixes or `latest`); default: all the filters pass.
    snapshots: Vec<String>,
    /// Add this tag (repeatable).
    #[arg(long = "add", value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long = "remove", value_name = "TAG")]
    remove: Vec<String>,
    /// Replace all tags with these (repeatable; `--set ''` is not a tag: give none to clear).
    #[arg(long = "set", value_name = "TAG", num_args = 0..=1, conflicts_with_all = ["add", "remove"])]
    set: Option<Vec<String>>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let snaps = super::select_snapshots(&repo, &args.snapshots, &args.filter.filter())?;
    let change = TagChange::new(args.set, args.remove, args.add);
    let done = tag::run(&repo, &snaps, &change).context("changing tags")?;
    if global.json {
        print_json(&done)?;
    } else if !global.quiet {
        for r in &done {
            println!("snapshot {} is now {} (tags: {})", r.old.short(), r.new.short(), r.tags.join(","));
        }
        println!("{} of {} snapshots changed", done.len(), snaps.len());
    }
    Ok(0)
}
