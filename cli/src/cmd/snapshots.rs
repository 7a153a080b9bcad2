//! `cairn snapshots`

use anyhow::Result;

use super::FilterArgs;
use crate::context::{GlobalArgs, bytes, print_json};

/// List snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let (all, damaged) = repo.snapshots_checked()?;
    for (id, e) in &damaged {
        eprintln!("warning: snapshot {} is unreadable and not listed: {e}", id.short());
    }
    let snaps: Vec<_> = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    if global.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_string(),
                    "short_id": id.short(),
                    "time": s.time.to_string(),
                    "host": s.host,
                    "user": s.user,
                    "paths": s.paths,
                    "tags": s.tags,
                    "parent": s.parent.map(|p| p.to_string()),
                    "tree": s.tree.to_string(),
                    "original": s.original.map(|p| p.to_string()),
                    "summary": s.summary,
                })
            })
            .collect();
        return print_json(&list).map(|()| 0);
    }
    println!("{:<10} {:<20} {:<16} {:<16} {:>10}  paths", "id", "time (UTC)", "host", "tags", "size");
    for (id, s) in &snaps {
        let time = s.time.strftime("%Y-%m-%d %H:%M:%S").to_string();
        println!(
            "{:<10} {:<20} {:<16} {:<16} {:>10}  {}",
            id.short(),
            time,
            s.host,
            s.tags.join(","),
            bytes(s.summary.total_bytes),
            s.paths.join(" ")
        );
    }
    if !global.quiet {
        println!("{} snapshots", snaps.len());
    }
    Ok(0)
}
