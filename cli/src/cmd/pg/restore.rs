//! `cairn pg restore`: a base backup unpacked, and PostgreSQL set to replay to a point.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_core::postgres::{self, Target, lsn};

use super::Cluster;
use crate::context::{GlobalArgs, bytes, print_json};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("point").required(true).args(["to_time", "to_lsn", "to_xid", "latest"])))]
pub(super) struct RestoreArgs {
    #[command(flatten)]
    cluster: Cluster,
    /// The new data directory (missing or empty).
    #[arg(long)]
    target: PathBuf,
    /// Replay to this time (RFC 3339, or a date-time without offset taken as UTC).
    #[arg(long)]
    to_time: Option<String>,
    /// Replay to this WAL position (X/Y).
    #[arg(long)]
    to_lsn: Option<String>,
    /// Replay to this transaction id (from the newest base backup unless --snapshot says).
    #[arg(long)]
    to_xid: Option<u64>,
    /// Replay all archived WAL.
    #[arg(long)]
    latest: bool,
    /// Start from this base backup instead of the newest one before the target.
    #[arg(long)]
    snapshot: Option<String>,
    /// Turn WAL archiving off in the restored cluster (for a drill or a copy beside a server
    /// still archiving, whose archive it must not branch).
    #[arg(long)]
    no_archive: bool,
    /// restore_command to write instead of cairn's own `pg wal-fetch` line.
    #[arg(long)]
    restore_command: Option<String>,
}

pub(super) fn restore(global: &GlobalArgs, args: RestoreArgs) -> Result<u8> {
    let target = if let Some(t) = &args.to_time {
        Target::Time(super::super::backup::parse_time(t)?)
    } else if let Some(l) = &args.to_lsn {
        Target::Lsn(lsn::parse_lsn(l).with_context(|| format!("`{l}` is not a WAL position (X/Y)"))?)
    } else if let Some(x) = args.to_xid {
        Target::Xid(x)
    } else {
        Target::Latest
    };
    let cluster = &args.cluster.cluster;
    let repo = global.open()?;
    let backups = postgres::base_backups(&repo, cluster)?;
    let (id, snapshot) = match &args.snapshot {
        Some(spec) => {
            let id = super::super::snapshot_ids(&repo, std::slice::from_ref(spec))?[0];
            let s = repo.load_snapshot(id)?;
            (id, s)
        }
        None => match postgres::choose_base(&backups, &target) {
            Some((id, s)) => (*id, s.clone()),
            None if backups.is_empty() => bail!("the repository has no base backup of cluster {cluster}"),
            None => bail!(
                "no base backup of cluster {cluster} was complete before the target; the oldest ended at {}",
                backups[0].1.postgres.as_ref().map(|p| p.stop_time.to_string()).unwrap_or_default()
            ),
        },
    };
    let base = postgres::base_of(&id, &snapshot)?;
    let unpacked = postgres::unpack(&repo, &snapshot, &args.target)
        .with_context(|| format!("restoring base backup {} into {}", id.short(), args.target.display()))?;
    let settings = recovery_settings(global, &args, cluster, &target)?;
    append_settings(&args.target, &settings)?;
    let signal = args.target.join("recovery.signal");
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&signal)
            .with_context(|| format!("writing {}", signal.display()))?;
    }
    if global.json {
        print_json(&serde_json::json!({
            "snapshot": id.to_string(),
            "postgres": base,
            "bytes": unpacked,
            "target": args.target,
        }))?;
    } else if !global.quiet {
        println!(
            "restored base backup {} (WAL {} to {}, ended {}) into {} ({})",
            id.short(),
            lsn::format_lsn(base.start_lsn),
            lsn::format_lsn(base.stop_lsn),
            base.stop_time,
            args.target.display(),
            bytes(unpacked)
        );
        println!(
            "recovery settings added to postgresql.auto.conf; start it with: pg_ctl -D {} start",
            args.target.display()
        );
        if global.password_file.is_none() && global.password_command.is_none() && args.restore_command.is_none() {
            println!("note: the server must find the repository password: set CAIRN_PASSWORD in its environment");
        }
    }
    Ok(0)
}

/// Single-quotes `arg` for the shell when it needs it.
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:=@,+%".contains(&b)) {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// A value in postgresql.conf: single quotes, doubled inside.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn recovery_settings(global: &GlobalArgs, args: &RestoreArgs, cluster: &str, target: &Target) -> Result<String> {
    let command = match &args.restore_command {
        Some(c) => c.clone(),
        None => {
            let exe = std::env::current_exe().context("finding the cairn program")?;
            let mut parts = vec![exe.to_string_lossy().into_owned(), "-r".into(), global.repo_url()?.to_string()];
            if let Some(f) = &global.password_file {
                parts.push("--password-file".into());
                parts.push(std::path::absolute(f)?.to_string_lossy().into_owned());
            }
            if let Some(c) = &global.password_command {
                parts.push("--password-command".into());
                parts.push(c.clone());
            }
            for o in &global.options {
                parts.push("-o".into());
                parts.push(o.clone());
            }
            parts.extend(["pg".into(), "wal-fetch".into(), "--cluster".into(), cluster.to_string()]);
            let mut line: Vec<String> = parts.iter().map(|p| shell_quote(p)).collect();
            line.extend(["%f".into(), "%p".into()]);
            line.join(" ")
        }
    };
    let mut out = format!(
        "\n# Added by cairn pg restore ({}).\nrestore_command = {}\nrecovery_target_timeline = 'latest'\n",
        jiff::Timestamp::now(),
        conf_quote(&command)
    );
    match target {
        // PostgreSQL reads `2026-12-04 12:41:16.528324+00`, not RFC 3339's `T…Z`.
        Target::Time(t) => {
            let text = t.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m-%d %H:%M:%S%.f+00").to_string();
            out.push_str(&format!("recovery_target_time = {}\n", conf_quote(&text)));
        }
        Target::Lsn(l) => out.push_str(&format!("recovery_target_lsn = {}\n", conf_quote(&lsn::format_lsn(*l)))),
        Target::Xid(x) => out.push_str(&format!("recovery_target_xid = '{x}'\n")),
        Target::Latest => {}
    }
    if !matches!(target, Target::Latest) {
        out.push_str("recovery_target_action = 'promote'\n");
    }
    if args.no_archive {
        out.push_str("archive_mode = 'off'\n");
    }
    Ok(out)
}

fn append_settings(dir: &Path, settings: &str) -> Result<()> {
    let path = dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(settings.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
