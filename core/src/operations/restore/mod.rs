//! Restore: plan by pack, fetch coalesced ranges, decrypt in parallel, write with positional
//! writes, then set metadata (files after their content, directories last, deepest first).
//!
//! Damage stays contained: a blob that cannot be read or fails authentication marks the files
//! that need it as failed; they are removed from the target (never left with wrong bytes), every
//! other file is restored, and the failures are returned in [`RestoreSummary::failed`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::format::tree::{Node, NodeKind, Time, Tree};
use crate::foundation::error::{Error, IoContext, Result};
use crate::foundation::id::{BlobId, Digest, SnapshotId};
use crate::foundation::identity::running_as_root;
use crate::foundation::pattern::PathPatterns;
use crate::foundation::progress::Progress;
use crate::repository::Repository;
use crate::repository::index::{Index, IndexEntry};
use crate::repository::select::{SnapshotFilter, SnapshotRef};
use crate::repository::store::{ObjectKey, ObjectKind};
use crate::repository::trees::TreeWalker;

mod drill;
mod dump;
mod fetch;
mod plan;
mod warm;

pub use drill::{DrillReport, drill, drill_in};
pub(crate) use dump::unwrap_io;
pub use dump::{Dumped, FileReader, dump, file};
pub use warm::{WarmOptions, Warmed};

use fetch::*;
use plan::*;

/// Where and what to restore.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The directory to restore into (created if missing).
    pub target: PathBuf,
    /// Only paths matching one of these (or inside a match); empty = everything.
    pub includes: Vec<String>,
    /// Leave out paths matching these.
    pub excludes: Vec<String>,
    /// Re-read every restored file and check it against its stored hash.
    pub verify: bool,
    /// Snapshot filters for `latest`.
    pub filter: SnapshotFilter,
    /// Ranged requests in flight (0 = the default: for a remote store, whose requests wait on
    /// the network, 16 downloads decoded by a thread per core; for a local one, 4 threads and
    /// never fewer than cores, each reading and decoding its own requests).
    pub connections: usize,
    /// What to do with an entry the target already has where the snapshot has one.
    pub overwrite: Overwrite,
    /// With [`Overwrite::IfChanged`]: compare the content of a file whose size and
    /// modification time match the snapshot's, and replace it if it differs.
    pub verify_existing: bool,
    /// Remove what the restored directories hold that the snapshot does not.
    pub delete: bool,
    /// Do not restore extended attributes (other than ACLs).
    pub no_xattrs: bool,
    /// Do not restore POSIX ACLs.
    pub no_acls: bool,
    /// How data packs in an archive storage class are warmed up first.
    pub warm: WarmOptions,
}

/// What a restore does with an entry the target already has where the snapshot has one. A
/// directory is always used as it is, and never removed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overwrite {
    /// Nothing was chosen: keep it, and name it ([`RestoreSummary::skipped`]); the CLI exits
    /// with 3 so a script notices.
    #[default]
    Unspecified,
    /// Keep it (named in [`RestoreSummary::skipped`]).
    Never,
    /// Replace it unless it is a regular file with the snapshot's size and modification time
    /// (and, with `verify_existing`, content).
    IfChanged,
    /// Replace it.
    Always,
}

impl std::str::FromStr for Overwrite {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "never" => Ok(Overwrite::Never),
            "if-changed" => Ok(Overwrite::IfChanged),
            "always" => Ok(Overwrite::Always),
            _ => Err(Error::InvalidArgument(format!("`{s}`: expected never, if-changed or always"))),
        }
    }
}

impl RestoreOptions {
    /// Restore everything into `target`.
    #[must_use]
    pub fn new(target: &Path) -> Self {
        RestoreOptions {
            target: target.to_path_buf(),
            includes: vec![],
            excludes: vec![],
            verify: false,
            filter: SnapshotFilter::default(),
            connections: 0,
            overwrite: Overwrite::Unspecified,
            verify_existing: false,
            delete: false,
            no_xattrs: false,
            no_acls: false,
            warm: WarmOptions::default(),
        }
    }
}

/// An entry that could not be restored, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Failure {
    /// Where it was to be restored (or, for an unsafe name, where it is in the snapshot).
    pub path: PathBuf,
    /// Why it was not.
    pub reason: String,
}

impl Failure {
    fn new(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Failure { path: path.into(), reason: reason.into() }
    }
}

/// As `[path, reason]`, the shape `cairn restore --json` has always printed.
impl serde::Serialize for Failure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.path.to_string_lossy(), &self.reason).serialize(s)
    }
}

/// A note about an entry restored without all of its metadata (or not restored, for kinds
/// that cannot be), or about the whole restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The entry (`None` for a note about the whole restore).
    pub path: Option<PathBuf>,
    /// What happened.
    pub message: String,
    /// Something the snapshot holds for the entry is not in the target (extended attributes
    /// or inode flags that could not be set, a device that could not be made): the restore is
    /// incomplete, and the CLI exits 3. False for what no restore does (sockets) and for notes
    /// about the whole restore.
    pub lost: bool,
}

impl Warning {
    /// Something of the entry at `path` the snapshot holds was not restored.
    pub(crate) fn at(path: &Path, message: impl Into<String>) -> Self {
        Warning { path: Some(path.to_path_buf()), message: message.into(), lost: true }
    }

    /// A note about the entry at `path` that loses nothing a restore could give back.
    pub(crate) fn note_at(path: &Path, message: impl Into<String>) -> Self {
        Warning { path: Some(path.to_path_buf()), message: message.into(), lost: false }
    }

    /// A note about the whole restore.
    pub(crate) fn note(message: impl Into<String>) -> Self {
        Warning { path: None, message: message.into(), lost: false }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", p.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// As the text `Display` gives, the shape `restore --json` has always printed.
impl serde::Serialize for Warning {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct RestoreSummary {
    /// The snapshot restored.
    pub snapshot: SnapshotId,
    /// Regular files restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Other entries restored.
    pub others: u64,
    /// Content bytes written (holes not counted).
    pub bytes: u64,
    /// Files whose content was checked against the stored hash.
    pub verified: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Entries that could not be restored, with the reason (sorted by path).
    pub failed: Vec<Failure>,
    /// Non-fatal notes (e.g. ownership not restored, extended attributes the target's file
    /// system refused: see [`Warning::lost`]).
    pub warnings: Vec<Warning>,
    /// Entries the target already had, kept as they were because the overwrite policy keeps
    /// them (sorted).
    pub skipped: Vec<PathBuf>,
    /// Files the target already had that match the snapshot ([`Overwrite::IfChanged`]).
    pub unchanged: u64,
    /// Entries removed because the snapshot does not have them (`delete`; sorted).
    pub deleted: Vec<PathBuf>,
    /// Archived packs warmed up first.
    pub warmed: Warmed,
}

/// Restores `path` (absolute, as in the snapshot; `None` for everything) of the snapshot
/// `which` into `opts.target` (`latest` is the newest passing `opts.filter`). Paths need not be
/// UTF-8.
///
/// # Errors
/// Fatal errors (no such snapshot or path, the target not writable). Entries that could not be
/// restored are listed in [`RestoreSummary::failed`] instead.
pub fn run(
    repo: &Repository,
    which: &SnapshotRef,
    path: Option<&Path>,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    // The snapshot and the index are read side by side: round trips to a distant store.
    let (found, index) = std::thread::scope(|s| {
        let index = s.spawn(|| repo.load_index());
        let found = repo.find_snapshot(which, &opts.filter);
        (found, index.join().unwrap_or_else(|_| Err(Error::Internal("index load panicked".into()))))
    });
    let (snap_id, snapshot) = found?;
    let index = index?;
    let sub = path.unwrap_or(Path::new("/"));
    let fetching = Fetching::for_repo(repo, opts.connections);
    // The pool decodes, and fetches trees a request per thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(fetching.decoders.max(fetching.in_flight))
        .thread_name(|i| format!("cairn-restore-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    let start = TreeWalker::new(repo, &index).find(&snapshot, sub)?;
    refuse_target(repo, opts)?;
    std::fs::create_dir_all(&opts.target).at(&opts.target)?;
    let trees = match start.kind {
        NodeKind::Dir => prefetch_trees(repo, &index, start.subtree, &pool),
        _ => HashMap::new(),
    };
    let meta = Meta::new(running_as_root(), opts.no_xattrs, opts.no_acls);
    let mut planner = Planner {
        index: &index,
        includes: PathPatterns::new(&opts.includes)?,
        excludes: PathPatterns::new(&opts.excludes)?,
        link_first: HashMap::new(),
        meta: &meta,
        plan: Plan {
            files: vec![],
            dirs: vec![],
            symlinks: vec![],
            links: vec![],
            blobs: HashMap::new(),
            others: 0,
            warnings: vec![],
            failed: vec![],
            skipped: vec![],
            unchanged: 0,
            deleted: vec![],
        },
        dirs: vec![DirFrame::target(&opts.target)],
        overwrite: opts.overwrite,
        verify_existing: opts.verify_existing,
        delete: opts.delete,
    };
    match (start.kind, start.subtree) {
        (NodeKind::Dir, Some(tree)) => {
            let walker = TreeWalker::new(repo, &index).with_fetched(&trees);
            walker.walk(&tree, sub, &mut planner)?;
        }
        (NodeKind::Dir, None) => {}
        _ => {
            planner.plan_entry(&start, sub);
        }
    }
    let mut plan = planner.plan;
    make_symlinks(&mut plan, &meta, &pool);
    progress.total(plan.files.iter().map(|f| f.node.size).sum(), plan.files.len() as u64);
    let is_root = meta.is_root;
    if !is_root {
        plan.warnings.push(Warning::note("not running as root: file ownership was not restored"));
    }

    let bad_files: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    let written = AtomicU64::new(0);
    let by_pack = group_by_pack(&index, &plan.blobs);
    // Archived data packs: exactly the ones read, warmed up before anything is written.
    let packs: Vec<_> = by_pack.iter().map(|(n, _)| index.packs()[*n as usize].id).collect();
    let warmed = warm::warm(repo, &packs, &opts.warm, progress)?;
    // With --verify, metadata waits until the content is checked.
    let file_warnings = Mutex::new(Vec::new());
    let writer = FileWriter {
        plan: &plan,
        written: &written,
        progress,
        metadata: (!opts.verify).then_some(&meta),
        warnings: &file_warnings,
    };
    let fail = |reason: String, blobs: &[&IndexEntry]| {
        if let Ok(mut bad) = bad_files.lock() {
            for e in blobs {
                for t in plan.blobs.get(&e.id).into_iter().flatten() {
                    bad.entry(t.file).or_insert_with(|| reason.clone());
                }
            }
        }
    };
    // What the first pass could not read or open gets a second chance: read again from the
    // store (bytes wrong for a moment are not damage), then, with parity, from the rebuilt pack
    // (FORMAT.md §10a).
    let retry: Mutex<Vec<(IndexEntry, String)>> = Mutex::new(Vec::new());
    let first_pass = |reason: String, blobs: &[&IndexEntry]| match retry.lock() {
        Ok(mut retry) => retry.extend(blobs.iter().map(|e| (**e, reason.clone()))),
        Err(_) => fail(reason, blobs),
    };
    restore_data(repo, &index, &by_pack, &writer, &pool, fetching, &first_pass);
    let retry = retry.into_inner().map_err(|_| Error::Internal("restore worker panicked".into()))?;
    if !retry.is_empty() {
        let still = fetch::read_again(repo, &index, retry, &writer);
        if repo.config().data_parity > 0 {
            fetch::restore_from_parity(repo, &index, still, &writer, &fail);
        } else {
            for (e, why) in &still {
                fail(why.clone(), &[e]);
            }
        }
    }
    let bad = bad_files.into_inner().map_err(|_| Error::Internal("restore worker panicked".into()))?;
    let mut summary = RestoreSummary {
        snapshot: snap_id,
        files: 0,
        dirs: 0,
        others: plan.others,
        bytes: 0,
        verified: 0,
        seconds: 0.0,
        failed: Vec::new(),
        warnings: Vec::new(),
        skipped: Vec::new(),
        unchanged: plan.unchanged,
        deleted: Vec::new(),
        warmed,
    };
    // Remove failed files: nothing unreadable stays behind looking like good data.
    for (&n, reason) in &bad {
        let f = &plan.files[n];
        let _ = std::fs::remove_file(&f.path);
        summary.failed.push(Failure::new(&f.path, reason.clone()));
    }
    summary.failed.extend(plan.failed.iter().cloned());
    // Files with nothing to write (empty ones) are created here; with --verify, every file is
    // checked and gets its metadata here. Then hard links.
    let verified = AtomicU64::new(0);
    let late_failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let fail_late = |n: usize, reason: String| {
        let _ = std::fs::remove_file(&plan.files[n].path);
        if let Ok(mut v) = late_failures.lock() {
            v.push((n, reason));
        }
    };
    pool.install(|| {
        plan.files.par_iter().enumerate().filter(|(n, _)| !bad.contains_key(n)).for_each(|(n, f)| {
            if !f.state.finished.load(Ordering::Acquire) {
                // Every blob of a file not listed as failed was written: a file still waiting for
                // some would be finished with bytes missing. Never leave that looking like data.
                let missing = f.state.remaining.load(Ordering::Acquire);
                if missing > 0 {
                    fail_late(n, format!("internal error: {missing} of its blocks were never written"));
                    return;
                }
                match finish_file(&f.path, None, &f.node, &f.state, writer.metadata) {
                    Ok(None) => {}
                    Ok(Some(warning)) => {
                        if let Ok(mut w) = file_warnings.lock() {
                            w.push(Warning::at(&f.path, warning));
                        }
                    }
                    Err(e) => {
                        fail_late(n, e.to_string());
                        return;
                    }
                }
            }
            if opts.verify {
                if let Err(reason) = verify_file(&f.path, &f.node) {
                    fail_late(n, reason);
                    return;
                }
                verified.fetch_add(1, Ordering::Relaxed);
                match set_metadata(&f.path, &f.node, false, &meta) {
                    Ok(None) => {}
                    Ok(Some(warning)) => {
                        if let Ok(mut w) = file_warnings.lock() {
                            w.push(Warning::at(&f.path, warning));
                        }
                    }
                    Err(e) => {
                        if let Ok(mut w) = file_warnings.lock() {
                            w.push(Warning::at(&f.path, format!("metadata: {e}")));
                        }
                    }
                }
            }
        });
    });
    let mut bad = bad;
    for (n, reason) in late_failures.into_inner().unwrap_or_default() {
        summary.failed.push(Failure::new(&plan.files[n].path, reason.clone()));
        bad.insert(n, reason);
    }
    for (path, first) in &plan.links {
        if bad.contains_key(first) {
            summary.failed.push(Failure::new(path, "its hard-link original could not be restored"));
            continue;
        }
        std::fs::hard_link(&plan.files[*first].path, path).at(path)?;
    }
    // Directories last, so writing into them does not disturb their times.
    set_dirs_metadata(&mut plan, &meta, &pool);
    // Inode flags last of all: an immutable entry takes no further change.
    let restored_files =
        plan.files.iter().enumerate().filter(|(n, _)| !bad.contains_key(n)).map(|(_, f)| (f.path.as_path(), &f.node));
    let flag_warnings = set_flags(restored_files.chain(plan.dirs.iter().map(|(p, n)| (p.as_path(), n))));
    plan.warnings.extend(file_warnings.into_inner().unwrap_or_default());
    plan.warnings.extend(flag_warnings);
    plan.warnings.extend(meta.skipped_warning());
    summary.files = (plan.files.len() - bad.len()) as u64 + plan.links.len() as u64;
    summary.dirs = plan.dirs.len() as u64;
    summary.bytes = written.load(Ordering::Relaxed);
    summary.verified = verified.load(Ordering::Relaxed);
    summary.warnings = plan.warnings;
    summary.skipped = std::mem::take(&mut plan.skipped);
    summary.skipped.sort();
    summary.deleted = std::mem::take(&mut plan.deleted);
    summary.deleted.sort();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.failed.sort();
    summary.failed.dedup();
    Ok(summary)
}

/// Refuses a target inside a local repository (restoring into it would mix files with its
/// objects), and `--delete` into a directory that holds the repository (it would delete it).
fn refuse_target(repo: &Repository, opts: &RestoreOptions) -> Result<()> {
    let Some(root) = repo.store().local_root() else { return Ok(()) };
    // The target need not exist yet: judge by its nearest existing ancestor.
    let absolute = std::path::absolute(&opts.target).at(&opts.target)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match std::fs::canonicalize(existing) {
            Ok(c) => break rest.iter().rev().fold(c, |p: PathBuf, name: &&std::ffi::OsStr| p.join(name)),
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name);
                    existing = parent;
                }
                _ => return Ok(()),
            },
        }
    };
    if resolved.starts_with(root) {
        return Err(Error::InvalidArgument(format!(
            "refusing to restore into {}: it is inside the repository {}",
            opts.target.display(),
            root.display()
        )));
    }
    if opts.delete && root.starts_with(&resolved) {
        return Err(Error::InvalidArgument(format!(
            "refusing to restore with --delete into {}: it holds the repository {}",
            opts.target.display(),
            root.display()
        )));
    }
    Ok(())
}

fn verify_file(path: &Path, node: &Node) -> std::result::Result<(), String> {
    let Some(expected) = node.hash else { return Ok(()) };
    let mut hasher = blake3::Hasher::new();
    let f = File::open(path).map_err(|e| e.to_string())?;
    hasher.update_reader(f).map_err(|e| e.to_string())?;
    if Digest(*hasher.finalize().as_bytes()) != expected {
        return Err("content does not match the hash stored at backup time".into());
    }
    Ok(())
}
