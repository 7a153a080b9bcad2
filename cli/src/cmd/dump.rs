//! `cairn dump`

use std::io::Write;

use anyhow::{Context, Result};
use cairn_core::{SnapshotRef, restore};

use super::FilterArgs;
use crate::context::GlobalArgs;

/// Write a file of a snapshot to standard output; a directory is written as a tar stream.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id prefix or `latest`.
    snapshot: String,
    /// Path of the file in the snapshot (e.g. `/db.sql` for a stdin backup).
    path: std::path::PathBuf,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let which: SnapshotRef = args.snapshot.parse()?;
    let repo = global.open()?;
    let path = std::path::Path::new("/").join(&args.path);
    let (_, snapshot) = repo.find_snapshot(&which, &args.filter.filter())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    restore::dump(&repo, &snapshot, &path, &mut out)
        .with_context(|| format!("dumping {} to stdout", path.display()))?;
    out.flush().context("writing to stdout")?;
    Ok(0)
}
