//! `cairn snapshots`

use anyhow::Result;

use super::FilterArgs;
use crate::context::{GlobalArgs, bytes, print_json};

/// List snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Only the newest N snapshots of each group (of host and paths, or `--group-by`).
    #[arg(long, value_name = "N")]
    latest: Option<usize>,
    /// Group by these, comma-separated: host, paths, tags (default for `--latest`:
    /// host,paths). With it, the listing has a heading per group (`--json`: an array of
    /// groups).
    #[arg(long, value_name = "FIELDS", value_parser = parse_group_by)]
    group_by: Option<GroupBy>,
}

/// A snapshot as listed.
type Listed = (cairn_core::SnapshotId, cairn_core::Snapshot);

/// What snapshots are grouped by.
#[derive(Debug, Clone, Copy, Default)]
struct GroupBy {
    host: bool,
    paths: bool,
    tags: bool,
}

fn parse_group_by(s: &str) -> std::result::Result<GroupBy, String> {
    let mut g = GroupBy::default();
    for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match field {
            "host" => g.host = true,
            "paths" | "path" => g.paths = true,
            "tags" | "tag" => g.tags = true,
            other => return Err(format!("cannot group by `{other}`: use host, paths or tags")),
        }
    }
    Ok(g)
}

impl GroupBy {
    /// The group of a snapshot, as a map for `--json` and a line for the text listing.
    fn key(self, s: &cairn_core::Snapshot) -> (serde_json::Value, String) {
        let mut key = serde_json::Map::new();
        let mut text = Vec::new();
        if self.host {
            key.insert("host".into(), s.host.clone().into());
            text.push(format!("host {}", s.host));
        }
        if self.paths {
            key.insert("paths".into(), s.paths.clone().into());
            text.push(format!("paths {}", s.paths.join(" ")));
        }
        if self.tags {
            key.insert("tags".into(), s.tags.clone().into());
            text.push(format!("tags {}", s.tags.join(",")));
        }
        (serde_json::Value::Object(key), text.join(", "))
    }
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let (all, damaged) = repo.snapshots_checked()?;
    for (id, e) in &damaged {
        eprintln!("warning: snapshot {} is unreadable and not listed: {e}", id.short());
    }
    let snaps: Vec<_> = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    let group_by = args.group_by.or(args.latest.map(|_| GroupBy { host: true, paths: true, tags: false }));
    // Groups in the order of their first snapshot; snapshots oldest first within each.
    let mut groups: Vec<((serde_json::Value, String), Vec<&Listed>)> = Vec::new();
    for snap in &snaps {
        let key = group_by.unwrap_or_default().key(&snap.1);
        match groups.iter_mut().find(|(k, _)| k.0 == key.0) {
            Some((_, members)) => members.push(snap),
            None => groups.push((key, vec![snap])),
        }
    }
    if let Some(n) = args.latest {
        for (_, members) in &mut groups {
            let skip = members.len().saturating_sub(n);
            members.drain(..skip);
        }
    }
    let shown: usize = groups.iter().map(|(_, m)| m.len()).sum();
    if global.json {
        let entry = |(id, s): &&Listed| {
            let mut v = serde_json::json!({
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
            });
            if let Some(pg) = &s.postgres {
                v["postgres"] = serde_json::json!(pg);
            }
            v
        };
        if args.group_by.is_some() {
            let list: Vec<_> = groups
                .iter()
                .map(|((key, _), members)| {
                    serde_json::json!({ "group_key": key, "snapshots": members.iter().map(entry).collect::<Vec<_>>() })
                })
                .collect();
            return print_json(&list).map(|()| 0);
        }
        let list: Vec<_> = groups.iter().flat_map(|(_, m)| m.iter().map(entry)).collect();
        return print_json(&list).map(|()| 0);
    }
    if args.group_by.is_some() || args.latest.is_some() {
        for ((_, heading), members) in &groups {
            if args.group_by.is_some() {
                println!("{heading}:");
            }
            print_rows(members);
        }
        if !global.quiet {
            println!("{shown} snapshots");
        }
        return Ok(0);
    }
    print_rows(&snaps.iter().collect::<Vec<_>>());
    if !global.quiet {
        println!("{} snapshots", snaps.len());
    }
    Ok(0)
}

/// The listing's rows, with their heading.
fn print_rows(snaps: &[&Listed]) {
    println!("{:<10} {:<20} {:<16} {:<16} {:>10}  paths", "id", "time (UTC)", "host", "tags", "size");
    for (id, s) in snaps.iter().copied() {
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
}
