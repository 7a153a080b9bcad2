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

use globset::GlobSet;
use rayon::prelude::*;

use crate::backup::compile_globs;
use crate::blob::BlobKind;
use crate::error::{Error, IoContext, Result};
use crate::id::{BlobId, Digest};
use crate::index::{Index, IndexEntry};
use crate::progress::Progress;
use crate::repo::{Repository, SnapshotFilter};
use crate::snapshot::Snapshot;
use crate::store::{ObjectKey, ObjectKind};
use crate::tree::{Node, NodeKind, Time, Tree};

/// Ranges of one pack closer than this are fetched in one request.
const COALESCE_GAP: u64 = 1 << 20;
/// Largest single ranged request (bounds memory: one request per restore thread in flight).
/// Half a default pack (16 MiB) and the overshoot of its last chunk: a full pack (17 MB of
/// media, say) then takes two requests, where 8 MiB made it two and a small third, and each
/// request costs a round trip to a distant store.
const MAX_REQUEST: u64 = 9 << 20;
/// The same for a local repository, where a request costs no round trip: each restore thread
/// holds a buffer this large.
const LOCAL_MAX_REQUEST: u64 = 2 << 20;

/// The largest ranged request worth making to `repo`'s store.
fn max_request(repo: &Repository) -> u64 {
    if repo.store().is_remote() { MAX_REQUEST } else { LOCAL_MAX_REQUEST }
}

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
    /// Worker threads (0 = cores, and at least 8 for a remote store, whose downloads wait on the
    /// network, or 4 for a local one).
    pub threads: usize,
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
            threads: 0,
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

struct FilePlan {
    path: PathBuf,
    node: Node,
    state: FileState,
}

/// How far a file's restore has come, shared by the threads writing its blobs.
#[derive(Default)]
struct FileState {
    /// Blob placements not yet written (or left as holes). The thread that takes it to zero
    /// finishes the file: sizes it if it ends in a hole, sets its metadata, closes it.
    remaining: AtomicUsize,
    /// An all-zero blob was left as a hole.
    hole: AtomicBool,
    /// Content and metadata are in place.
    finished: AtomicBool,
}

/// One place a blob's plaintext goes.
#[derive(Clone, Copy)]
struct Target {
    file: usize,
    offset: u64,
}

struct Plan {
    files: Vec<FilePlan>,
    dirs: Vec<(PathBuf, Node)>,
    /// Hard links to make after content: (new path, file number of the original).
    links: Vec<(PathBuf, usize)>,
    blobs: HashMap<BlobId, Vec<Target>>,
    others: u64,
    warnings: Vec<String>,
    failed: Vec<(String, String)>,
}

struct Planner<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// Trees fetched ahead ([`prefetch_trees`]).
    trees: HashMap<BlobId, Tree>,
    includes: (GlobSet, GlobSet),
    has_includes: bool,
    excludes: (GlobSet, GlobSet),
    link_first: HashMap<u64, usize>,
    is_root: bool,
    plan: Plan,
}

fn matches(globs: &(GlobSet, GlobSet), snap_path: &Path) -> bool {
    snap_path.file_name().is_some_and(|n| globs.0.is_match(n)) || globs.1.is_match(snap_path)
}

impl Planner<'_> {
    fn included(&self, snap_path: &Path) -> bool {
        !self.has_includes || snap_path.ancestors().any(|p| matches(&self.includes, p))
    }

    /// Whether anything below `snap_path` could be included.
    fn may_contain_includes(&self, _snap_path: &Path) -> bool {
        // Patterns can match at any depth; only a full walk can tell.
        true
    }

    /// Plans a directory's entries; an entry that cannot be created is recorded as failed and
    /// the walk goes on (never stopping halfway with files created but not yet written).
    /// `fresh`: `target_dir` was just created by this restore, so nothing in it is in the way.
    fn walk(&mut self, tree: &Tree, snap_dir: &Path, target_dir: &Path, fresh: bool) -> bool {
        let mut any = false;
        for node in &tree.nodes {
            let name = node.os_name();
            if name.is_empty() || name == "." || name == ".." || node.name.contains(&b'/') {
                self.plan
                    .failed
                    .push((snap_dir.join(name).display().to_string(), "unsafe file name in the snapshot".into()));
                continue;
            }
            let snap_path = snap_dir.join(name);
            let target = target_dir.join(name);
            if matches(&self.excludes, &snap_path) {
                continue;
            }
            match self.entry(node, &snap_path, target.clone(), fresh) {
                Ok(restored) => any |= restored,
                Err(e) => self.plan.failed.push((target.display().to_string(), e.to_string())),
            }
        }
        any
    }

    /// Plans one entry; returns whether anything was (or will be) restored for it.
    fn entry(&mut self, node: &Node, snap_path: &Path, target: PathBuf, fresh: bool) -> Result<bool> {
        let selected = self.included(snap_path);
        // In a directory this restore created, no stat is needed to know the name is free.
        let clear = |path: &Path| if fresh { Ok(()) } else { remove_existing(path) };
        match node.kind {
            NodeKind::Dir => {
                if !selected && !self.may_contain_includes(snap_path) {
                    return Ok(false);
                }
                let subtree = match node.subtree {
                    Some(id) => match self.trees.get(&id) {
                        Some(t) => t.clone(),
                        None => self.repo.load_tree(self.index, &id)?,
                    },
                    None => Tree::default(),
                };
                let created = match std::fs::create_dir(&target) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && target.is_dir() => false,
                    Err(_) => {
                        std::fs::create_dir_all(&target).at(&target)?;
                        false
                    }
                };
                let inner = self.walk(&subtree, snap_path, &target, created);
                if selected || inner {
                    self.plan.dirs.push((target, node.clone()));
                    return Ok(true);
                }
                let _ = std::fs::remove_dir(&target);
                Ok(false)
            }
            _ if !selected => Ok(false),
            NodeKind::File => {
                clear(&target)?;
                if let Some(link) = node.link
                    && let Some(&first) = self.link_first.get(&link)
                {
                    self.plan.links.push((target, first));
                    return Ok(true);
                }
                let mut refs = Vec::with_capacity(node.content.len());
                let mut offset = 0u64;
                for id in &node.content {
                    let e = self.index.get(id).ok_or_else(|| {
                        Error::NotFound(format!("data blob {id} of {} in the index", snap_path.display()))
                    })?;
                    refs.push((*id, offset));
                    offset += u64::from(e.raw_len);
                }
                // The file is created by the first write to it, or after all writes if it has
                // no content to write ([`finish_file`]).
                let n = self.plan.files.len();
                if let Some(link) = node.link {
                    self.link_first.insert(link, n);
                }
                let state = FileState { remaining: AtomicUsize::new(refs.len()), ..Default::default() };
                for (id, offset) in refs {
                    self.plan.blobs.entry(id).or_default().push(Target { file: n, offset });
                }
                self.plan.files.push(FilePlan { path: target, node: node.clone(), state });
                Ok(true)
            }
            NodeKind::Symlink => {
                clear(&target)?;
                let t = node.target.clone().unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), &target).at(&target)?;
                self.set_meta(&target, node, true);
                self.plan.others += 1;
                Ok(true)
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                clear(&target)?;
                if let Err(e) = make_special(&target, node) {
                    self.plan.warnings.push(format!("{}: not restored: {e}", target.display()));
                    return Ok(false);
                }
                self.set_meta(&target, node, false);
                self.plan.others += 1;
                Ok(true)
            }
            NodeKind::Socket => {
                self.plan.warnings.push(format!("{}: sockets are not restored", target.display()));
                Ok(false)
            }
        }
    }

    fn set_meta(&mut self, path: &Path, node: &Node, symlink: bool) {
        if let Err(e) = set_metadata(path, node, symlink, self.is_root) {
            self.plan.warnings.push(format!("{}: metadata: {e}", path.display()));
        }
    }
}

fn remove_existing(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::Config(format!("{}: a directory is in the way", path.display()))),
        Ok(_) => std::fs::remove_file(path).at(path),
        Err(_) => Ok(()),
    }
}

fn make_special(path: &Path, node: &Node) -> std::result::Result<(), String> {
    use nix::sys::stat::{Mode, SFlag, mknod};
    let mode = Mode::from_bits_truncate(node.mode & 0o7777);
    let kind = match node.kind {
        NodeKind::Fifo => return nix::unistd::mkfifo(path, mode).map_err(|e| e.to_string()),
        NodeKind::CharDevice => SFlag::S_IFCHR,
        _ => SFlag::S_IFBLK,
    };
    mknod(path, kind, mode, node.rdev).map_err(|e| e.to_string())
}

fn to_filetime(t: Time) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(t.secs, t.nanos)
}

fn set_metadata(path: &Path, node: &Node, symlink: bool, is_root: bool) -> std::io::Result<()> {
    if is_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))?;
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))?;
    }
    filetime::set_symlink_file_times(path, to_filetime(node.atime), to_filetime(node.mtime))
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
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
    let threads = if opts.threads == 0 {
        let at_least = if repo.store().is_remote() { 8 } else { 4 };
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(at_least)
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
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
        includes: compile_globs(&opts.includes)?,
        has_includes: !opts.includes.is_empty(),
        excludes: compile_globs(&opts.excludes)?,
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
    pool.install(|| {
        by_pack.par_iter().for_each(|(_, entries)| {
            if let Err((reason, failed_blobs)) = restore_pack(repo, &index, entries, &writer)
                && let Ok(mut bad) = bad_files.lock()
            {
                for id in failed_blobs {
                    for t in plan.blobs.get(&id).into_iter().flatten() {
                        bad.entry(t.file).or_insert_with(|| reason.clone());
                    }
                }
            }
        });
    });
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
            if !f.state.finished.load(Ordering::Acquire)
                && let Err(e) = finish_file(&f.path, None, &f.node, &f.state, writer.metadata)
            {
                fail_late(n, e.to_string());
                return;
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

/// Loads every tree below `root` before planning. The trees just before the root in its pack
/// come with the root's own request ([`fetch_window`]); for a new snapshot that is most of
/// them. The others are fetched a level of the hierarchy at a time, as data blobs are:
/// grouped by pack, neighbours coalesced into one ranged request, the requests side by side.
/// A restore from a distant store then waits a round trip per level at most, never one per
/// directory (a 45 000-file tree has 2 250 directories in 7 levels). (The trees are held until
/// the plan is made; the plan itself holds every file's node, so this does not change how
/// memory grows.) A tree that fails to load is left out, and the planner's own load reports
/// it where it is needed.
fn prefetch_trees(
    repo: &Repository,
    index: &Index,
    root: Option<BlobId>,
    pool: &rayon::ThreadPool,
) -> HashMap<BlobId, Tree> {
    let mut trees: HashMap<BlobId, Tree> = HashMap::new();
    let window = root.and_then(|id| fetch_window(repo, index, &id));
    let mut level: Vec<BlobId> = root.into_iter().collect();
    while !level.is_empty() {
        let loaded = pool.install(|| load_trees(repo, index, &level, window.as_ref()));
        let mut next = Vec::new();
        for (id, tree) in loaded {
            next.extend(tree.nodes.iter().filter(|n| n.kind == NodeKind::Dir).filter_map(|n| n.subtree));
            trees.insert(id, tree);
        }
        next.sort_unstable();
        next.dedup();
        next.retain(|id| !trees.contains_key(id));
        level = next;
    }
    trees
}

/// Bytes of a pack fetched ahead: the [`MAX_REQUEST`] bytes that end with the root tree.
struct Window {
    pack: u32,
    start: u64,
    data: bytes::Bytes,
}

impl Window {
    /// The sealed bytes of `e`, if the window holds them.
    fn get(&self, e: &IndexEntry) -> Option<&[u8]> {
        if e.pack() != self.pack {
            return None;
        }
        let from = usize::try_from(u64::from(e.offset).checked_sub(self.start)?).ok()?;
        self.data.get(from..from.checked_add(e.length as usize)?)
    }
}

/// Fetches the root tree with the bytes before it in its pack. A backup writes a directory's
/// trees before the directory's own (the root last), so the trees of a snapshot's new and
/// changed directories sit just before its root: with them in hand, the levels below wait for
/// no round trip at all (a 45 000-file tree's 5 MiB of trees arrive in one request). `None` if
/// the root is not in the index or the read fails (the levels are then fetched as usual).
fn fetch_window(repo: &Repository, index: &Index, root: &BlobId) -> Option<Window> {
    let e = index.get(root)?;
    let end = u64::from(e.offset) + u64::from(e.length);
    let start = end.saturating_sub(max_request(repo)).min(u64::from(e.offset));
    let key = ObjectKey::new(ObjectKind::Pack, index.pack(e).id.0);
    let data = repo.store().get_range_cacheable(&key, start..end).ok()?;
    Some(Window { pack: e.pack(), start, data })
}

/// Opens and decodes one tree from its sealed bytes.
fn open_tree(repo: &Repository, index: &Index, e: &IndexEntry, sealed: &[u8]) -> Option<(BlobId, Tree)> {
    let plain = repo.open_entry(index, e, sealed).ok()?;
    Some((e.id, Tree::decode(&e.id, &plain).ok()?))
}

/// Fetches and decodes the trees `ids` (distinct): those in `window` from it, the others in as
/// few ranged requests as [`coalesce`] allows, side by side. Trees that cannot be read are left
/// out.
fn load_trees(repo: &Repository, index: &Index, ids: &[BlobId], window: Option<&Window>) -> Vec<(BlobId, Tree)> {
    let mut by_pack: HashMap<u32, Vec<&IndexEntry>> = HashMap::new();
    let mut held: Vec<(&IndexEntry, &[u8])> = Vec::new();
    for e in ids.iter().filter_map(|id| index.get(id)) {
        match window.and_then(|w| w.get(e)) {
            Some(sealed) => held.push((e, sealed)),
            None => by_pack.entry(e.pack()).or_default().push(e),
        }
    }
    let mut out: Vec<(BlobId, Tree)> =
        held.par_iter().filter_map(|(e, sealed)| open_tree(repo, index, e, sealed)).collect();
    let mut groups = Vec::new();
    for entries in by_pack.values_mut() {
        entries.sort_by_key(|e| e.offset);
        groups.extend(coalesce(entries, max_request(repo)));
    }
    let mut fetched: Vec<(BlobId, Tree)> = groups
        .par_iter()
        .filter_map(|group| {
            let first = group.first()?;
            let key = ObjectKey::new(ObjectKind::Pack, index.pack(first).id.0);
            let range = span(group);
            let start = range.start;
            let data = repo.store().get_range_cacheable(&key, range).ok()?;
            Some((*group, start, data))
        })
        .collect::<Vec<_>>()
        .par_iter()
        .flat_map_iter(|(group, start, data)| {
            group.iter().filter_map(move |e| {
                let from = usize::try_from(u64::from(e.offset) - start).ok()?;
                let sealed = data.get(from..from.checked_add(e.length as usize)?)?;
                open_tree(repo, index, e, sealed)
            })
        })
        .collect::<Vec<_>>();
    out.append(&mut fetched);
    out
}

/// The blobs to fetch, grouped by pack number and sorted by offset.
fn group_by_pack<'i>(index: &'i Index, blobs: &HashMap<BlobId, Vec<Target>>) -> Vec<(u32, Vec<&'i IndexEntry>)> {
    let mut by_pack: HashMap<u32, Vec<&IndexEntry>> = HashMap::new();
    for id in blobs.keys() {
        if let Some(e) = index.get(id) {
            by_pack.entry(e.pack()).or_default().push(e);
        }
    }
    let mut out: Vec<_> = by_pack.into_iter().collect();
    for (_, v) in &mut out {
        v.sort_by_key(|e| e.offset);
    }
    // Biggest packs first, so the last ones to finish are small.
    out.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    out
}

type PackFailure = (String, Vec<BlobId>);

thread_local! {
    /// A restore thread's read buffer and decompression scratch ([`restore_pack`]).
    static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Splits one pack's entries (sorted by offset) into runs close enough together to be fetched
/// in one ranged request each, no larger than `max` (a blob larger than that is a run of its
/// own).
fn coalesce<'e, 'i>(entries: &'e [&'i IndexEntry], max: u64) -> Vec<&'e [&'i IndexEntry]> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let start = u64::from(entries[i].offset);
        let mut end = start + u64::from(entries[i].length);
        let mut j = i + 1;
        while j < entries.len() {
            let e = entries[j];
            let e_end = u64::from(e.offset) + u64::from(e.length);
            if u64::from(e.offset) > end + COALESCE_GAP || e_end - start > max {
                break;
            }
            end = end.max(e_end);
            j += 1;
        }
        groups.push(&entries[i..j]);
        i = j;
    }
    groups
}

/// The bytes of the pack a run of entries (sorted by offset) covers.
fn span(group: &[&IndexEntry]) -> std::ops::Range<u64> {
    let start = group.first().map_or(0, |e| u64::from(e.offset));
    let end = group.iter().map(|e| u64::from(e.offset) + u64::from(e.length)).max().unwrap_or(start);
    start..end
}

/// What the restore threads share to write files.
struct FileWriter<'a> {
    plan: &'a Plan,
    written: &'a AtomicU64,
    progress: &'a dyn Progress,
    /// Set each file's metadata as soon as its content is written (`Some(running as root)`);
    /// `None` with --verify, which checks the content first.
    metadata: Option<bool>,
}

/// The open files of one pack's restore, by file number.
type OpenFiles = HashMap<usize, File>;

impl FileWriter<'_> {
    /// Writes one blob's plaintext to every place it goes (all-zero blobs are left as holes),
    /// finishing each file it completes. On failure, returns why.
    fn place(&self, files: &mut OpenFiles, id: &BlobId, plain: &[u8]) -> std::result::Result<(), String> {
        // All-zero blocks are left as holes ([`finish_file`] sizes the file).
        let zero = plain.iter().all(|&b| b == 0);
        let mut failure = None;
        for t in self.plan.blobs.get(id).into_iter().flatten() {
            let f = &self.plan.files[t.file];
            if zero {
                f.state.hole.store(true, Ordering::Relaxed);
            } else {
                let file = match files.entry(t.file) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => match open_for_writing(&f.path) {
                        Ok(file) => v.insert(file),
                        Err(err) => {
                            failure = Some(format!("{}: {err}", f.path.display()));
                            continue;
                        }
                    },
                };
                if let Err(err) = file.write_all_at(plain, t.offset) {
                    failure = Some(format!("{}: {err}", f.path.display()));
                    continue;
                }
                self.written.fetch_add(plain.len() as u64, Ordering::Relaxed);
                self.progress.bytes_restored(plain.len() as u64);
            }
            // The thread that places a file's last blob finishes it; the others' writes are
            // done by then (each counts down after its write).
            if f.state.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                let open = files.remove(&t.file);
                if let Err(err) = finish_file(&f.path, open, &f.node, &f.state, self.metadata) {
                    failure = Some(format!("{}: {err}", f.path.display()));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Opens (creating when needed) a file to restore into, never following a symbolic link put
/// in its place.
fn open_for_writing(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)
}

/// Completes a file whose content is all written: creates it if no blob was written (empty or
/// all holes), sizes it if it may end in a hole, and sets its metadata through the open file
/// (`metadata`: `Some(running as root)`), then closes it.
fn finish_file(
    path: &Path,
    open: Option<File>,
    node: &Node,
    state: &FileState,
    metadata: Option<bool>,
) -> std::io::Result<()> {
    let file = match open {
        Some(f) => f,
        None => open_for_writing(path)?,
    };
    if state.hole.load(Ordering::Relaxed) || node.content.is_empty() {
        file.set_len(node.size)?;
    }
    if let Some(is_root) = metadata {
        // Ownership first: chown clears the set-id bits chmod then sets.
        if is_root {
            std::os::unix::fs::fchown(&file, Some(node.uid), Some(node.gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(node.mode & 0o7777))?;
        filetime::set_file_handle_times(&file, Some(to_filetime(node.atime)), Some(to_filetime(node.mtime)))?;
    }
    state.finished.store(true, Ordering::Release);
    Ok(())
}

/// Fetches one pack's needed blobs in coalesced ranges and writes them out.
fn restore_pack(
    repo: &Repository,
    index: &Index,
    entries: &[&IndexEntry],
    writer: &FileWriter<'_>,
) -> std::result::Result<(), PackFailure> {
    let Some(first) = entries.first() else { return Ok(()) };
    let pack = index.pack(first);
    let key = ObjectKey::new(ObjectKind::Pack, pack.id.0);
    let subkey = repo.master().subkey(&pack.salt);
    let mut files = OpenFiles::new();
    let mut failed = Vec::new();
    let mut reason = String::new();
    let mut groups = coalesce(entries, max_request(repo));
    // This thread's buffers, reused from range to range and pack to pack: a fresh 8 MiB
    // buffer per range cost page faults (9 % of a tree restore's samples with the decryption
    // and decompression buffers).
    BUFFERS.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (buf, scratch) = &mut *guard;
        while let Some(group) = groups.pop() {
            let range = span(group);
            let start = range.start;
            if let Err(e) = repo.store().get_range_into(&key, range, buf) {
                reason = format!("{key}: {e}");
                if group.len() > 1 {
                    // A merged request can fail for one bad part (a truncated pack): retry blob
                    // by blob so the intact ones are still restored.
                    groups.extend(group.chunks(1));
                } else {
                    failed.extend(group.iter().map(|e| e.id));
                }
                continue;
            }
            for e in group {
                let from = (u64::from(e.offset) - start) as usize;
                let Some(sealed) = buf.get_mut(from..from + e.length as usize) else {
                    reason = format!("{key}: short read");
                    failed.push(e.id);
                    continue;
                };
                // The kind from the index: a chunk whose bytes equal a tree's encoding shares
                // its blob.
                let opened = crate::blob::open_in_place(
                    repo.master(),
                    &subkey,
                    e.kind(),
                    e.id,
                    e.codec(),
                    e.raw_len,
                    sealed,
                    scratch,
                );
                let plain = match opened {
                    Ok(p) => p,
                    Err(err) => {
                        reason = format!("{key}: {err}");
                        failed.push(e.id);
                        continue;
                    }
                };
                if let Err(why) = writer.place(&mut files, &e.id, plain) {
                    reason = why;
                    failed.push(e.id);
                }
            }
        }
    });
    if failed.is_empty() { Ok(()) } else { Err((reason, failed)) }
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
        return Err(Error::Config(format!("{} is not a regular file", node.display_name())));
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
