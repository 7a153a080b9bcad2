//! `cairn dump`

use std::io::Write;

use anyhow::{Context, Result};
use cairn_core::restore::{dump_file, find_node, split_spec};

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
    let repo = global.open()?;
    let (snap, _) = split_spec(&args.snapshot);
    let path = std::path::Path::new("/").join(&args.path);
    let (_, snapshot) = repo.find_snapshot(snap, &args.filter.filter())?;
    let index = repo.load_index()?;
    let node = find_node(&repo, &index, &snapshot, &path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    if node.kind == cairn_core::format::tree::NodeKind::Dir {
        cairn_core::inspect::dump_tar(&repo, &index, &node, &path, &mut out)
            .with_context(|| format!("dumping {} as tar", path.display()))?;
    } else {
        dump_file(&repo, &index, &node, &mut out).with_context(|| format!("dumping {}", path.display()))?;
    }
    out.flush().context("writing to stdout")?;
    Ok(0)
}
