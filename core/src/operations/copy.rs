//! `copy`: replicate snapshots into another repository (another store, password and keys).
//!
//! Blob ids are keyed per repository, so a copied tree is re-encoded with the target's ids:
//! every data blob is hashed under the target's key and stored unless the target has it, and
//! trees are rebuilt bottom-up. Work is incremental: a source tree already copied in this run,
//! or equal to the corresponding tree of the last snapshot copied from the same source lineage,
//! maps straight to its target tree without reading anything below it. Snapshots keep their
//! time, host, user, paths and tags, and record their source id in `original`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use crate::format::blob::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest, SnapshotId};
use crate::foundation::progress::Progress;
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::batch::{self, Flow};
use crate::repository::trees::{TreeVisitor, TreeWalker};
use crate::repository::writer::{BlobWriter, WriteOptions};

/// One snapshot copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Its id in the source.
    pub from: SnapshotId,
    /// Its id in the target.
    pub to: SnapshotId,
}

/// As `[from, to]`, the shape `cairn copy --json` has always printed.
impl serde::Serialize for Copied {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.from, self.to).serialize(s)
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct CopyStats {
    /// Snapshots copied.
    pub copied: Vec<Copied>,
    /// Snapshots the target already had.
    pub skipped: u64,
    /// Blobs stored in the target.
    pub blobs_written: u64,
    /// Bytes uploaded to the target.
    pub bytes_uploaded: u64,
    /// Data blobs read from the source.
    pub blobs_read: u64,
}

/// What the copy of one run knows: source ids mapped to target ids.
#[derive(Default)]
struct Known {
    /// Source tree id → target tree id, for trees done in this run or known from earlier ones.
    trees: HashMap<BlobId, BlobId>,
    /// Source data blob id → target data blob id.
    data: HashMap<BlobId, BlobId>,
}

/// Copies source trees into the target, bottom-up.
struct Copier<'a, 'w> {
    src: &'a Repository,
    src_index: &'a Index,
    writer: &'w BlobWriter<'w, 'w>,
    known: &'a mut Known,
    blobs_read: u64,
    progress: &'a dyn Progress,
}

impl TreeVisitor for Copier<'_, '_> {
    /// The target tree's id.
    type Output = BlobId;

    fn before(&mut self, id: &BlobId, _: &Path) -> Result<Option<BlobId>> {
        Ok(self.known.trees.get(id).copied())
    }

    fn after(&mut self, id: &BlobId, _: &Path, mut tree: Tree, below: Vec<Option<BlobId>>) -> Result<BlobId> {
        // The data blobs of this directory's files the target lacks, read from the source a
        // batch at a time, several requests side by side.
        let mut todo: Vec<BlobId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for node in &tree.nodes {
            for blob in &node.content {
                let copied = self.known.data.get(blob).is_some_and(|t| self.writer.has(t));
                if !copied && seen.insert(*blob) {
                    todo.push(*blob);
                }
            }
        }
        for batch in todo.chunks(COPY_BATCH) {
            self.copy_blobs(batch)?;
        }
        for (node, copied) in tree.nodes.iter_mut().zip(below) {
            if let Some(t) = copied {
                node.subtree = Some(t);
            }
            node.subdirs = self.map_hints(std::mem::take(&mut node.subdirs));
            for blob in &mut node.content {
                *blob =
                    *self.known.data.get(blob).ok_or_else(|| Error::Internal(format!("blob {blob} was not copied")))?;
            }
        }
        let t = self.writer.add(BlobKind::Tree, &Tree::new(tree.nodes).encode())?;
        self.known.trees.insert(*id, t);
        Ok(t)
    }
}

/// Data blobs read from the source at once: what is held in memory is this many blobs.
const COPY_BATCH: usize = 16;

impl Copier<'_, '_> {
    /// A directory's record of its subdirectories ([`Node::subdirs`]) with the target's ids:
    /// their trees were copied before it (bottom-up). One whose tree was not copied is
    /// dropped, never left naming a source id.
    fn map_hints(&self, mut hints: Vec<Node>) -> Vec<Node> {
        hints.retain_mut(|hint| match hint.subtree.and_then(|s| self.known.trees.get(&s)) {
            Some(t) => {
                hint.subtree = Some(*t);
                true
            }
            None => false,
        });
        hints
    }

    /// Reads `blobs` from the source side by side and stores each in the target.
    fn copy_blobs(&mut self, blobs: &[BlobId]) -> Result<()> {
        let read: Mutex<Vec<(usize, Result<Vec<u8>>)>> = Mutex::new(Vec::with_capacity(blobs.len()));
        let in_flight = batch::in_flight(self.src.store().as_ref(), 0);
        batch::for_each(
            blobs,
            in_flight,
            |id| self.src.read_blob(self.src_index, BlobKind::Data, id),
            |n, got| {
                let failed = got.is_err();
                if let Ok(mut all) = read.lock() {
                    all.push((n, got));
                }
                if failed { Flow::Stop } else { Flow::Continue }
            },
        );
        let mut read = read.into_inner().map_err(|_| Error::Internal("copy lock poisoned".into()))?;
        read.sort_by_key(|(n, _)| *n);
        if read.len() < blobs.len() && read.iter().all(|(_, r)| r.is_ok()) {
            return Err(Error::Internal("a blob of the source was not read".into()));
        }
        for (n, plain) in read {
            let plain = plain?;
            self.blobs_read += 1;
            self.progress.bytes_read(plain.len() as u64);
            let t = self.writer.add(BlobKind::Data, &plain)?;
            self.known.data.insert(blobs[n], t);
        }
        Ok(())
    }
}

/// Learns which target trees and blobs are the copies of a source snapshot's, walking the
/// source tree and its copy side by side (entries match by name).
struct Learner<'a> {
    dst: TreeWalker<'a>,
    known: &'a mut Known,
    /// The copies of the directories being walked.
    copies: Vec<Tree>,
    /// The copy of the directory the walk enters next (set by `entry`).
    next_copy: Option<BlobId>,
}

impl TreeVisitor for Learner<'_> {
    type Output = ();

    fn before(&mut self, id: &BlobId, _: &Path) -> Result<Option<()>> {
        let copy = self.next_copy.take();
        if self.known.trees.contains_key(id) {
            return Ok(Some(()));
        }
        // Without a readable copy there is nothing to learn below.
        match copy.map(|c| (c, self.dst.load(&c))) {
            Some((c, Ok(tree))) => {
                self.known.trees.insert(*id, c);
                self.copies.push(tree);
                Ok(None)
            }
            _ => Ok(Some(())),
        }
    }

    fn entry(&mut self, _: &Path, node: &Node) -> Result<bool> {
        self.next_copy = None;
        let Some(copy) = self.copies.last().and_then(|t| t.find(&node.name)).filter(|c| c.kind == node.kind) else {
            return Ok(false);
        };
        match node.kind {
            NodeKind::Dir => {
                self.next_copy = copy.subtree;
                Ok(copy.subtree.is_some())
            }
            NodeKind::File if node.content.len() == copy.content.len() => {
                for (x, y) in node.content.iter().zip(&copy.content) {
                    self.known.data.insert(*x, *y);
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn after(&mut self, _: &BlobId, _: &Path, _: Tree, _: Vec<Option<()>>) -> Result<()> {
        self.copies.pop();
        Ok(())
    }

    fn unreadable(&mut self, _: &BlobId, _: &Path, _: Error) -> Result<()> {
        self.copies.pop();
        Ok(())
    }
}

/// Copies `snapshots` (all when empty) from `src` to `dst`.
///
/// # Errors
/// Store and corruption errors in either repository; the target stays consistent (snapshots are
/// written only after their packs and index).
pub fn run(src: &Repository, dst: &Repository, snapshots: &[SnapshotId]) -> Result<CopyStats> {
    run_with_progress(src, dst, snapshots, &crate::foundation::progress::NoProgress)
}

/// As [`run`], reporting to `progress` the bytes of data blobs copied and each snapshot done
/// (as `snapshot ID`, with the bytes it holds).
///
/// # Errors
/// As [`run`].
pub fn run_with_progress(
    src: &Repository,
    dst: &Repository,
    snapshots: &[SnapshotId],
    progress: &dyn Progress,
) -> Result<CopyStats> {
    let src_index = src.load_index()?;
    // Copies reuse what the target holds: announced before its index is loaded (FORMAT.md §14a).
    let _session = dst.begin_session()?;
    let dst_index = dst.load_index()?;
    // With a write-only key for the target, what it holds is known from this host's record of
    // what it copied there (FORMAT.md §5.6), and no earlier copy seeds the id mappings (its
    // trees do not open): every blob of a snapshot is read, and only new ones are stored.
    let record = CopyRecord::new(src, dst)?;
    // Source id → the copy's root tree, when the target's snapshots can be read.
    let have: HashMap<SnapshotId, Option<BlobId>> = match &record {
        Some(r) => r.copied().into_iter().map(|o| (o, None)).collect(),
        None => dst.snapshots()?.into_iter().filter_map(|(_, s)| s.original.map(|o| (o, Some(s.tree)))).collect(),
    };
    let src_all = src.snapshots()?;
    let mut todo = src_all.clone();
    if !snapshots.is_empty() {
        todo.retain(|(id, _)| snapshots.contains(id));
    }
    let mut stats = CopyStats::default();
    let src_walker = TreeWalker::new(src, &src_index);
    let mut known = Known::default();
    let ((pending, blobs_read), written, committed) =
        dst.write_blobs(&dst_index, WriteOptions::default(), |writer| {
            let mut pending: Vec<(SnapshotId, Snapshot)> = Vec::new();
            let mut blobs_read = 0;
            for (id, snap) in todo {
                let origin = snap.original.unwrap_or(id);
                if have.contains_key(&origin) {
                    stats.skipped += 1;
                    continue;
                }
                // The newest earlier copy of the same host and paths seeds the id mappings, so only
                // what changed since is read.
                let prev = src_all
                    .iter()
                    .rev()
                    .filter(|(pid, p)| {
                        *pid != id && p.host == snap.host && p.paths == snap.paths && p.time <= snap.time
                    })
                    .find_map(|(pid, p)| have.get(&p.original.unwrap_or(*pid)).copied().flatten().map(|d| (p.tree, d)));
                if let Some((src_tree, dst_tree)) = prev {
                    let mut learner = Learner {
                        dst: TreeWalker::new(dst, &dst_index),
                        known: &mut known,
                        copies: Vec::new(),
                        next_copy: Some(dst_tree),
                    };
                    src_walker.walk(&src_tree, Path::new("/"), &mut learner)?;
                }
                let mut copier =
                    Copier { src, src_index: &src_index, writer, known: &mut known, blobs_read: 0, progress };
                let tree = src_walker.walk(&snap.tree, Path::new("/"), &mut copier)?;
                blobs_read += copier.blobs_read;
                let mut copy = snap.clone();
                copy.tree = tree;
                copy.subdirs = copier.map_hints(copy.subdirs);
                copy.parent = None;
                copy.original = Some(origin);
                progress.file_done(Path::new(&format!("snapshot {}", id.short())), snap.summary.total_bytes);
                pending.push((id, copy));
            }
            Ok((pending, blobs_read))
        })?;
    stats.blobs_written = written.blobs_new;
    stats.blobs_read = blobs_read;
    stats.bytes_uploaded = written.bytes_uploaded;
    // Packs and their index first; snapshots last.
    for (from, snap) in &pending {
        let to = dst.save_snapshot(snap, &committed)?;
        stats.copied.push(Copied { from: *from, to });
        if let Some(r) = &record {
            r.add(snap.original.unwrap_or(*from))?;
        }
    }
    Ok(stats)
}

/// A write-only target key's record of the snapshots copied into the target: their source ids,
/// sealed under the key's record key in `copied-from-<source id>` of its record directory.
struct CopyRecord {
    path: std::path::PathBuf,
    key: crate::foundation::crypto::SealKey,
}

const COPY_RECORD_AAD: &[u8] = b"cairn own record copied v1";

impl CopyRecord {
    /// The record for copies from `src` into `dst`, when `dst` was opened with a write-only key.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a write-only target without a record directory.
    fn new(src: &Repository, dst: &Repository) -> Result<Option<Self>> {
        if !dst.master().is_write_only() {
            return Ok(None);
        }
        let dir = dst.own_records().ok_or_else(|| {
            Error::InvalidArgument(
                "a copy into a repository opened with a write-only key needs a cache directory".into(),
            )
        })?;
        crate::foundation::private::create_dir_all(dir, 0o700).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("copied-from-{}", src.config().id));
        Ok(Some(CopyRecord { path, key: dst.master().record_key() }))
    }

    /// The source ids copied so far (none for a record that is missing or does not open).
    fn copied(&self) -> Vec<SnapshotId> {
        let Ok(sealed) = std::fs::read(&self.path) else { return Vec::new() };
        let Ok(plain) = self.key.open(&sealed, COPY_RECORD_AAD) else { return Vec::new() };
        plain.chunks_exact(32).filter_map(|c| c.try_into().ok()).map(|d| SnapshotId(Digest(d))).collect()
    }

    /// Adds `origin`, replacing the file whole (written beside it, then renamed).
    fn add(&self, origin: SnapshotId) -> Result<()> {
        let mut ids = self.copied();
        ids.push(origin);
        let plain: Vec<u8> = ids.iter().flat_map(|id| id.0.0).collect();
        let tmp = self.path.with_extension("new");
        crate::foundation::private::write_file(&tmp, &self.key.seal(&plain, COPY_RECORD_AAD), 0o600)
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}
