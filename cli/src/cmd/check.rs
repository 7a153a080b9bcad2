//! `cairn check`: verify structure, optionally data, optionally a full restore drill.

use anyhow::{Context, Result};
use cairn_core::SnapshotRef;
use cairn_core::check::{self, ReadData};
use cairn_core::restore;

use super::FilterArgs;
use crate::context::{GlobalArgs, bytes, print_json, say};

/// Verify the repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Download and authenticate every blob.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read only slice N of M (`1/7` … `7/7` cover everything), or a random P% of packs.
    #[arg(long, value_name = "N/M|P%")]
    read_data_subset: Option<ReadData>,
    /// Also restore a snapshot (default `latest`) into a temporary directory, verify every file
    /// against its stored hash, report the time taken, and remove it.
    #[arg(long, value_name = "SNAP", num_args = 0..=1, default_missing_value = "latest")]
    restore_drill: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let mode = match (args.read_data, args.read_data_subset) {
        (true, _) => ReadData::All,
        (false, Some(s)) => s,
        (false, None) => ReadData::None,
    };
    let progress = crate::progress::Reporter::new(global, "check");
    let report = check::run_with_progress(&repo, mode, &progress).context("checking the repository")?;
    progress.finish();
    let drill = match &args.restore_drill {
        Some(snap) => {
            let which: SnapshotRef = snap.parse()?;
            let report = restore::drill(&repo, &which, &args.filter.filter());
            Some(report.with_context(|| format!("restore drill of {snap}"))?)
        }
        None => None,
    };
    let drill_ok = drill.as_ref().is_none_or(restore::DrillReport::ok);
    if global.json {
        print_json(&serde_json::json!({ "ok": report.ok() && drill_ok, "check": report, "restore_drill": drill }))?;
    } else {
        say!(
            global,
            "checked {} snapshots, {} index objects, {} packs, {} blobs",
            report.snapshots,
            report.index_objects,
            report.packs,
            report.blobs
        );
        if mode != ReadData::None {
            say!(global, "read {} packs ({})", report.packs_read, bytes(report.bytes_read));
        }
        if report.packs_archived > 0 {
            say!(global, "{} archived data packs not warm: sizes checked, headers not read", report.packs_archived);
        }
        if !report.unindexed_packs.is_empty() {
            // Which it is cannot be told from the packs alone: a backup that stopped before
            // indexing them, or an index object that is gone. With the index damaged or blobs
            // missing from it, pruning them would delete data: repair the index first.
            let index_trouble = report.problems.iter().any(|p| {
                matches!(p.object, cairn_core::check::Checked::Index(_)) || p.message.contains("not in the index")
            });
            if index_trouble {
                say!(
                    global,
                    "{} packs are in no index object, and the index has problems: run `cairn repair index` \
                     (it reads their headers and indexes them again) before any prune",
                    report.unindexed_packs.len()
                );
            } else {
                say!(
                    global,
                    "{} packs are in no index object: left by a backup that stopped before indexing them, or \
                     named by an index object that is lost; `cairn repair index` indexes them again, \
                     `cairn prune` removes them after the grace period",
                    report.unindexed_packs.len()
                );
            }
        }
        for path in &report.exposed {
            eprintln!(
                "warning: {} can be read by other users (run `chmod -R go-rwx` on the repository, or g-w,o-rwx for a \
                 group-readable one)",
                path.display()
            );
        }
        for p in &report.problems {
            eprintln!("error: {}: {}", p.object, p.message);
        }
        if !report.affected.is_empty() {
            eprintln!("damaged or missing data affects:");
            for a in &report.affected {
                eprintln!("  snapshot {} {}", a.snapshot.short(), a.path.display());
            }
        }
        if let Some(d) = drill.as_ref().map(|d| &d.restore) {
            let rate = if d.seconds > 0.0 { d.bytes as f64 / d.seconds } else { 0.0 };
            say!(
                global,
                "restore drill of snapshot {}: {} files, {} restored and verified in {:.2}s ({}/s)",
                d.snapshot.short(),
                d.files,
                bytes(d.bytes),
                d.seconds,
                bytes(rate as u64)
            );
            for f in &d.failed {
                eprintln!("error: restore drill: {}: {}", f.path.display(), f.reason);
            }
        }
        if report.ok() && drill_ok {
            say!(global, "no errors were found");
        }
    }
    Ok(if report.ok() && drill_ok { 0 } else { crate::exit::FAILED })
}
