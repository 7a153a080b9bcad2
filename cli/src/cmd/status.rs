//! `cairn status`: recovery point status — the age of the newest snapshot of each source
//! (host and paths) against a target, with a non-zero exit when any source is late, so a
//! monitoring job can alert on it.

use anyhow::{Context, Result};
use cairn_core::status;

use super::FilterArgs;
use crate::context::{GlobalArgs, print_json};

/// Report the age of the newest snapshot of each source against a recovery point objective,
/// or with --policy whether every promise of a policy file is kept.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The recovery point objective, e.g. 6h, 1d, 30m.
    #[arg(long, default_value = "24h", value_parser = parse_age)]
    max_age: jiff::SignedDuration,
    #[command(flatten)]
    filter: FilterArgs,
    /// Judge every promise of this policy file (docs/POLICY.md): each source's RPO and
    /// retention tiers, each copy's lag, the check and the drill.
    #[arg(long, conflicts_with = "max_age")]
    policy: Option<std::path::PathBuf>,
    /// For each PostgreSQL cluster with base backups: the recovery point objective its newest
    /// archived WAL must meet (set archive_timeout below it on a quiet server).
    #[arg(long, default_value = "1h", value_parser = parse_age)]
    wal_max_age: jiff::SignedDuration,
    /// With --policy: also write the status in Prometheus' text format to this file (for
    /// node_exporter's textfile collector; written whole, then renamed into place).
    #[arg(long, requires = "policy")]
    metrics_file: Option<std::path::PathBuf>,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    if let Some(file) = &args.policy {
        return policy_status(global, file, args.metrics_file.as_deref());
    }
    let repo = global.open()?;
    let now = jiff::Timestamp::now();
    let status = status::run(&repo, &args.filter.filter(), args.max_age, now)?;
    let clusters = postgres_status(&repo, args.wal_max_age, now)?;
    let clusters_ok = clusters.iter().all(|c| c.ok);
    if global.json {
        let mut value = serde_json::to_value(&status)?;
        value["postgres"] = serde_json::to_value(&clusters)?;
        value["ok"] = serde_json::Value::Bool(status.ok && clusters_ok);
        print_json(&value)?;
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
    if !global.json {
        for c in &clusters {
            let label = if c.ok { "OK" } else { "LATE" };
            let age = c.newest_wal_age.map_or("no WAL archived".to_string(), |a| format!("{:.0}s", a.as_secs_f64()));
            let window = match (&c.window_from, &c.window_to) {
                (Some(f), Some(t)) => format!("recovery window {f} to {t}"),
                _ => "no recovery window".to_string(),
            };
            println!(
                "{label:<5} postgres cluster {}: newest WAL {} ({age} ago: the achieved RPO); {window}{}",
                c.cluster,
                c.newest_wal.as_deref().unwrap_or("none"),
                if c.whole { "" } else { "; the WAL chain has gaps (cairn pg check names them)" }
            );
        }
    }
    Ok(if status.ok && clusters_ok { 0 } else { crate::exit::FAILED })
}

/// What `status` says of a PostgreSQL cluster.
#[derive(serde::Serialize)]
struct ClusterStatus {
    cluster: String,
    newest_wal: Option<String>,
    /// Age of the newest archived WAL: the recovery point achieved.
    newest_wal_age: Option<jiff::SignedDuration>,
    window_from: Option<jiff::Timestamp>,
    window_to: Option<jiff::Timestamp>,
    whole: bool,
    ok: bool,
}

/// Each cluster with base backups: its newest archived WAL's age against `max_age`, its
/// recovery window, whether its chain is whole.
fn postgres_status(
    repo: &cairn_core::Repository,
    max_age: jiff::SignedDuration,
    now: jiff::Timestamp,
) -> Result<Vec<ClusterStatus>> {
    let mut out = Vec::new();
    for report in cairn_core::postgres::chain::check_all(repo)? {
        let age = report.newest.as_ref().map(|(_, t)| now.duration_since(*t));
        let window = report.window();
        out.push(ClusterStatus {
            ok: report.is_whole() && age.is_some_and(|a| a <= max_age),
            newest_wal: report.newest.as_ref().map(|(n, _)| n.to_string()),
            newest_wal_age: age,
            window_from: window.map(|w| w.0),
            window_to: window.map(|w| w.1),
            whole: report.is_whole(),
            cluster: report.cluster,
        });
    }
    Ok(out)
}

fn policy_status(global: &GlobalArgs, file: &std::path::Path, metrics: Option<&std::path::Path>) -> Result<u8> {
    let policy = super::run::load(file)?;
    let repo = super::run::open(global, &policy.repository)?;
    let opened = super::run::open_copies(global, &policy);
    let copies = super::run::targets(&opened);
    let status = cairn_core::policy::status::status(&policy, &repo, &copies, super::run::now()?)
        .context("judging the policy")?;
    if let Some(path) = metrics {
        write_whole(path, status.metrics().as_bytes())?;
    }
    if global.json {
        print_json(&status)?;
    } else {
        print_policy_status(&status);
    }
    Ok(if status.ok { 0 } else { crate::exit::FAILED })
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a reader
/// (node_exporter) never sees half a file. The collector runs as another user: the metrics
/// hold no secret, so the file is world-readable.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    cairn_core::advanced::private::write_file(path, bytes, 0o644).with_context(|| format!("writing {}", path.display()))
}

fn print_policy_status(status: &cairn_core::policy::status::PolicyStatus) {
    let mark = |ok: bool| if ok { "OK  " } else { "FAIL" };
    let hours = |s: i64| s as f64 / 3600.0;
    for s in &status.sources {
        let age = s.age_seconds.map_or_else(|| "no snapshot".to_string(), |a| format!("{:.1}h old", hours(a)));
        println!("{} source {}: {age}, rpo {:.0}h", mark(s.ok), s.name, hours(s.rpo_seconds as i64));
        for g in &s.tier_gaps {
            println!("       no snapshot kept for tier {} from {} to {}", g.tier, g.from, g.to);
        }
        for id in &s.dated_in_future {
            println!("       snapshot {} is dated in the future: not counted", id.short());
        }
    }
    for c in &status.copies {
        match (&c.error, c.lag_seconds) {
            (Some(e), _) => println!("{} copy {}: cannot be read: {e}", mark(false), c.name),
            (None, lag) => println!(
                "{} copy {}: {} snapshots behind, lag {:.1}h{}",
                mark(c.ok),
                c.name,
                c.missing,
                hours(lag.unwrap_or(0)),
                c.max_lag_seconds.map(|m| format!(" (max {:.0}h)", hours(m as i64))).unwrap_or_default()
            ),
        }
    }
    if let Some(c) = &status.check {
        let last = c.last_success.map_or_else(|| "never".to_string(), |t| t.to_string());
        println!(
            "{} check: last success {last}, every {:.0}h; the last cycle read {} of {} slices",
            mark(c.ok),
            hours(c.every_seconds as i64),
            c.slices_covered,
            c.slices
        );
    }
    if let Some(d) = &status.drill {
        let last = d.last.map_or_else(|| "never".to_string(), |t| t.to_string());
        let times: Vec<String> = d.restore_seconds.iter().map(|(s, secs)| format!("{s} {secs:.1}s")).collect();
        println!(
            "{} drill: last {last}, every {:.0}h, rto {}s; restore {}",
            mark(d.ok),
            hours(d.every_seconds as i64),
            d.rto_seconds,
            if times.is_empty() { "none".to_string() } else { times.join(", ") }
        );
    }
    if let Some(e) = &status.erasure {
        let overdue = e.pending.iter().filter(|p| p.overdue).count();
        println!(
            "{} erasure: {} requests, {} pending, {overdue} past the deadline of {:.0}d",
            mark(e.ok),
            e.requests,
            e.pending.len(),
            e.deadline_seconds as f64 / 86400.0
        );
        for p in &e.pending {
            println!("       request {} since {}: pending in {}", p.request, p.since, p.repositories.join(", "));
        }
    }
    println!("{}", if status.ok { "every promise of the policy is kept" } else { "the policy is NOT kept" });
}

/// A duration in hours unless a unit says otherwise (`30m`, `6h`, `1d`).
fn parse_age(s: &str) -> Result<jiff::SignedDuration, String> {
    let d = cairn_core::parse_duration(s, 'h').map_err(|e| e.to_string())?;
    jiff::SignedDuration::try_from(d).map_err(|e| e.to_string())
}
