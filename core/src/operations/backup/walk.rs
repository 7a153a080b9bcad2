//! The walker: builds trees depth-first, detects unchanged files against the parent snapshot,
//! keeps hard-link groups together and submits changed files to the workers ([`super`]).
//!
//! The walk does not wait for a directory's files before going on: a listed directory joins a
//! queue of unfinished directories in post-order (every directory after all of its
//! subdirectories), and the walker stores the tree of the queue's front as soon as the workers
//! have finished its files, between listing directories. So the workers always have files from
//! the next directories while the last files of one are still being read. The walker waits only
//! when the queue holds more than [`UNFINISHED_ENTRIES`] entries, for the front directory, whose
//! jobs were the first submitted; and at the end.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;

use jiff::SignedDuration;

use super::*;
use crate::format::snapshot::AttributesRead;
use crate::foundation::fsmeta::{self, Entry};
use crate::operations::backup::files::{CHANGED_RETRIES, Extended, Stat};
use crate::operations::backup::source::node_from_metadata;

/// Entries the walker may hold in unfinished directories before it waits for the oldest (a
/// single larger directory is still held whole). About 300 bytes each.
const UNFINISHED_ENTRIES: usize = 8192;

/// How long before the parent backup began an entry must have last changed for the parent's
/// node of it to be trusted ([`Walker::settled`]): a tick of the kernel's coarse clock, which
/// stamps files, is at most 10 ms (HZ ≥ 100), behind the fine clock the start is read from.
const SETTLED_FINE: SignedDuration = SignedDuration::from_millis(100);
/// The same for a timestamp in whole seconds (a file system that keeps no finer ones; FAT
/// counts its mtime in 2 s).
const SETTLED_COARSE: SignedDuration = SignedDuration::from_secs(2);

/// A directory entry waiting for its content.
enum Pending {
    Ready(Node),
    Job(Node, u64),
    /// A hard link to a file whose job is `u64`.
    LinkJob(Node, u64),
    /// A directory whose tree is unfinished directory `u64`.
    Dir(Node, u64),
}

/// A listed directory whose tree is not stored yet.
struct Unfinished {
    /// Its number, for its parent's [`Pending::Dir`].
    number: u64,
    /// Its entries in name order, with their paths (for messages).
    entries: Vec<(PathBuf, Pending)>,
    /// The parent snapshot's tree of it, with its id.
    old: Option<(BlobId, Tree)>,
}

/// Where the content of a hard-link group comes from.
#[derive(Clone)]
enum LinkSource {
    Job(u64),
    Reused(Vec<BlobId>, Option<Digest>),
}

/// The walker: builds trees depth-first, submitting files to the workers.
struct Walker<'s, 'r> {
    session: &'s Session<'r>,
    jobs: Sender<FileJob>,
    next_job: u64,
    links: HashMap<(u64, u64), (u64, LinkSource)>,
    sticky: HashSet<u64>,
    /// File jobs counted as changed (the others queued were counted as new): a file that turns
    /// out unreadable is taken off the count it was put in, so the summary counts what was
    /// stored.
    changed_jobs: HashSet<u64>,
    excludes: PathPatterns,
    one_file_system: bool,
    root_dev: u64,
    ignore_ctime: bool,
    ignore_inode: bool,
    exclude_nodump: bool,
    /// Whether an entry whose ctime and inode are its parent node's takes that node's extended
    /// attributes and inode flags instead of reading them: the parent snapshot read the same
    /// attributes of every entry, and the ctime is trusted.
    reuse_attributes: bool,
    /// The times before which a parent node must have last changed to be trusted
    /// ([`Walker::settled`]): for fine-grained timestamps, and for whole seconds. `None`:
    /// no parent, or one that does not record when it began (all are trusted, as before).
    settled_before: Option<(Time, Time)>,
    /// An entry's extended attributes or inode flags could not be read.
    attributes_incomplete: bool,
    errors: Vec<Unreadable>,
    /// Files that kept changing while they were read.
    changed: Vec<PathBuf>,
    /// Listed directories whose trees are not stored yet, in post-order.
    unfinished: VecDeque<Unfinished>,
    /// Entries held in `unfinished`.
    unfinished_entries: usize,
    /// The number of the next listed directory.
    next_dir: u64,
    /// Tree ids of stored directories whose parent is still unfinished, with what the entry
    /// naming each records of it ([`Tree::subdir_hints`]).
    finished: HashMap<u64, (BlobId, Vec<Node>)>,
}

impl Walker<'_, '_> {
    fn excluded(&self, path: &Path) -> bool {
        self.excludes.matches(path)
    }

    fn warn(&mut self, path: &Path, reason: impl ToString) {
        let unreadable = Unreadable { path: path.to_path_buf(), reason: reason.to_string() };
        self.session.progress.warning(&unreadable.to_string());
        self.errors.push(unreadable);
    }

    fn unchanged<'o>(&self, node: &Node, old: Option<&'o Node>) -> Option<&'o Node> {
        let old = old?;
        let same = old.kind == NodeKind::File
            && old.size == node.size
            && old.mtime == node.mtime
            && (self.ignore_ctime || old.ctime == node.ctime)
            && (self.ignore_inode || old.inode == node.inode)
            && self.settled(old)
            && old.content.iter().all(|id| self.session.known(id));
        same.then_some(old)
    }

    /// Whether `old`, the parent's node of an entry, last changed long enough before the
    /// parent backup began that no later change can have left its timestamps as they were.
    /// A file system stamps a change with its clock's current tick, so a file written again
    /// within the tick of a change the parent saw ("racily clean", as git says) looks
    /// unchanged; such a file is read again. The signal is the ctime, which no one can set
    /// (with `--ignore-ctime`, the mtime).
    fn settled(&self, old: &Node) -> bool {
        let Some((fine, coarse)) = self.settled_before else { return true };
        let t = if self.ignore_ctime { old.mtime } else { old.ctime };
        t < if t.nanos == 0 { coarse } else { fine }
    }

    /// The parent's node of an entry whose extended attributes and inode flags can be taken
    /// from it: setting either changes the ctime, so an entry of the same kind with the same
    /// ctime (and inode) has them still.
    fn attributes_unchanged<'o>(&self, node: &Node, old: Option<&'o Node>) -> Option<&'o Node> {
        let old = old?;
        let same = self.reuse_attributes
            && old.kind == node.kind
            && old.ctime == node.ctime
            && (self.ignore_inode || old.inode == node.inode)
            && self.settled(old);
        same.then_some(old)
    }

    /// Puts extended attributes and inode flags into `node`, naming the entry when its
    /// attributes could not be read (it is stored without them).
    fn set_extended(&mut self, path: &Path, node: &mut Node, extended: Extended) {
        node.xattrs = extended.xattrs;
        node.flags = extended.flags;
        if let Some(problem) = extended.problem {
            self.attributes_not_read(path, problem);
        }
    }

    /// Names an entry stored without its attributes or flags; the snapshot then records no
    /// `attributes`, so the next backup reads every entry's again.
    fn attributes_not_read(&mut self, path: &Path, problem: String) {
        self.attributes_incomplete = true;
        self.warn(path, problem);
    }

    /// Reads the extended attributes and (for files and directories, unless `flags` is
    /// already known) inode flags of the entry at `path` into `node`, or takes them from
    /// `old`, the parent's node of it, when they cannot have changed.
    fn read_extended(&mut self, path: &Path, node: &mut Node, flags: Option<u32>, old: Option<&Node>) {
        if let Some(old) = self.attributes_unchanged(node, old) {
            node.xattrs.clone_from(&old.xattrs);
            node.flags = flags.unwrap_or(old.flags);
            return;
        }
        let flags = match flags {
            Some(f) => f,
            None if matches!(node.kind, NodeKind::File | NodeKind::Dir) => {
                match fsmeta::read_flags(Entry::<&std::fs::File>::Path(path)) {
                    Ok(f) => f,
                    Err(e) => {
                        self.attributes_not_read(path, format!("inode flags not read: {e}"));
                        0
                    }
                }
            }
            None => 0,
        };
        let extended = Extended::read(Entry::<&std::fs::File>::Path(path), self.session.xattrs, flags);
        self.set_extended(path, node, extended);
    }

    /// Saves one entry at `path` with metadata `meta`; `old` is the same name in the parent.
    fn save_entry(&mut self, path: &Path, meta: &Metadata, old: Option<&Node>) -> Result<Option<Pending>> {
        let name = path.file_name().map_or_else(|| b"/".to_vec(), |n| n.as_bytes().to_vec());
        let mut node = node_from_metadata(name, meta);
        // The flags are needed before anything else only to leave no-dump entries out.
        let mut flags = None;
        if self.exclude_nodump && matches!(node.kind, NodeKind::File | NodeKind::Dir) {
            match fsmeta::read_flags(Entry::<&std::fs::File>::Path(path)) {
                Ok(f) if f & fsmeta::FLAG_NODUMP != 0 => return Ok(None),
                Ok(f) => flags = Some(f),
                Err(e) => self.attributes_not_read(path, format!("inode flags not read: {e}")),
            }
        }
        let c = &self.session.counters;
        match node.kind {
            NodeKind::Dir => {
                self.read_extended(path, &mut node, flags, old);
                if self.one_file_system && meta.dev() != self.root_dev {
                    // Record the mount point as an empty directory, as other tools do.
                    node.subtree = Some(self.session.store_tree(&Tree::new(vec![]))?);
                    c.dirs.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(Pending::Ready(node)));
                }
                let old_tree = self.old_subtree(old);
                let Some(number) = self.save_dir(path, old_tree)? else {
                    return Ok(None);
                };
                c.dirs.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Pending::Dir(node, number)))
            }
            NodeKind::File => {
                c.total_bytes.fetch_add(node.size, Ordering::Relaxed);
                let key = (node.dev, node.inode);
                if node.nlink > 1 {
                    if let Some((link_no, source)) = self.links.get(&key).cloned() {
                        node.link = Some(link_no);
                        // Another name of an inode already saved: its attributes are the same.
                        self.read_extended(path, &mut node, flags, old);
                        return Ok(Some(match source {
                            LinkSource::Job(job) => Pending::LinkJob(node, job),
                            LinkSource::Reused(content, hash) => {
                                node.content = content;
                                node.hash = hash;
                                Pending::Ready(node)
                            }
                        }));
                    }
                    node.link = Some(self.links.len() as u64 + 1);
                }
                if let Some(old) = self.unchanged(&node, old) {
                    c.files_unmodified.fetch_add(1, Ordering::Relaxed);
                    let (content, hash) = (old.content.clone(), old.hash);
                    if let Some(link_no) = node.link {
                        self.links.insert(key, (link_no, LinkSource::Reused(content.clone(), hash)));
                    }
                    node.content = content;
                    node.hash = hash;
                    // Flags change the ctime, so an unchanged file has its parent's, unless
                    // the ctime is ignored; so do attributes, which are taken from the parent
                    // too when it read the same ones of every entry.
                    let known = if self.ignore_ctime { flags } else { flags.or(Some(old.flags)) };
                    self.read_extended(path, &mut node, known, Some(old));
                    return Ok(Some(Pending::Ready(node)));
                }
                if old.is_some() { &c.files_changed } else { &c.files_new }.fetch_add(1, Ordering::Relaxed);
                let id = self.next_job;
                self.next_job += 1;
                if old.is_some() {
                    self.changed_jobs.insert(id);
                }
                if let Some(link_no) = node.link {
                    self.links.insert(key, (link_no, LinkSource::Job(id)));
                    self.sticky.insert(id);
                }
                self.jobs
                    .send(FileJob { id, path: path.to_path_buf(), stat: Stat::of(meta) })
                    .map_err(|_| Error::Internal("file workers stopped".into()))?;
                Ok(Some(Pending::Job(node, id)))
            }
            NodeKind::Symlink => {
                match std::fs::read_link(path) {
                    Ok(t) => node.target = Some(t.into_os_string().as_bytes().to_vec()),
                    Err(e) => {
                        self.warn(path, e);
                        return Ok(None);
                    }
                }
                self.read_extended(path, &mut node, None, old);
                self.session.counters.others.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Pending::Ready(node)))
            }
            _ => {
                self.read_extended(path, &mut node, None, old);
                self.session.counters.others.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Pending::Ready(node)))
            }
        }
    }

    fn old_subtree(&mut self, old: Option<&Node>) -> Option<(BlobId, Tree)> {
        let id = old.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        // A parent tree that cannot be read only costs change detection, not correctness.
        Some((id, self.session.parent_tree(&id)?))
    }

    /// Resolves pending entries into nodes, in name order, waiting for file jobs as needed.
    fn finish_nodes(&mut self, pending: Vec<(PathBuf, Pending)>) -> Result<Vec<Node>> {
        let mut nodes = Vec::with_capacity(pending.len());
        for (path, p) in pending {
            // Only a file's first name was counted when its job was queued.
            let (mut node, job, keep, counted) = match p {
                Pending::Ready(n) => {
                    nodes.push(n);
                    continue;
                }
                Pending::Dir(mut n, number) => {
                    // Post-order: a subdirectory is finished before its parent.
                    let (id, hints) = self.finished.remove(&number).ok_or_else(|| {
                        Error::Internal(format!("{}: directory finished after its parent", path.display()))
                    })?;
                    n.subtree = Some(id);
                    n.subdirs = hints;
                    nodes.push(n);
                    continue;
                }
                Pending::Job(n, id) => {
                    let keep = self.sticky.contains(&id);
                    (n, id, keep, true)
                }
                Pending::LinkJob(n, id) => (n, id, true, false),
            };
            match self.session.results.wait(job, keep, &|| self.session.is_failed())? {
                FileOutcome::Done { content, hash, stat, changed, extended } => {
                    node.content = content;
                    node.hash = Some(hash);
                    self.set_extended(&path, &mut node, extended);
                    // The metadata of the version read (the file may have changed since the
                    // walker saw it).
                    node.size = stat.size;
                    node.mtime = stat.mtime;
                    node.atime = stat.mtime;
                    node.ctime = stat.ctime;
                    if changed {
                        let message =
                            format!("changed while it was read, {} times; stored as last read", CHANGED_RETRIES + 1);
                        self.session.progress.warning(&format!("{}: {message}", path.display()));
                        self.changed.push(path.clone());
                    }
                    nodes.push(node);
                }
                FileOutcome::Unreadable(reason) => {
                    let c = &self.session.counters;
                    if counted {
                        if self.changed_jobs.contains(&job) { &c.files_changed } else { &c.files_new }
                            .fetch_sub(1, Ordering::Relaxed);
                    }
                    self.warn(&path, reason)
                }
            }
        }
        Ok(nodes)
    }

    /// Stores the trees of unfinished directories from the front of the queue: those whose
    /// files are all done, and with `wait`, all of them. Then, while the queue holds too many
    /// entries, the front one after waiting for its files.
    fn finish_dirs(&mut self, wait: bool) -> Result<()> {
        while let Some(front) = self.unfinished.front() {
            let over = self.unfinished_entries > UNFINISHED_ENTRIES;
            if !(wait || over) {
                let jobs = front.entries.iter().filter_map(|(_, p)| match p {
                    Pending::Job(_, id) | Pending::LinkJob(_, id) => Some(*id),
                    Pending::Ready(_) | Pending::Dir(..) => None,
                });
                if !self.session.results.all_done(jobs)? {
                    return Ok(());
                }
            }
            let Some(dir) = self.unfinished.pop_front() else { break };
            self.unfinished_entries -= dir.entries.len();
            let tree = Tree::new(self.finish_nodes(dir.entries)?);
            let id = match dir.old {
                // The parent's tree again, node for node: its id, without encoding and hashing
                // it (a write-only host links it into its own record).
                Some((id, old))
                    if old.nodes == tree.nodes
                        && self.session.known(&id)
                        && self.session.record.is_none_or(|r| r.link_tree(&id)) =>
                {
                    id
                }
                _ => self.session.store_tree(&tree)?,
            };
            self.finished.insert(dir.number, (id, tree.subdir_hints()));
        }
        Ok(())
    }

    /// Lists a directory and submits its files; returns the number of its unfinished entry in
    /// the queue (None if it could not be listed).
    fn save_dir(&mut self, path: &Path, old: Option<(BlobId, Tree)>) -> Result<Option<u64>> {
        let read = match std::fs::read_dir(path) {
            Ok(r) => r,
            Err(e) => {
                self.warn(path, e);
                return Ok(None);
            }
        };
        let mut entries: Vec<(OsString, std::fs::DirEntry)> = Vec::new();
        for entry in read {
            match entry {
                Ok(e) => entries.push((e.file_name(), e)),
                Err(e) => self.warn(path, e),
            }
        }
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        // Each lstat goes through the open directory (statx relative to its descriptor) instead
        // of resolving the whole path again. All of them before any subdirectory is entered:
        // the entries keep the directory open, and a deep tree must not hold one descriptor
        // per level.
        let mut listed = Vec::with_capacity(entries.len());
        for (name, entry) in entries {
            let child = path.join(&name);
            if self.excluded(&child) {
                continue;
            }
            match entry.metadata() {
                Ok(meta) => listed.push((name, child, meta)),
                Err(e) => self.warn(&child, e),
            }
        }
        let mut pending = Vec::with_capacity(listed.len());
        for (name, child, meta) in listed {
            let old_node = old.as_ref().and_then(|(_, t)| t.find(name.as_bytes()));
            if let Some(p) = self.save_entry(&child, &meta, old_node)? {
                pending.push((child, p));
            }
        }
        let number = self.next_dir;
        self.next_dir += 1;
        self.unfinished_entries += pending.len();
        self.unfinished.push_back(Unfinished { number, entries: pending, old });
        self.finish_dirs(false)?;
        Ok(Some(number))
    }

    /// Saves the virtual root holding every argument at its absolute path: its tree's id, and
    /// what the entry naming it records of it.
    fn save_root(&mut self, prefix: &Path, args: &[PathBuf], old: Option<&Tree>) -> Result<(BlobId, Vec<Node>)> {
        let mut children: Vec<OsString> = args
            .iter()
            .filter_map(|a| a.strip_prefix(prefix).ok()?.components().next().map(|c| c.as_os_str().to_os_string()))
            .collect();
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        children.dedup();
        let mut pending = Vec::new();
        for name in children {
            let child = prefix.join(&name);
            let meta = std::fs::symlink_metadata(&child).at(&child)?;
            let old_node = old.and_then(|t| t.find(name.as_bytes()));
            if args.iter().any(|a| a == &child) {
                self.root_dev = meta.dev();
                if let Some(p) = self.save_entry(&child, &meta, old_node)? {
                    pending.push((child, p));
                }
            } else {
                let mut node = node_from_metadata(name.as_bytes().to_vec(), &meta);
                let old_tree = self.old_subtree(old_node);
                let below: Vec<PathBuf> = args.iter().filter(|a| a.starts_with(&child)).cloned().collect();
                let (id, hints) = self.save_root(&child, &below, old_tree.as_ref().map(|(_, t)| t))?;
                node.subtree = Some(id);
                node.subdirs = hints;
                pending.push((child, Pending::Ready(node)));
            }
        }
        self.finish_dirs(true)?;
        let tree = Tree::new(self.finish_nodes(pending)?);
        Ok((self.session.store_tree(&tree)?, tree.subdir_hints()))
    }
}

pub(super) fn absolute_args(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).at(p)?;
        // Normalise `.` and `..` lexically; symlinks in the middle are kept as given.
        let mut clean = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                std::path::Component::CurDir => {}
                c => clean.push(c),
            }
        }
        std::fs::symlink_metadata(&clean).at(&clean)?;
        out.push(clean);
    }
    out.sort();
    out.dedup();
    // A path inside another argument is already covered by it.
    let all = out.clone();
    out.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    Ok(out)
}

/// What the walk of a backup made.
pub(super) struct Walked {
    /// The root tree.
    pub(super) root: BlobId,
    /// The root tree's subdirectory entries ([`Tree::subdir_hints`]), for the snapshot.
    pub(super) subdirs: Vec<Node>,
    /// Entries left out because they could not be read.
    pub(super) unreadable: Vec<Unreadable>,
    /// Files that kept changing while they were read (stored as last read).
    pub(super) changed: Vec<PathBuf>,
    /// Whether every entry's extended attributes and inode flags were read (or taken from the
    /// parent) without a problem.
    pub(super) attributes_complete: bool,
}

impl Walked {
    /// A stream's: one file, nothing left out, no attributes read.
    pub(super) fn stream(root: BlobId) -> Self {
        Walked { root, subdirs: Vec::new(), unreadable: Vec::new(), changed: Vec::new(), attributes_complete: false }
    }
}

/// The walker's part of a backup; owns (and so closes) the job channel.
#[allow(clippy::too_many_arguments)]
pub(super) fn walk(
    session: &Session<'_>,
    jobs: Sender<FileJob>,
    opts: &BackupOptions,
    args: &[PathBuf],
    parent: Option<&Snapshot>,
    old_root: Option<&Tree>,
    excludes: PathPatterns,
) -> Result<Walked> {
    let before = |start: jiff::Timestamp, margin| {
        start.checked_sub(margin).map_or(Time { secs: i64::MIN, nanos: 0 }, Time::from)
    };
    let mut walker = Walker {
        session,
        jobs,
        next_job: 0,
        links: HashMap::new(),
        sticky: HashSet::new(),
        changed_jobs: HashSet::new(),
        excludes,
        one_file_system: opts.one_file_system,
        root_dev: 0,
        ignore_ctime: opts.ignore_ctime,
        ignore_inode: opts.ignore_inode,
        exclude_nodump: opts.exclude_nodump,
        reuse_attributes: !opts.ignore_ctime
            && parent.and_then(|p| p.attributes) == Some(AttributesRead::from(session.xattrs)),
        settled_before: parent
            .and_then(Snapshot::started)
            .map(|start| (before(start, SETTLED_FINE), before(start, SETTLED_COARSE))),
        attributes_incomplete: false,
        errors: Vec::new(),
        changed: Vec::new(),
        unfinished: VecDeque::new(),
        unfinished_entries: 0,
        next_dir: 0,
        finished: HashMap::new(),
    };
    // The root has no entry naming it: the snapshot records its subdirectories.
    let (root, subdirs) = walker.save_root(Path::new("/"), args, old_root)?;
    Ok(Walked {
        root,
        subdirs,
        unreadable: walker.errors,
        changed: walker.changed,
        attributes_complete: !walker.attributes_incomplete,
    })
}

#[cfg(test)]
mod tests;
