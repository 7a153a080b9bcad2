//! `cairn`: the command-line front end of the Cairn backup engine.
//!
//! Argument parsing and output live here; all the work is in `cairn-core`. Each verb has its own
//! module in `cmd/` with its `Args` and a `run` function.

mod cmd;
mod context;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::GlobalArgs;

/// jemalloc rather than glibc's allocator: a backup allocates and frees blob and pack buffers of
/// 256 KiB to 16 MiB all the time, and glibc hands such blocks back to the kernel and faults them
/// in again (`munmap` with a TLB shootdown to the other core, then `do_anonymous_page`), which
/// on a first backup of 1 GiB of media files cost 0.7 s of system time. Measured by
/// `LD_PRELOAD` on the same binary, alternating: media 1.85-1.87 s -> 1.45 s, a 30 000-file
/// tree 3.39-3.48 s -> 3.16-3.18 s; peak RSS 100 -> 120-136 MB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Content-defined deduplicating backups: encrypted, compressed, verifiable.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new repository.
    Init(cmd::init::Args),
    /// Back up files and directories, or a stream (a database dump).
    Backup(cmd::backup::Args),
    /// List snapshots.
    Snapshots(cmd::snapshots::Args),
    /// Add, remove or set tags of snapshots.
    Tag(cmd::tag::Args),
    /// List the files in a snapshot.
    Ls(cmd::ls::Args),
    /// Restore a snapshot (or a path in it) into a directory.
    Restore(cmd::restore::Args),
    /// Write a file of a snapshot to standard output (a directory as a tar stream).
    Dump(cmd::dump::Args),
    /// Browse the snapshots as a read-only file system (FUSE).
    Mount(cmd::mount::Args),
    /// Find paths in snapshots.
    Find(cmd::inspect::FindArgs),
    /// Show what changed between two snapshots.
    Diff(cmd::inspect::DiffArgs),
    /// Sizes: restore size, deduplicated and stored size, compression.
    Stats(cmd::inspect::StatsArgs),
    /// Erase paths from existing snapshots.
    Rewrite(cmd::rewrite::Args),
    /// Rebuild the index or rewrite damaged snapshots.
    Repair(cmd::repair::Args),
    /// Verify the repository's structure and, optionally, its data.
    Check(cmd::check::Args),
    /// Recovery point status: age of the newest snapshot per source.
    Status(cmd::status::Args),
    /// Manage key files (passwords).
    Key(cmd::key::Args),
    /// Manage tenants: repositories nested in this one, each under its own key.
    Tenant(cmd::tenant::Args),
    /// Upgrade the repository to the newest format version, in place.
    Migrate(cmd::migrate::Args),
    /// Copy snapshots to another repository.
    Copy(cmd::copy::Args),
    /// Remove data that no snapshot needs.
    Prune(cmd::prune::Args),
    /// Check a backup policy file (docs/POLICY.md).
    Policy(cmd::policy::Args),
    /// Do what a policy file says is due: backups, retention, prune, copies, check, drill.
    Run(cmd::run::Args),
    /// Write the systemd timer (or print the crontab line) that runs a policy.
    Schedule(cmd::schedule::Args),
    /// Erase paths from every snapshot of a policy's repository and copies, bytes included.
    Erase(cmd::erase::Args),
    /// Write a one-page HTML report of whether a policy was kept.
    Report(cmd::report::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::docs::CompletionsArgs),
    /// Write man pages into a directory.
    Man(cmd::docs::ManArgs),
    /// Remove snapshots according to a retention policy.
    Forget(Box<cmd::forget::Args>),
    /// PostgreSQL: base backups, WAL archiving (archive_command, restore_command) and
    /// point-in-time restore.
    Pg(cmd::pg::Args),
}

/// Exit codes, documented in the README (section "Exit codes"): one per kind of error a script
/// may want to act on, with the numbers restic users know where restic has one (10, 12).
pub mod exit {
    use cairn_core::ErrorKind;

    /// Something failed (an error of no kind below, or a check, restore or status that found
    /// problems and reported them).
    pub const FAILED: u8 = 1;
    /// Bad arguments or options.
    pub const USAGE: u8 = 2;
    /// Done, but some source files could not be read (named in the output).
    pub const PARTIAL: u8 = 3;
    /// No repository at the location given.
    pub const REPOSITORY_NOT_FOUND: u8 = 10;
    /// The repository has a format version this build does not know.
    pub const UNSUPPORTED_VERSION: u8 = 11;
    /// The password opens no key file.
    pub const WRONG_PASSWORD: u8 = 12;
    /// An object of the repository is damaged (named in the message).
    pub const DAMAGED: u8 = 13;
    /// An object the repository needs is missing from storage.
    pub const OBJECT_MISSING: u8 = 14;
    /// A snapshot, path or key asked for does not exist.
    pub const NOT_FOUND: u8 = 15;
    /// The data to back up could not be read (a dump command failed, a stream broke).
    pub const SOURCE_UNREADABLE: u8 = 16;
    /// Storage could not be reached or kept failing after retries: try again later.
    pub const STORAGE_UNAVAILABLE: u8 = 17;
    /// Storage refused the request (credentials, permissions).
    pub const PERMISSION_DENIED: u8 = 18;
    /// Storage failed in a way retrying will not mend.
    pub const STORAGE: u8 = 19;
    /// A local file or directory could not be read or written (a restore target, a full disk).
    pub const IO: u8 = 20;
    /// A concurrent prune removed data this command depended on; nothing was committed: run it
    /// again.
    pub const CONFLICT: u8 = 21;
    /// The repository was opened with a write-only key, and the command reads or changes
    /// what is stored.
    pub const WRITE_ONLY_KEY: u8 = 22;
    /// Data the command needs is in an archive storage class and not warm yet: `restore`
    /// asked for it (`--no-wait`), or another command met it; run `restore` again later.
    pub const ARCHIVED: u8 = 23;
    /// A bug in cairn.
    pub const INTERNAL: u8 = 70;
    /// `pg wal-fetch` could not read a WAL file that may be archived (storage, damage, the
    /// password): above 125, so that PostgreSQL stops recovery instead of ending it early.
    pub const WAL_FETCH_FAILED: u8 = 126;

    /// Every code above, for the README check.
    pub const ALL: [u8; 20] = [
        0,
        FAILED,
        USAGE,
        PARTIAL,
        REPOSITORY_NOT_FOUND,
        UNSUPPORTED_VERSION,
        WRONG_PASSWORD,
        DAMAGED,
        OBJECT_MISSING,
        NOT_FOUND,
        SOURCE_UNREADABLE,
        STORAGE_UNAVAILABLE,
        PERMISSION_DENIED,
        STORAGE,
        IO,
        CONFLICT,
        WRITE_ONLY_KEY,
        ARCHIVED,
        INTERNAL,
        WAL_FETCH_FAILED,
    ];

    /// The exit code of an engine error.
    #[must_use]
    pub fn for_kind(kind: ErrorKind) -> u8 {
        match kind {
            ErrorKind::RepositoryNotFound => REPOSITORY_NOT_FOUND,
            ErrorKind::UnsupportedVersion => UNSUPPORTED_VERSION,
            ErrorKind::WrongPassword => WRONG_PASSWORD,
            ErrorKind::Damaged => DAMAGED,
            ErrorKind::ObjectMissing => OBJECT_MISSING,
            ErrorKind::NotFound => NOT_FOUND,
            ErrorKind::SourceUnreadable => SOURCE_UNREADABLE,
            ErrorKind::StorageUnavailable => STORAGE_UNAVAILABLE,
            ErrorKind::PermissionDenied => PERMISSION_DENIED,
            ErrorKind::Storage => STORAGE,
            ErrorKind::InvalidArgument => USAGE,
            ErrorKind::Io => IO,
            ErrorKind::Conflict => CONFLICT,
            ErrorKind::WriteOnlyKey => WRITE_ONLY_KEY,
            ErrorKind::Archived => ARCHIVED,
            ErrorKind::Internal => INTERNAL,
            _ => FAILED,
        }
    }
}

/// A usage error found by the front end itself (exit code 2, as clap's own).
#[derive(Debug)]
pub struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// An error about the arguments: the command exits with [`exit::USAGE`].
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// The exit code and the machine-readable kind of an error that ends a command.
fn classify(e: &anyhow::Error) -> (u8, &'static str) {
    if e.chain().any(|c| c.is::<Usage>()) {
        return (exit::USAGE, "usage");
    }
    if let Some(core) = e.chain().find_map(|c| c.downcast_ref::<cairn_core::Error>()) {
        return (exit::for_kind(core.kind()), kind_name(core.kind()));
    }
    // The front end's own reads and writes (the password file, stdout).
    if e.chain().any(|c| c.is::<std::io::Error>()) {
        return (exit::IO, "io");
    }
    (exit::FAILED, "failed")
}

fn kind_name(kind: cairn_core::ErrorKind) -> &'static str {
    use cairn_core::ErrorKind as K;
    match kind {
        K::WrongPassword => "wrong_password",
        K::RepositoryNotFound => "repository_not_found",
        K::Damaged => "damaged",
        K::ObjectMissing => "object_missing",
        K::NotFound => "not_found",
        K::UnsupportedVersion => "unsupported_version",
        K::SourceUnreadable => "source_unreadable",
        K::StorageUnavailable => "storage_unavailable",
        K::PermissionDenied => "permission_denied",
        K::Storage => "storage",
        K::InvalidArgument => "usage",
        K::Io => "io",
        K::Conflict => "conflict",
        K::WriteOnlyKey => "write_only_key",
        K::Archived => "archived",
        K::Internal => "internal",
        _ => "failed",
    }
}

/// Whether the error is a closed pipe on the output (`cairn dump … | head`): not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<cairn_core::Error>(),
                Some(cairn_core::Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Keeps glibc's allocator from growing with the input: by default a freed multi-megabyte
/// buffer raises the (dynamic) mmap threshold, so later buffers are carved from per-thread
/// arenas that fragment, and every thread gets its own arena; resident memory then creeps up
/// with the input size. A fixed threshold makes large buffers their own mappings, returned on
/// free, and two arenas suffice for a pipeline that hands buffers between threads. (Measured,
/// incompressible streams of 1 and 4 GiB: peak RSS 81 and 96 MiB with a 256 KiB threshold,
/// 82 and 118 MiB with 1 MiB, 89 and 116 MiB with 2 MiB; the larger thresholds saved about
/// 15 % of system time. The batch and pack buffers are reused by the pipeline itself.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator tuning; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// A reader that closed its end of standard output (`cairn snapshots | head -1`) wants no more
/// of it: `print!` panics on the broken pipe, and the process then ends quietly with 0 instead
/// of a panic message (errors returned on the way out are handled in `main` the same way).
fn quiet_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe")) {
            std::process::exit(0);
        }
        default_hook(info);
    }));
}

fn main() -> ExitCode {
    tune_allocator();
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let json = cli.global.json;
    let result = match cli.command {
        Command::Init(a) => cmd::init::run(&cli.global, a),
        Command::Backup(a) => cmd::backup::run(&cli.global, a),
        Command::Snapshots(a) => cmd::snapshots::run(&cli.global, a),
        Command::Tag(a) => cmd::tag::run(&cli.global, a),
        Command::Ls(a) => cmd::ls::run(&cli.global, a),
        Command::Restore(a) => cmd::restore::run(&cli.global, a),
        Command::Dump(a) => cmd::dump::run(&cli.global, a),
        Command::Mount(a) => cmd::mount::run(&cli.global, a),
        Command::Find(a) => cmd::inspect::find(&cli.global, a),
        Command::Diff(a) => cmd::inspect::diff(&cli.global, a),
        Command::Stats(a) => cmd::inspect::stats(&cli.global, a),
        Command::Rewrite(a) => cmd::rewrite::run(&cli.global, a),
        Command::Repair(a) => cmd::repair::run(&cli.global, a),
        Command::Check(a) => cmd::check::run(&cli.global, a),
        Command::Status(a) => cmd::status::run(&cli.global, a),
        Command::Key(a) => cmd::key::run(&cli.global, a),
        Command::Tenant(a) => cmd::tenant::run(&cli.global, a),
        Command::Migrate(a) => cmd::migrate::run(&cli.global, a),
        Command::Copy(a) => cmd::copy::run(&cli.global, a),
        Command::Prune(a) => cmd::prune::run(&cli.global, a),
        Command::Forget(a) => cmd::forget::run(&cli.global, *a),
        Command::Policy(a) => cmd::policy::run(&cli.global, a),
        Command::Run(a) => cmd::run::run(&cli.global, a),
        Command::Schedule(a) => cmd::schedule::run(&cli.global, a),
        Command::Erase(a) => cmd::erase::run(&cli.global, a),
        Command::Report(a) => cmd::report::run(&cli.global, a),
        Command::Completions(a) => cmd::docs::completions(&cli.global, a),
        Command::Man(a) => cmd::docs::man(&cli.global, a),
        Command::Pg(a) => cmd::pg::run(&cli.global, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, kind) = classify(&e);
            if json {
                let msg = serde_json::json!({ "error": format!("{e:#}"), "kind": kind, "exit_code": code });
                eprintln!("{msg}");
            } else {
                eprintln!("cairn: error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    /// The README's exit-code table lists every code the binary returns, and no other.
    #[test]
    fn the_readme_lists_every_exit_code() {
        let readme = include_str!("../../README.md");
        let table = readme.split("### Exit codes").nth(1).expect("an exit-code section");
        let listed: std::collections::BTreeSet<u8> = table
            .lines()
            .take_while(|l| !l.starts_with("###"))
            .filter_map(|l| l.strip_prefix("| ")?.split(' ').next()?.parse().ok())
            .collect();
        let returned: std::collections::BTreeSet<u8> = super::exit::ALL.into_iter().collect();
        assert_eq!(listed, returned);
    }
}
