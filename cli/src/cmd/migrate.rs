//! `cairn migrate`

use anyhow::{Context, Result};
use cairn_core::migrate::{self, MigrateOptions};

use crate::context::{GlobalArgs, print_json};

/// Upgrade the repository to the newest format version, in place.
///
/// Nothing stored is rewritten: the config is replaced (one atomic put) and each key file is
/// rewritten with its creator and time sealed. Safe to run again after an interruption; run
/// no older cairn on the repository afterwards (it refuses version 2).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not pad new blobs to hide their exact sizes (FORMAT.md §9).
    #[arg(long)]
    no_padding: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let mut repo = global.open()?;
    let mut options = MigrateOptions::default();
    options.padding = !args.no_padding;
    let outcome = migrate::run(&mut repo, &options).context("migrating the repository")?;
    if global.json {
        print_json(&outcome)?;
    } else if !global.quiet {
        if outcome.config_replaced {
            println!("repository upgraded from format version {} to {}", outcome.from, outcome.to);
        } else {
            println!("repository already at format version {}", outcome.to);
        }
        if outcome.keys_upgraded + outcome.keys_finished > 0 {
            println!("key files upgraded: {}", outcome.keys_upgraded + outcome.keys_finished);
        }
    }
    Ok(0)
}
