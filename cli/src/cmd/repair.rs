//! `cairn repair index|packs|snapshots`: dry run by default, `--apply` to act.

use anyhow::{Context, Result};
use cairn_core::check::{self, ReadData};
use cairn_core::repair;

use crate::context::{GlobalArgs, print_json, say};

/// Repair a damaged repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Rebuild the index from the pack headers (for a lost or damaged index object).
    Index {
        /// Write the new index (otherwise only report).
        #[arg(long)]
        apply: bool,
    },
    /// Read every pack and mend what loses nothing: rebuild damaged data packs from their
    /// parity (`init --data-parity`), give intact ones missing parity, and replace a damaged
    /// tree pack whose trees all have an intact copy elsewhere.
    Packs {
        /// Write the repairs (otherwise only report).
        #[arg(long)]
        apply: bool,
    },
    /// Rewrite snapshots so they no longer reference missing or damaged data.
    Snapshots {
        /// Write the repaired snapshots and remove the damaged ones (otherwise only report).
        #[arg(long)]
        apply: bool,
        /// Also read all pack data to find corrupted blobs (not only missing ones).
        #[arg(long)]
        read_data: bool,
    },
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    match args.what {
        What::Index { apply } => {
            let r = repair::repair_index(&repo, apply).context("repairing the index")?;
            if global.json {
                print_json(&r)?;
            } else {
                say!(
                    global,
                    "read {} pack headers: {} blobs, {} not in the old index; {} index objects {}",
                    r.packs_read,
                    r.blobs,
                    r.blobs_recovered,
                    r.index_objects_replaced,
                    if apply { "replaced" } else { "would be replaced (dry run; --apply to write)" }
                );
                for (pack, e) in &r.packs_unreadable {
                    eprintln!("error: pack {pack}: {e} (its blobs are lost; run `repair snapshots`)");
                }
            }
        }
        What::Packs { apply } => {
            let r = repair::repair_packs(&repo, apply).context("repairing packs")?;
            if global.json {
                print_json(&r)?;
            } else {
                let done = |n: usize, did: &str, would: &str| {
                    if n > 0 {
                        say!(global, "{n} {}", if apply { did } else { would });
                    }
                };
                say!(global, "read {} packs", r.packs_read);
                for id in &r.rebuilt {
                    say!(global, "pack {id}: damaged, rebuilt from its parity");
                }
                for id in &r.removed {
                    say!(global, "pack {id}: damaged tree pack, every tree in it has an intact copy elsewhere");
                }
                done(r.rebuilt.len(), "packs written back", "packs would be written back (dry run; --apply to write)");
                done(
                    r.removed.len(),
                    &format!("damaged tree packs removed, {} trees written again", r.trees_recopied),
                    "damaged tree packs would be removed (dry run; --apply to write)",
                );
                done(r.parity_written.len(), "parity objects written", "packs lack parity (dry run; --apply to write)");
                for (pack, why) in &r.lost {
                    eprintln!(
                        "error: {why} (pack {pack}: its blobs are lost; run `cairn repair snapshots --read-data`)"
                    );
                }
                if r.rebuilt.is_empty() && r.removed.is_empty() && r.parity_written.is_empty() && r.lost.is_empty() {
                    say!(global, "no pack needs repair");
                }
            }
            if !r.lost.is_empty() {
                return Ok(crate::exit::DAMAGED);
            }
        }
        What::Snapshots { apply, read_data } => {
            let mode = if read_data { ReadData::All } else { ReadData::None };
            let report = check::run(&repo, mode).context("finding damaged data")?;
            let repairs =
                repair::repair_snapshots(&repo, &report.damaged_blobs, apply).context("repairing snapshots")?;
            if global.json {
                print_json(&serde_json::json!({ "applied": apply, "snapshots": repairs }))?;
            } else {
                for r in &repairs {
                    if r.from_copy {
                        let done =
                            if apply { "written back" } else { "would be written back (dry run; --apply to write)" };
                        say!(
                            global,
                            "snapshot {}: damaged object, {done} from its intact second copy",
                            r.snapshot.short()
                        );
                        continue;
                    }
                    match &r.replacement {
                        Some(new) => {
                            say!(
                                global,
                                "snapshot {} replaced by {} (tagged `repaired`):",
                                r.snapshot.short(),
                                new.short()
                            )
                        }
                        None => {
                            say!(
                                global,
                                "snapshot {} would be rewritten (dry run; --apply to write):",
                                r.snapshot.short()
                            )
                        }
                    }
                    for p in &r.removed {
                        say!(global, "  removed {p}");
                    }
                }
                if repairs.is_empty() {
                    say!(global, "no snapshot references missing data");
                }
            }
        }
    }
    Ok(0)
}
