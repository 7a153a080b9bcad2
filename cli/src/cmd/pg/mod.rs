//! `cairn pg backup|wal-push|wal-fetch|restore|check`: PostgreSQL continuous archiving and
//! point-in-time restore in the same repository and retention chain as everything else.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use cairn_core::backup::{self, BackupOptions, BackupSource};
use cairn_core::postgres::{self, BASE_TAR, basebackup::BaseBackupStream, chain, lsn};

use crate::context::{GlobalArgs, bytes, print_json};

mod restore;
mod wal;

/// PostgreSQL: base backups, the WAL archive, point-in-time restore.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Take the repository and its password file from this policy file (docs/POLICY.md), as
    /// archive_command = 'cairn pg --policy /etc/cairn/policy.toml wal-push %p'.
    #[arg(long, env = "CAIRN_POLICY")]
    policy: Option<PathBuf>,
    #[command(subcommand)]
    what: What,
}

/// The cluster a command is about.
#[derive(clap::Args, Debug, Clone)]
pub(super) struct Cluster {
    /// The name this cluster's base backups and WAL go by in the repository (one repository
    /// can hold several clusters).
    #[arg(long, env = "CAIRN_PG_CLUSTER", default_value = "main")]
    pub(super) cluster: String,
}

/// Where the key cache is, for the commands PostgreSQL runs once per WAL file.
#[derive(clap::Args, Debug, Clone)]
pub(super) struct KeyCacheArgs {
    /// Keep the unlocked key here between calls (a private directory on a memory file system;
    /// default $XDG_RUNTIME_DIR/cairn-keys or /dev/shm/cairn-keys-UID).
    #[arg(long, env = "CAIRN_KEY_CACHE")]
    key_cache: Option<PathBuf>,
    /// Derive the key from the password on every call.
    #[arg(long, conflicts_with = "key_cache")]
    no_key_cache: bool,
}

impl KeyCacheArgs {
    pub(super) fn dir(&self) -> Option<PathBuf> {
        if self.no_key_cache {
            return None;
        }
        self.key_cache.clone().or_else(cairn_core::advanced::KeyCache::default_dir)
    }
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Take a base backup of a running cluster with pg_basebackup (connection options after
    /// `--`, or the PG* environment variables).
    Backup(BackupArgs),
    /// Archive one WAL file: archive_command = 'cairn pg wal-push %p'.
    WalPush {
        #[command(flatten)]
        cluster: Cluster,
        #[command(flatten)]
        keys: KeyCacheArgs,
        /// The file (PostgreSQL's %p).
        path: PathBuf,
    },
    /// Fetch one WAL file: restore_command = 'cairn pg wal-fetch %f %p'. Exit 1 when it was
    /// never archived; 126 when it could not be read (PostgreSQL then stops recovery rather
    /// than ending it early).
    WalFetch(wal::WalFetchArgs),
    /// Restore a base backup into a new data directory, set to replay the archived WAL to a
    /// point in time and promote.
    Restore(restore::RestoreArgs),
    /// Verify that every base backup has unbroken WAL to the newest archived segment.
    Check {
        #[command(flatten)]
        cluster: Cluster,
    },
}

#[derive(clap::Args, Debug)]
struct BackupArgs {
    #[command(flatten)]
    cluster: Cluster,
    /// Directory of the PostgreSQL programs (default: PATH, then the newest
    /// /usr/lib/postgresql/*/bin).
    #[arg(long, env = "CAIRN_PG_BIN")]
    pg_bin: Option<PathBuf>,
    /// Tag for the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Host name to record.
    #[arg(long)]
    host: Option<String>,
    /// Arguments for pg_basebackup (connection: -h, -p, -U, -d).
    #[arg(last = true)]
    pg_args: Vec<String>,
}
pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let from_policy;
    let global = match &args.policy {
        Some(file) => {
            from_policy = with_policy_repository(global, file)?;
            &from_policy
        }
        None => global,
    };
    match args.what {
        What::Backup(a) => backup(global, a),
        What::WalPush { cluster, keys, path } => wal::wal_push(global, &cluster.cluster, &keys, &path),
        What::WalFetch(a) => wal::wal_fetch(global, &a),
        What::Restore(a) => restore::restore(global, a),
        What::Check { cluster } => check(global, &cluster.cluster),
    }
}

/// `global` with the repository and password file of the policy in `file`.
fn with_policy_repository(global: &GlobalArgs, file: &Path) -> Result<GlobalArgs> {
    let policy = super::run::load(file)?;
    let mut g = global.clone();
    g.repo = Some(policy.repository.url.clone());
    if let Some(pw) = &policy.repository.password_file {
        g.password_file = Some(pw.clone());
        g.password_command = None;
    }
    Ok(g)
}
fn backup(global: &GlobalArgs, args: BackupArgs) -> Result<u8> {
    let program = postgres::find_program(args.pg_bin.as_deref(), "pg_basebackup")
        .context("pg_basebackup not found: install PostgreSQL's client programs or give --pg-bin")?;
    let repo = global.open()?;
    let cell = Arc::new(OnceLock::new());
    let stream = BaseBackupStream::start(&program, &args.pg_args, &args.cluster.cluster, Arc::clone(&cell))?;
    let mut opts = BackupOptions::default();
    opts.tags = args.tags;
    opts.host = args.host;
    opts.uploads = global.connections;
    opts.postgres = Some(cell);
    let progress = crate::progress::Reporter::new(global, "backup");
    let result = backup::run(&repo, BackupSource::reader(BASE_TAR, stream), &opts, &progress)
        .map_err(|e| anyhow::Error::new(e).context("base backup failed; no snapshot was written"))?;
    progress.finish();
    let snapshot = repo.load_snapshot(result.snapshot)?;
    let base = postgres::base_of(&result.snapshot, &snapshot)?;
    let s = &result.summary;
    if global.json {
        print_json(&serde_json::json!({
            "snapshot": result.snapshot.to_string(),
            "postgres": base,
            "summary": s,
        }))?;
    } else if !global.quiet {
        println!(
            "base backup of cluster {}: WAL {} to {} on timeline {}",
            base.cluster,
            lsn::format_lsn(base.start_lsn),
            lsn::format_lsn(base.stop_lsn),
            base.stop_timeline
        );
        println!(
            "read {}, added {} ({} stored) in {:.2}s",
            bytes(s.bytes_read),
            bytes(s.bytes_new),
            bytes(s.bytes_stored),
            s.seconds
        );
        println!("snapshot {} saved", result.snapshot.short());
    }
    Ok(0)
}

fn check(global: &GlobalArgs, cluster: &str) -> Result<u8> {
    let repo = global.open()?;
    let report = chain::check(&repo, cluster)?;
    if global.json {
        print_json(&serde_json::json!({
            "cluster": report.cluster,
            "whole": report.is_whole(),
            "files": report.files,
            "foreign": report.foreign,
            "newest": report.newest.as_ref().map(|(n, t)| serde_json::json!({"name": n.to_string(), "archived": t})),
            "window": report.window().map(|(from, to)| serde_json::json!({"from": from, "to": to})),
            "backups": report.backups.iter().map(|b| serde_json::json!({
                "snapshot": b.snapshot.to_string(),
                "postgres": b.backup,
                "reaches": b.reaches.map(|r| r.to_string()),
                "gaps": b.gaps.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "missing_history": b.missing_history,
            })).collect::<Vec<_>>(),
        }))?;
        return Ok(if report.is_whole() { 0 } else { crate::exit::FAILED });
    }
    if report.backups.is_empty() {
        println!("cluster {cluster}: no base backup ({} archived WAL files)", report.files);
        return Ok(0);
    }
    let newest = report.newest.as_ref().map_or("none".to_string(), |(n, t)| format!("{n} (archived {t})"));
    println!(
        "cluster {cluster}: {} base backups, {} archived WAL files, newest segment {newest}",
        report.backups.len(),
        report.files
    );
    for b in &report.backups {
        let head = format!(
            "  {} ended {} (WAL {} to {})",
            b.snapshot.short(),
            b.backup.stop_time,
            lsn::format_lsn(b.backup.start_lsn),
            lsn::format_lsn(b.backup.stop_lsn)
        );
        if b.is_whole() {
            println!("{head}: whole to {}", b.reaches.map_or("its end".into(), |r| r.to_string()));
            continue;
        }
        println!("{head}: BROKEN");
        for g in &b.gaps {
            println!("    missing {g}");
        }
        for t in &b.missing_history {
            println!("    missing timeline history {t:08X}.history");
        }
    }
    if let Some(why) = &report.foreign {
        println!("  WRONG ARCHIVE: {why}");
    }
    match report.window() {
        Some((from, to)) => println!("recovery window: {from} to {to}"),
        None => println!("recovery window: none (no base backup has whole WAL)"),
    }
    Ok(if report.is_whole() { 0 } else { crate::exit::FAILED })
}
