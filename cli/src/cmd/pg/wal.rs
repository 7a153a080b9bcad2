//! `cairn pg wal-push` and `wal-fetch`: what PostgreSQL runs once per WAL file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_core::format::wal::{WalKind, WalName};
use cairn_core::postgres::{self, Pushed, lsn};

use super::{Cluster, KeyCacheArgs};
use crate::context::{GlobalArgs, bytes};

/// A line on standard error with `-v` only: PostgreSQL runs wal-push and wal-fetch once per
/// file, and their output goes to its log.
macro_rules! verbose {
    ($global:expr, $($arg:tt)*) => {
        if $global.verbose {
            eprintln!($($arg)*)
        }
    };
}

#[derive(clap::Args, Debug)]
pub(super) struct WalFetchArgs {
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
    /// Internal: the cluster's WAL segment size, for the background fetcher to name the
    /// segments that follow (the foreground reads it from the segment it delivered).
    #[arg(long, hide = true, default_value_t = 16 << 20)]
    segment_size: u64,
    /// The file's name (PostgreSQL's %f).
    name: String,
    /// Where to write it (PostgreSQL's %p).
    dest: PathBuf,
}
pub(super) fn wal_push(global: &GlobalArgs, cluster: &str, keys: &KeyCacheArgs, path: &Path) -> Result<u8> {
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

/// PostgreSQL stops recovery when restore_command exits above 125; below, it takes the file
/// for "not archived" and may end recovery early.
const FETCH_FAILED: u8 = crate::exit::WAL_FETCH_FAILED;

pub(super) fn wal_fetch(global: &GlobalArgs, args: &WalFetchArgs) -> Result<u8> {
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

/// Writes `data` to `path` whole (a temporary file synced, then renamed into place), private
/// to the user PostgreSQL runs as.
fn write_whole(path: &Path, data: &[u8]) -> Result<()> {
    cairn_core::advanced::private::write_file_synced(path, data, 0o600)
        .with_context(|| format!("writing {}", path.display()))
}

/// After segment `name` was delivered: drop spooled files before it, and start a background
/// fetcher for the ones after it.
fn after_fetch(args: &WalFetchArgs, name: &WalName, spool: &Path) {
    if name.kind != WalKind::Segment || args.prefetch == 0 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(spool) {
        for e in entries.flatten() {
            let file_name = e.file_name();
            let Some(file_name) = file_name.to_str().filter(|n| !n.starts_with('.')) else { continue };
            // Segments delivered or passed, and the temporary files of unfinished writes.
            let older = WalName::parse(file_name).ok().is_none_or(|n| n <= *name);
            if older {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // The segment just delivered says how large the cluster's segments are.
    let size = read_header(&args.dest).map_or(args.segment_size, |h| h.segment_size);
    let Some(next) = lsn::next_segment(name, size) else { return };
    // The same command line, run in the background for the next segment.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(at) = argv.iter().rposition(|a| a == args.name.as_str()) else { return };
    let Ok(exe) = std::env::current_exe() else { return };
    let mut child_args: Vec<std::ffi::OsString> = argv[1..].to_vec();
    child_args[at - 1] = next.to_string().into();
    let Some(fetch_at) = child_args.iter().position(|a| a == "wal-fetch") else { return };
    // The same --spool (or the same default, relative to the same working directory).
    child_args.insert(fetch_at + 1, "--background".into());
    child_args.insert(fetch_at + 2, "--segment-size".into());
    child_args.insert(fetch_at + 3, size.to_string().into());
    use std::os::unix::process::CommandExt;
    let _ = std::process::Command::new(exe)
        .args(child_args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
}

/// The long page header at the start of the file at `path`.
fn read_header(path: &Path) -> Option<lsn::LongHeader> {
    use std::io::Read;
    let mut head = [0u8; lsn::LONG_HEADER];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).ok()?;
    lsn::long_header(&head)
}

/// The background fetcher: up to `--prefetch` segments from `first` on, side by side, each
/// written to the spool whole (one not archived is skipped). One runs at a time.
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
        match lsn::next_segment(&n, args.segment_size) {
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
