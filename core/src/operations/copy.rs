//! `copy`: replicate snapshots into another repository (another store, password and keys).
//!
//! Blob ids are keyed per repository, so a copied tree is re-encoded with the target's ids:
//! every data blob is hashed under the target's key and stored unless the target has it, and
//! trees are rebuilt bottom-up. Work is incremental: a source tree already copied in this run,
//! or equal to the corresponding tree of the last snapshot copied from the same source lineage,
//! maps straight to its target tree without reading anything below it. Snapshots keep their
//! time, host, user, paths and tags, and record their source id in `original`.

use std::collections::HashMap;

use crate::format::blob::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Tree};
use crate::foundation::error::Result;
use crate::foundation::id::{BlobId, SnapshotId};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::writer::{BlobWriter, WriteOptions};

/// What a copy did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyStats {
    /// Snapshots copied.
    pub copied: Vec<(String, String)>,
    /// Snapshots the target already had.
    pub skipped: u64,
    /// Blobs stored in the target.
    pub blobs_written: u64,
    /// Bytes uploaded to the target.
    pub bytes_uploaded: u64,
    /// Data blobs read from the source.
    pub blobs_read: u64,
}

struct Copier<'a> {
    src: &'a Repository,
    src_index: &'a Index,
    dst_index: &'a Index,
    writer: &'a BlobWriter<'a, 'a>,
    /// Source tree id → target tree id, for trees done in this run or known from earlier ones.
    trees: HashMap<BlobId, BlobId>,
    /// Source data blob id → target data blob id.
    data: HashMap<BlobId, BlobId>,
    blobs_read: u64,
}

impl Copier<'_> {
    /// Learns the mapping between a source tree and the target tree it was copied to earlier.
    fn learn(&mut self, dst: &Repository, src_tree: BlobId, dst_tree: BlobId) -> Result<()> {
        if self.trees.contains_key(&src_tree) {
            return Ok(());
        }
        let (Ok(s), Ok(d)) = (self.src.load_tree(self.src_index, &src_tree), dst.load_tree(self.dst_index, &dst_tree))
        else {
            return Ok(());
        };
        if s.nodes.len() != d.nodes.len() {
            return Ok(());
        }
        self.trees.insert(src_tree, dst_tree);
        for (a, b) in s.nodes.iter().zip(&d.nodes) {
            if a.name != b.name || a.kind != b.kind {
                continue;
            }
            match (a.kind, a.subtree, b.subtree) {
                (NodeKind::Dir, Some(x), Some(y)) => self.learn(dst, x, y)?,
                (NodeKind::File, _, _) if a.content.len() == b.content.len() => {
                    for (x, y) in a.content.iter().zip(&b.content) {
                        self.data.insert(*x, *y);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn copy_tree(&mut self, src_tree: BlobId) -> Result<BlobId> {
        if let Some(t) = self.trees.get(&src_tree) {
            return Ok(*t);
        }
        let mut tree = self.src.load_tree(self.src_index, &src_tree)?;
        for node in &mut tree.nodes {
            if let Some(sub) = node.subtree {
                node.subtree = Some(self.copy_tree(sub)?);
            }
            for id in &mut node.content {
                *id = match self.data.get(id) {
                    Some(t) if self.writer.has(t) => *t,
                    _ => {
                        let plain = self.src.read_blob(self.src_index, BlobKind::Data, id)?;
                        self.blobs_read += 1;
                        let t = self.writer.add(BlobKind::Data, &plain)?;
                        self.data.insert(*id, t);
                        t
                    }
                };
            }
        }
        let plain = Tree::new(tree.nodes).encode();
        let t = self.writer.add(BlobKind::Tree, &plain)?;
        self.trees.insert(src_tree, t);
        Ok(t)
    }
}

/// Copies `snapshots` (all when empty) from `src` to `dst`.
///
/// # Errors
/// Store and corruption errors in either repository; the target stays consistent (snapshots are
/// written only after their packs and index).
pub fn run(src: &Repository, dst: &Repository, snapshots: &[SnapshotId]) -> Result<CopyStats> {
    let src_index = src.load_index()?;
    let dst_index = dst.load_index()?;
    let dst_snaps = dst.snapshots()?;
    // What the target already holds, by source id.
    let have: HashMap<SnapshotId, Snapshot> =
        dst_snaps.iter().filter_map(|(_, s)| s.original.map(|o| (o, s.clone()))).collect();
    let src_all = src.snapshots()?;
    let mut todo = src_all.clone();
    if !snapshots.is_empty() {
        todo.retain(|(id, _)| snapshots.contains(id));
    }
    let mut stats = CopyStats::default();
    let ((pending, blobs_read), written, committed) =
        dst.write_blobs(&dst_index, WriteOptions::default(), |writer| {
            let mut copier = Copier {
                src,
                src_index: &src_index,
                dst_index: &dst_index,
                writer,
                trees: HashMap::new(),
                data: HashMap::new(),
                blobs_read: 0,
            };
            let mut pending: Vec<(SnapshotId, Snapshot)> = Vec::new();
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
                    .find_map(|(pid, p)| have.get(&p.original.unwrap_or(*pid)).map(|d| (p.tree, d.tree)));
                if let Some((src_tree, dst_tree)) = prev {
                    copier.learn(dst, src_tree, dst_tree)?;
                }
                let tree = copier.copy_tree(snap.tree)?;
                let mut copy = snap.clone();
                copy.tree = tree;
                copy.parent = None;
                copy.original = Some(origin);
                pending.push((id, copy));
            }
            Ok((pending, copier.blobs_read))
        })?;
    stats.blobs_written = written.blobs_new;
    stats.blobs_read = blobs_read;
    stats.bytes_uploaded = written.bytes_uploaded;
    // Packs and their index first; snapshots last.
    for (from, snap) in &pending {
        let new_id = dst.save_snapshot(snap, &committed)?;
        stats.copied.push((from.to_string(), new_id.to_string()));
    }
    Ok(stats)
}
