//! `cairn status`: recovery point status — the age of the newest snapshot of each source
//! (host and paths) against a target, with a non-zero exit when any source is late, so a
//! monitoring job can alert on it.

use anyhow::Result;
use cairn_core::status;

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

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let repo = global.open()?;
    let status = status::run(&repo, &args.filter.filter(), args.max_age, jiff::Timestamp::now())?;
    if global.json {
        print_json(&status)?;
    } else {
        for s in &status.sources {
            let label = if s.ok {
                "OK"
            } else if s.age.is_negative() {
                "CLOCK"
            } else {
                "LATE"
            };
            println!(
                "{:<5} {:>8.1}h old  {}  {}  {}",
                label,
                s.age.as_secs_f64() / 3600.0,
                s.snapshot.short(),
                s.host,
                s.paths.join(" ")
            );
        }
        for s in &status.sources {
            for id in &s.dated_in_future {
                eprintln!(
                    "cairn: snapshot {} of {} {} is dated in the future: not counted as a recovery point (check that host's clock)",
                    id.short(),
                    s.host,
                    s.paths.join(" ")
                );
            }
        }
        if status.sources.is_empty() {
            eprintln!("cairn: no snapshots match: nothing meets the recovery point objective");
        } else if status.late().next().is_some() {
            eprintln!(
                "cairn: {} sources do not meet the recovery point objective of {}s",
                status.late().count(),
                args.max_age.as_secs()
            );
        }
    }
    Ok(if status.ok { 0 } else { crate::exit::FAILED })
}

/// A duration in hours unless a unit says otherwise (`30m`, `6h`, `1d`).
fn parse_age(s: &str) -> Result<jiff::SignedDuration, String> {
    let d = cairn_core::parse_duration(s, 'h').map_err(|e| e.to_string())?;
    jiff::SignedDuration::try_from(d).map_err(|e| e.to_string())
}
