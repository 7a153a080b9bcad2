//! Repairs: rebuilding the index from pack headers, and rewriting snapshots so they no longer
//! reference data that is gone. Both compute a plan first; nothing changes unless `apply`.

use serde::Serialize;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::{Index, IndexFile, IndexedPack};
use crate::pack;
use crate::repo::Repository;
use crate::store::{ObjectKey, ObjectKind};
use crate::tree::{NodeKind, Tree};
use crate::writer::BlobWriter;

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexRepair {
    /// Packs whose headers were read.
    pub packs_read: u64,
    /// Packs whose headers are unreadable (their blobs are lost).
    pub packs_unreadable: Vec<(String, String)>,
    /// Blobs in the rebuilt index.
    pub blobs: u64,
    /// Blobs the rebuilt index has that the old one lacked.
    pub blobs_recovered: u64,
    /// Index objects replaced.
    pub index_objects_replaced: u64,
    /// Whether the repository was changed.
    pub applied: bool,
}

/// Rebuilds the index from the headers of every pack in storage.
///
/// # Errors
/// Store errors listing or writing.
pub fn repair_index(repo: &Repository, apply: bool) -> Result<IndexRepair> {
    let mut r = IndexRepair::default();
    let old = repo.store().list(ObjectKind::Index).map_err(Error::Storage)?;
    let mut old_index = Index::default();
    for info in &old {
        if let Ok(data) = repo.get_verified(info.key)
            && let Ok(f) = IndexFile::open(repo.master(), &IndexId(info.key.id), &data)
        {
            old_index.add_file(&f);
        }
    }
    old_index.finalize();
    let mut packs = Vec::new();
    for info in repo.store().list(ObjectKind::Pack).map_err(Error::Storage)? {
        let id = PackId(info.key.id);
        r.packs_read += 1;
        let header = repo.get_verified(info.key).and_then(|data| pack::read_header(repo.master(), &id, &data));
        match header {
            Ok((salt, entries)) => {
                r.blobs += entries.len() as u64;
                r.blobs_recovered += entries.iter().filter(|e| !old_index.contains(&e.id)).count() as u64;
                packs.push(IndexedPack { id, salt, entries });
            }
            Err(e) => r.packs_unreadable.push((id.to_string(), e.to_string())),
        }
    }
    r.index_objects_replaced = old.len() as u64;
    if apply {
        let supersedes: Vec<IndexId> = old.iter().map(|i| IndexId(i.key.id)).collect();
        repo.save_index(&IndexFile { supersedes, packs })?;
        for info in old {
            repo.store().delete(&info.key).map_err(|source| Error::Store { key: info.key, source })?;
        }
        r.applied = true;
    }
    Ok(r)
}

/// One snapshot `repair snapshots` rewrote (or would).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRepair {
    /// The damaged snapshot.
    pub snapshot: String,
    /// Its replacement (when applied).
    pub replacement: Option<String>,
    /// Paths removed because their data is missing, and directories emptied because their tree
    /// is unreadable.
    pub removed: Vec<String>,
}

/// Rewrites snapshots that reference missing, unreadable or `damaged` data (as found by
/// [`crate::check::run`]): files with such a blob are
/// removed, unreadable directories become empty; the new snapshot is tagged `repaired` and the
/// old one deleted.
///
/// # Errors
/// Store errors.
pub fn repair_snapshots(repo: &Repository, damaged: &[BlobId], apply: bool) -> Result<Vec<SnapshotRepair>> {
    let mut index = Index::default();
    // Damaged blobs count as missing: rebuild the lookup without them.
    let bad: std::collections::HashSet<BlobId> = damaged.iter().copied().collect();
    for (_, f) in repo.index_files()? {
        for p in &f.packs {
            let entries: Vec<_> = p.entries.iter().filter(|e| !bad.contains(&e.id)).copied().collect();
            index.add_pack(p.id, p.salt, &entries);
        }
    }
    index.finalize();
    let mut out = Vec::new();
    let mut writer = BlobWriter::new(repo);
    let mut rewritten = Vec::new();
    for (id, snap) in repo.snapshots()? {
        let mut removed = Vec::new();
        let root = rewrite(repo, &index, &mut writer, snap.tree, "/", &mut removed)?;
        if removed.is_empty() {
            continue;
        }
        let mut fixed = snap.clone();
        fixed.tree = root;
        if !fixed.tags.iter().any(|t| t == "repaired") {
            fixed.tags.push("repaired".into());
        }
        out.push(SnapshotRepair { snapshot: id.to_string(), replacement: None, removed });
        rewritten.push((id, fixed));
    }
    if apply && !rewritten.is_empty() {
        let _committed = writer.finish()?;
        for ((old, fixed), report) in rewritten.into_iter().zip(out.iter_mut()) {
            let new = repo.save_snapshot(&fixed)?;
            report.replacement = Some(new.to_string());
            let key = ObjectKey::new(ObjectKind::Snapshot, old.0);
            repo.store().delete(&key).map_err(|source| Error::Store { key, source })?;
        }
    }
    Ok(out)
}

fn blob_readable(index: &Index, id: &BlobId) -> bool {
    index.contains(id)
}

/// Rewrites one tree; returns its (possibly new) id.
fn rewrite(
    repo: &Repository,
    index: &Index,
    writer: &mut BlobWriter<'_>,
    tree_id: BlobId,
    path: &str,
    removed: &mut Vec<String>,
) -> Result<BlobId> {
    let tree = match repo.load_tree(index, &tree_id) {
        Ok(t) => t,
        Err(e) => {
            removed.push(format!("{path} (directory unreadable: {e})"));
            return writer.add(index, BlobKind::Tree, &Tree::new(vec![]).encode());
        }
    };
    let before = removed.len();
    let mut nodes = Vec::with_capacity(tree.nodes.len());
    for mut node in tree.nodes {
        let p = format!("{}/{}", path.trim_end_matches('/'), node.display_name());
        match node.kind {
            NodeKind::Dir => {
                if let Some(sub) = node.subtree {
                    node.subtree = Some(rewrite(repo, index, writer, sub, &p, removed)?);
                }
                nodes.push(node);
            }
            NodeKind::File if !node.content.iter().all(|id| blob_readable(index, id)) => {
                removed.push(p);
            }
            _ => nodes.push(node),
        }
    }
    if removed.len() == before {
        return Ok(tree_id);
    }
    writer.add(index, BlobKind::Tree, &Tree::new(nodes).encode())
}
