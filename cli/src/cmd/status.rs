//! `cairn status`: recovery point status — the age of the newest snapshot of each source
//! (host and paths) against a target, with a non-zero exit when any source is late, so a
//! monitoring job can alert on it.

use std::collections::BTreeMap;

use anyhow::Result;

use super::FilterArgs;
use crate::context::{GlobalArgs, print_json};

/// Report the age of the newest snapshot of each source against a recovery point objective.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The recovery point objective, e.g. 6h, 1d, 30m.
    #[arg(long, default_value = "24h", value_parser = parse_age)]
    max_age: jiff::SignedDuration,
    #[command(flatten)]
    filter: FilterArgs,
}

fn parse_age(s: &str) -> Result<jiff::SignedDuration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 30m, 6h, 1d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    Ok(jiff::SignedDuration::from_secs(secs))
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let now = jiff::Timestamp::now();
    let mut newest: BTreeMap<(String, Vec<String>), (String, jiff::Timestamp)> = BTreeMap::new();
    for (id, s) in repo.snapshots()?.into_iter().filter(|(_, s)| filter.matches(s)) {
        let e = newest.entry((s.host.clone(), s.paths.clone())).or_insert((id.to_string(), s.time));
        if s.time >= e.1 {
            *e = (id.to_string(), s.time);
        }
    }
    let mut late = 0;
    let mut rows = Vec::new();
    for ((host, paths), (id, time)) in &newest {
        let age = now.duration_since(*time);
        let ok = age <= args.max_age;
        late += usize::from(!ok);
        rows.push(serde_json::json!({
            "host": host, "paths": paths, "snapshot": id, "time": time.to_string(),
            "age_seconds": age.as_secs(), "max_age_seconds": args.max_age.as_secs(), "ok": ok,
        }));
        if !global.json {
            let hours = age.as_secs_f64() / 3600.0;
            println!(
                "{:<5} {:>8.1}h old  {}  {}  {}",
                if ok { "OK" } else { "LATE" },
                hours,
                &id[..8],
                host,
                paths.join(" ")
            );
        }
    }
    if global.json {
        print_json(&serde_json::json!({ "ok": late == 0 && !newest.is_empty(), "sources": rows }))?;
    } else if newest.is_empty() {
        eprintln!("cairn: no snapshots match: nothing meets the recovery point objective");
    } else if late > 0 {
        eprintln!("cairn: {late} sources are older than the recovery point objective of {}s", args.max_age.as_secs());
    }
    Ok(if late == 0 && !newest.is_empty() { 0 } else { crate::exit::FAILED })
}
