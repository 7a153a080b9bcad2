//! `cairn backup`

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_core::backup::{self, BackupOptions, BackupSource};

use crate::context::{GlobalArgs, bytes, print_json};

/// Back up paths, stdin or a command's output.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Read the data to back up from standard input.
    #[arg(long, conflicts_with = "stdin_from_command")]
    stdin: bool,
    /// Run the command after `--` and back up its output; its failure fails the backup.
    #[arg(long)]
    stdin_from_command: bool,
    /// File name for the stream in the snapshot.
    #[arg(long, default_value = "stdin")]
    stdin_filename: String,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Host name to record.
    #[arg(long)]
    host: Option<String>,
    /// Snapshot time (RFC 3339), for imported or replayed histories.
    #[arg(long)]
    time: Option<String>,
    /// Leave out paths matching this glob (repeatable).
    #[arg(long = "exclude", short = 'e')]
    excludes: Vec<String>,
    /// Read exclude globs from this file, one per line (repeatable).
    #[arg(long = "exclude-file")]
    exclude_files: Vec<PathBuf>,
    /// Do not cross file system boundaries.
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Read every file, ignoring the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Ignore ctime changes in change detection.
    #[arg(long)]
    ignore_ctime: bool,
    /// Ignore inode changes in change detection (e.g. network file systems).
    #[arg(long)]
    ignore_inode: bool,
    /// Do not record extended attributes (ACLs are recorded unless --no-acls).
    #[arg(long)]
    no_xattrs: bool,
    /// Do not record POSIX ACLs.
    #[arg(long)]
    no_acls: bool,
    /// Leave out files and directories marked no-dump (`chattr +d`).
    #[arg(long)]
    exclude_nodump: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let mut excludes = args.excludes.clone();
    for f in &args.exclude_files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading exclude file {}", f.display()))?;
        excludes.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    let source = if args.stdin {
        if !args.paths.is_empty() {
            bail!("--stdin takes no paths");
        }
        BackupSource::stdin(&args.stdin_filename)
    } else if args.stdin_from_command {
        if args.paths.is_empty() {
            bail!("--stdin-from-command needs a command after `--`");
        }
        BackupSource::command(&args.stdin_filename, args.paths.iter().map(|p| p.to_string_lossy().into_owned()))
    } else {
        if args.paths.is_empty() {
            bail!("nothing to back up: give at least one path, --stdin or --stdin-from-command");
        }
        BackupSource::paths(args.paths)
    };
    let mut opts = BackupOptions::default();
    opts.tags = args.tags;
    opts.host = args.host;
    opts.time = args.time.as_deref().map(parse_time).transpose()?;
    opts.excludes = excludes;
    opts.one_file_system = args.one_file_system;
    opts.force = args.force;
    opts.ignore_ctime = args.ignore_ctime;
    opts.ignore_inode = args.ignore_inode;
    opts.no_xattrs = args.no_xattrs;
    opts.no_acls = args.no_acls;
    opts.exclude_nodump = args.exclude_nodump;
    opts.uploads = global.connections;
    let repo = global.open()?;
    let progress = crate::progress::Reporter::new(global, "backup");
    if let BackupSource::Paths(paths) = &source {
        progress.count_ahead(paths);
    }
    // Every failure but one comes before the snapshot is written; the one after it (a pack it
    // needs deleted meanwhile) names the snapshot itself.
    let result = backup::run(&repo, source, &opts, &progress).map_err(|e| {
        let written = matches!(&e, cairn_core::Error::Corrupt { reason, .. } if reason.starts_with("written, but"));
        anyhow::Error::new(e).context(if written { "backup failed" } else { "backup failed; no snapshot was written" })
    })?;
    progress.finish();
    let s = &result.summary;
    if global.json {
        print_json(&serde_json::json!({
            "snapshot": result.snapshot.to_string(),
            "parent": result.parent.map(|p| p.to_string()),
            "summary": s,
        }))?;
    } else if !global.quiet {
        println!(
            "files: {} new, {} changed, {} unmodified; {} dirs",
            s.files_new, s.files_changed, s.files_unmodified, s.dirs
        );
        let holes = if s.bytes_in_holes > 0 {
            format!(" ({} in holes, not read)", bytes(s.bytes_in_holes))
        } else {
            String::new()
        };
        println!(
            "read {} of {}{holes}, added {} ({} stored) in {:.2}s",
            bytes(s.bytes_read),
            bytes(s.total_bytes),
            bytes(s.bytes_new),
            bytes(s.bytes_stored),
            s.seconds
        );
        println!("snapshot {} saved", result.snapshot.short());
    }
    let mut partial = false;
    if !result.unreadable.is_empty() {
        eprintln!("cairn: {} entries could not be read and are not in the snapshot:", result.unreadable.len());
        for e in &result.unreadable {
            eprintln!("  {e}");
        }
        partial = true;
    }
    if !result.changed.is_empty() {
        eprintln!(
            "cairn: {} files kept changing while they were read; the snapshot holds them as last read, which may \
             mix versions:",
            result.changed.len()
        );
        for path in &result.changed {
            eprintln!("  {}", path.display());
        }
        partial = true;
    }
    Ok(if partial { crate::exit::PARTIAL } else { 0 })
}

/// RFC 3339 time, or a date-time without offset taken as UTC.
pub fn parse_time(t: &str) -> Result<jiff::Timestamp> {
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let dt: jiff::civil::DateTime = t.parse().with_context(|| format!("`{t}` is not an RFC 3339 time"))?;
    Ok(dt.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}
