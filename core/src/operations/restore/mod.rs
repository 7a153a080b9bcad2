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

use crate::format::blob::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Time, Tree};
use crate::foundation::error::{Error, IoContext, Result};
use crate::foundation::id::{BlobId, Digest};
use crate::foundation::pattern::PathPatterns;
use crate::foundation::progress::Progress;
use crate::repository::index::{Index, IndexEntry};
use crate::repository::store::{ObjectKey, ObjectKind};
use crate::repository::{Repository, SnapshotFilter};

mod fetch;
mod plan;

use fetch::*;
use plan::*;

/// Where and what to restore.
#[derive(Debug, Clone)]
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
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// The snapshot restored.
    pub snapshot: String,
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
    /// Paths that could not be restored, with the reason.
    pub failed: Vec<(String, String)>,
    /// Non-fatal notes (e.g. ownership not restored).
    pub warnings: Vec<String>,
}

/// Splits `SNAP[:PATH]`.
#[must_use]
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((s, p)) if !p.is_empty() => (s, Some(p)),
        Some((s, _)) => (s, None),
        None => (spec, None),
    }
}

/// Finds the node at `path` (absolute, as in the snapshot) below `root`.
///
/// # Errors
/// [`Error::NotFound`] when a component is missing.
pub fn find_node(repo: &Repository, index: &Index, snapshot: &Snapshot, path: &Path) -> Result<Node> {
    let mut node = root_node(snapshot);
    for comp in path.components() {
        let name = match comp {
            std::path::Component::Normal(n) => n.as_bytes(),
            _ => continue,
        };
        let subtree = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(t)) => t,
            _ => return Err(Error::NotFound(format!("path {} in the snapshot", path.display()))),
        };
        let tree = repo.load_tree(index, &subtree)?;
        node = tree
            .find(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("path {} in the snapshot", path.display())))?;
    }
    Ok(node)
}

/// A directory node standing for a snapshot's root tree.
#[must_use]
pub fn root_node(snapshot: &Snapshot) -> Node {
    Node {
        name: b"/".to_vec(),
        kind: NodeKind::Dir,
        mode: 0o40755,
        uid: 0,
        gid: 0,
        mtime: Time::default(),
        atime: Time::default(),
        ctime: Time::default(),
        inode: 0,
        dev: 0,
        nlink: 1,
        size: 0,
        rdev: 0,
        content: vec![],
        hash: None,
        subtree: Some(snapshot.tree),
        target: None,
        link: None,
    }
}
/// Restores `spec` (`SNAP[:PATH]`) into `opts.target`.
///
/// # Errors
/// Fatal errors (no such snapshot or path, the target not writable). Files that could not be
/// restored are listed in [`RestoreSummary::failed`] instead.
pub fn run(repo: &Repository, spec: &str, opts: &RestoreOptions, progress: &dyn Progress) -> Result<RestoreSummary> {
    let (snap, sub) = split_spec(spec);
    run_path(repo, snap, sub.map(Path::new), opts, progress)
}

/// Restores the path `sub` (absolute, as in the snapshot; `None` for everything) of snapshot
/// `snap` (an id prefix or `latest`). Paths need not be UTF-8.
///
/// # Errors
/// As [`run`].
pub fn run_path(
    repo: &Repository,
    snap: &str,
    sub: Option<&Path>,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    // The snapshot and the index are read side by side: round trips to a distant store.
    let (found, index) = std::thread::scope(|s| {
        let index = s.spawn(|| repo.load_index());
        let found = repo.find_snapshot(snap, &opts.filter);
        (found, index.join().unwrap_or_else(|_| Err(Error::Internal("index load panicked".into()))))
    });
    let (snap_id, snapshot) = found?;
    let index = index?;
    let sub = sub.unwrap_or(Path::new("/"));
    let start = find_node(repo, &index, &snapshot, sub)?;
    let fetching = Fetching::for_repo(repo, opts.connections);
    // The pool decodes, and fetches trees a request per thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(fetching.decoders.max(fetching.in_flight))
        .thread_name(|i| format!("cairn-restore-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    std::fs::create_dir_all(&opts.target).at(&opts.target)?;
    let trees = match start.kind {
        NodeKind::Dir => prefetch_trees(repo, &index, start.subtree, &pool),
        _ => HashMap::new(),
    };
    let mut planner = Planner {
        repo,
        index: &index,
        trees,
        includes: PathPatterns::new(&opts.includes)?,
        excludes: PathPatterns::new(&opts.excludes)?,
        link_first: HashMap::new(),
        is_root: running_as_root(),
        plan: Plan {
            files: vec![],
            dirs: vec![],
            links: vec![],
            blobs: HashMap::new(),
            others: 0,
            warnings: vec![],
            failed: vec![],
        },
    };
    let snap_dir = PathBuf::from(sub);
    match start.kind {
        NodeKind::Dir => {
            let tree = match start.subtree {
                Some(id) => match planner.trees.get(&id) {
                    Some(t) => t.clone(),
                    None => repo.load_tree(&index, &id)?,
                },
                None => Tree::default(),
            };
            planner.walk(&tree, &snap_dir, &opts.target, false);
        }
        _ => {
            let parent = snap_dir.parent().unwrap_or(Path::new("/")).to_path_buf();
            planner.walk(&Tree::new(vec![start]), &parent, &opts.target, false);
        }
    }
    let mut plan = planner.plan;
    let is_root = planner.is_root;
    if !is_root {
        plan.warnings.push("not running as root: file ownership was not restored".into());
    }

    let bad_files: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    let written = AtomicU64::new(0);
    let by_pack = group_by_pack(&index, &plan.blobs);
    // With --verify, metadata waits until the content is checked.
    let writer = FileWriter { plan: &plan, written: &written, progress, metadata: (!opts.verify).then_some(is_root) };
    let fail = |reason: String, blobs: &[&IndexEntry]| {
        if let Ok(mut bad) = bad_files.lock() {
            for e in blobs {
                for t in plan.blobs.get(&e.id).into_iter().flatten() {
                    bad.entry(t.file).or_insert_with(|| reason.clone());
                }
            }
        }
    };
    restore_data(repo, &index, &by_pack, &writer, &pool, fetching, &fail);
    let bad = bad_files.into_inner().map_err(|_| Error::Internal("restore worker panicked".into()))?;
    let mut summary = RestoreSummary { snapshot: snap_id.to_string(), others: plan.others, ..Default::default() };
    // Remove failed files: nothing unreadable stays behind looking like good data.
    for (&n, reason) in &bad {
        let f = &plan.files[n];
        let _ = std::fs::remove_file(&f.path);
        summary.failed.push((f.path.display().to_string(), reason.clone()));
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
                if let Err(e) = finish_file(&f.path, None, &f.node, &f.state, writer.metadata) {
                    fail_late(n, e.to_string());
                    return;
                }
            }
            if opts.verify {
                if let Err(reason) = verify_file(&f.path, &f.node) {
                    fail_late(n, reason);
                    return;
                }
                verified.fetch_add(1, Ordering::Relaxed);
                let _ = set_metadata(&f.path, &f.node, false, is_root);
            }
        });
    });
    let mut bad = bad;
    for (n, reason) in late_failures.into_inner().unwrap_or_default() {
        summary.failed.push((plan.files[n].path.display().to_string(), reason.clone()));
        bad.insert(n, reason);
    }
    for (path, first) in &plan.links {
        if bad.contains_key(first) {
            summary.failed.push((path.display().to_string(), "its hard-link original could not be restored".into()));
            continue;
        }
        std::fs::hard_link(&plan.files[*first].path, path).at(path)?;
    }
    // Directories last, deepest first, so writing into them does not disturb their times.
    plan.dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in &plan.dirs {
        if let Err(e) = set_metadata(path, node, false, is_root) {
            plan.warnings.push(format!("{}: metadata: {e}", path.display()));
        }
    }
    summary.files = (plan.files.len() - bad.len()) as u64 + plan.links.len() as u64;
    summary.dirs = plan.dirs.len() as u64;
    summary.bytes = written.load(Ordering::Relaxed);
    summary.verified = verified.load(Ordering::Relaxed);
    summary.warnings = plan.warnings;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.failed.sort();
    summary.failed.dedup();
    Ok(summary)
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

/// Writes a file's content to `out`, blob by blob.
///
/// # Errors
/// [`Error::Config`] if the node is not a file; read errors naming the pack.
pub fn dump_file(repo: &Repository, index: &Index, node: &Node, out: &mut dyn std::io::Write) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(Error::InvalidArgument(format!("{} is not a regular file", node.display_name())));
    }
    let mut hasher = blake3::Hasher::new();
    let mut n = 0;
    for id in &node.content {
        let data = repo.read_blob(index, BlobKind::Data, id)?;
        hasher.update(&data);
        out.write_all(&data).map_err(|e| Error::io("<stdout>", e))?;
        n += data.len() as u64;
    }
    if let Some(h) = node.hash
        && Digest(*hasher.finalize().as_bytes()) != h
    {
        return Err(Error::corrupt(node.display_name(), "content does not match the hash stored at backup time"));
    }
    Ok(n)
}
