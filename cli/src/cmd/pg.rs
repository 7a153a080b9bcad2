//! `cairn pg backup|wal-push|wal-fetch|restore|check`: PostgreSQL continuous archiving and
//! point-in-time restore in the same repository and retention chain as everything else.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use cairn_core::backup::{self, BackupOptions, BackupSource};
use cairn_core::format::wal::{WalKind, WalName};
use cairn_core::postgres::{self, BASE_TAR, Pushed, Target, basebackup::BaseBackupStream, chain, lsn};

use crate::context::{GlobalArgs, bytes, print_json};

/// A line on standard error with `-v` only: PostgreSQL runs wal-push and wal-fetch once per
/// file, and their output goes to its log.
macro_rules! verbose {
    ($global:expr, $($arg:tt)*) => {
        if $global.verbose {
            eprintln!($($arg)*)
        }
    };
}

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
struct Cluster {
    /// The name this cluster's base backups and WAL go by in the repository (one repository
    /// can hold several clusters).
    #[arg(long, env = "CAIRN_PG_CLUSTER", default_value = "main")]
    cluster: String,
}

/// Where the key cache is, for the commands PostgreSQL runs once per WAL file.
#[derive(clap::Args, Debug, Clone)]
struct KeyCacheArgs {
    /// Keep the unlocked key here between calls (a private directory on a memory file system;
    /// default $XDG_RUNTIME_DIR/cairn-keys or /dev/shm/cairn-keys-UID).
    #[arg(long, env = "CAIRN_KEY_CACHE")]
    key_cache: Option<PathBuf>,
    /// Derive the key from the password on every call.
    #[arg(long, conflicts_with = "key_cache")]
    no_key_cache: bool,
}

impl KeyCacheArgs {
    fn dir(&self) -> Option<PathBuf> {
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
    WalFetch(WalFetchArgs),
    /// Restore a base backup into a new data directory, set to replay the archived WAL to a
    /// point in time and promote.
    Restore(RestoreArgs),
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

#[derive(clap::Args, Debug)]
struct WalFetchArgs {
    #[command(flatten)]
    cluster: Cluster,
    #[command(flatten)]
    keys: KeyCacheArgs,
    /// Segments to fetch ahead, in the background, while PostgreSQL replays this one (0: none).
    #[arg(long, default_value_t = 8)]
    prefetch: u32,
    /// Where fetched-ahead segments wait (default: cairn-wal-spool in the data directory, the
    /// directory PostgreSQL runs restore_command in).
    #[arg(long)]
    spool: Option<PathBuf>,
    /// Internal: run as the background fetcher (NAME is the first segment to fetch ahead).
    #[arg(long, hide = true)]
    background: bool,
    /// The file's name (PostgreSQL's %f).
    name: String,
    /// Where to write it (PostgreSQL's %p).
    dest: PathBuf,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("point").required(true).args(["to_time", "to_lsn", "to_xid", "latest"])))]
struct RestoreArgs {
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
        What::WalPush { cluster, keys, path } => wal_push(global, &cluster.cluster, &keys, &path),
        What::WalFetch(a) => wal_fetch(global, &a),
        What::Restore(a) => restore(global, a),
        What::Check { cluster } => check(global, &cluster.cluster),
    }
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

fn wal_push(global: &GlobalArgs, cluster: &str, keys: &KeyCacheArgs, path: &Path) -> Result<u8> {
    let name =
        path.file_name().and_then(|n| n.to_str()).with_context(|| format!("{} names no file", path.display()))?;
    let name = WalName::parse(name)?;
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let repo = global.open_cached(keys.dir().as_deref())?;
    let pushed = postgres::push(&repo, cluster, &name, &data).with_context(|| format!("archiving {name}"))?;
    match pushed {
        Pushed::Stored(size) => verbose!(global, "archived {name} ({} stored)", bytes(size)),
        Pushed::AlreadyArchived => verbose!(global, "{name} was already archived with the same content"),
    }
    Ok(0)
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

/// PostgreSQL stops recovery when restore_command exits above 125; below, it takes the file
/// for "not archived" and may end recovery early.
const FETCH_FAILED: u8 = crate::exit::WAL_FETCH_FAILED;

fn wal_fetch(global: &GlobalArgs, args: &WalFetchArgs) -> Result<u8> {
    let name = WalName::parse(&args.name)?;
    let spool = args.spool.clone().unwrap_or_else(|| PathBuf::from("cairn-wal-spool"));
    if args.background {
        return prefetch(global, args, &name, &spool);
    }
    let dest = &args.dest;
    // A file fetched ahead is taken as it is (it was written whole, then renamed).
    let spooled = spool.join(name.to_string());
    if std::fs::rename(&spooled, dest).is_ok() {
        verbose!(global, "{name} from the fetch-ahead spool");
        after_fetch(args, &name, &spool);
        return Ok(0);
    }
    let fetched = global
        .open_cached(args.keys.dir().as_deref())
        .and_then(|repo| Ok(postgres::fetch(&repo, &args.cluster.cluster, &name)?));
    match fetched {
        Ok(Some(data)) => {
            write_whole(dest, &data).map_err(|e| {
                eprintln!("cairn: error: writing {}: {e:#}", dest.display());
                e
            })?;
            verbose!(global, "fetched {name}");
            after_fetch(args, &name, &spool);
            Ok(0)
        }
        Ok(None) => {
            verbose!(global, "{name} is not archived");
            Ok(crate::exit::FAILED)
        }
        Err(e) => {
            eprintln!("cairn: error: fetching {name}: {e:#}");
            Ok(FETCH_FAILED)
        }
    }
}

/// Writes `data` to `path` through a temporary file renamed into place.
fn write_whole(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing into {}", dir.display()))?;
    tmp.write_all(data).and_then(|()| tmp.as_file().sync_data()).context("writing")?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// After segment `name` was delivered: drop spooled files before it, and start a background
/// fetcher for the ones after it.
fn after_fetch(args: &WalFetchArgs, name: &WalName, spool: &Path) {
    if name.kind != WalKind::Segment || args.prefetch == 0 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(spool) {
        for e in entries.flatten() {
            let older = e.file_name().to_str().and_then(|n| WalName::parse(n).ok()).is_none_or(|n| n <= *name);
            if older {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let Some(next) = next_segment(name) else { return };
    // The same command line, run in the background for the next segment.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(at) = argv.iter().rposition(|a| a == args.name.as_str()) else { return };
    let Ok(exe) = std::env::current_exe() else { return };
    let mut child_args: Vec<std::ffi::OsString> = argv[1..].to_vec();
    child_args[at - 1] = next.to_string().into();
    let Some(fetch_at) = child_args.iter().position(|a| a == "wal-fetch") else { return };
    // The same --spool (or the same default, relative to the same working directory).
    child_args.insert(fetch_at + 1, "--background".into());
    use std::os::unix::process::CommandExt;
    let _ = std::process::Command::new(exe)
        .args(child_args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
}

/// The segment after `name` on its timeline, as PostgreSQL numbers them (16 MiB segments:
/// 256 to a `log`; other sizes wrap earlier, and a name that does not exist is simply not
/// found by the fetcher).
fn next_segment(name: &WalName) -> Option<WalName> {
    let (log, seg) = if name.seg >= 0xFF { (name.log.checked_add(1)?, 0) } else { (name.log, name.seg + 1) };
    Some(WalName::segment(name.timeline, log, seg))
}

/// The background fetcher: up to `--prefetch` segments from `first` on, side by side, each
/// written to the spool whole; stops at the first that is not archived. One runs at a time.
fn prefetch(global: &GlobalArgs, args: &WalFetchArgs, first: &WalName, spool: &Path) -> Result<u8> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(spool)?;
    let lock = std::fs::File::create(spool.join(".lock"))?;
    if lock.try_lock().is_err() {
        return Ok(0);
    }
    let repo = global.open_cached(args.keys.dir().as_deref())?;
    let mut names = Vec::new();
    let mut n = *first;
    for _ in 0..args.prefetch {
        if !spool.join(n.to_string()).exists() {
            names.push(n);
        }
        match next_segment(&n) {
            Some(next) => n = next,
            None => break,
        }
    }
    std::thread::scope(|s| {
        for name in &names {
            let repo = &repo;
            s.spawn(move || {
                if let Ok(Some(data)) = postgres::fetch(repo, &args.cluster.cluster, name) {
                    let _ = write_whole(&spool.join(name.to_string()), &data);
                }
            });
        }
    });
    Ok(0)
}

fn restore(global: &GlobalArgs, args: RestoreArgs) -> Result<u8> {
    let target = if let Some(t) = &args.to_time {
        Target::Time(super::backup::parse_time(t)?)
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
            let id = super::snapshot_ids(&repo, std::slice::from_ref(spec))?[0];
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
