//! Repairs: rebuilding the index from pack headers, and rewriting snapshots so they no longer
//! reference data that is gone. Both compute a plan first; nothing changes unless `apply`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::format::blob::BlobKind;
use crate::format::index::{IndexFile, IndexedPack, union_packs};
use crate::format::pack;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::foundation::pattern::PathPatterns;
use crate::foundation::progress::{NoProgress, Progress};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::parity::Rebuilt;
use crate::repository::store::{ObjectKey, ObjectKind};
use crate::repository::trees::{TreeVisitor, TreeWalker};
use crate::repository::writer::WriteOptions;

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct IndexRepair {
    /// Packs whose headers were read.
    pub packs_read: u64,
    /// Packs whose headers are unreadable (their blobs are lost), with why.
    pub packs_unreadable: Vec<(PackId, String)>,
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
            Ok((seal, entries)) => {
                r.blobs += entries.len() as u64;
                r.blobs_recovered += entries.iter().filter(|e| !old_index.contains(&e.id)).count() as u64;
                packs.push(IndexedPack { id, seal, entries });
            }
            Err(e) => r.packs_unreadable.push((id, e.to_string())),
        }
    }
    r.index_objects_replaced = old.len() as u64;
    if apply {
        let supersedes: Vec<IndexId> = old.iter().map(|i| IndexId(i.key.id)).collect();
        repo.save_index_objects(&supersedes, &packs)?;
        for info in old {
            repo.store().delete(&info.key).map_err(|cause| Error::Store { key: info.key, cause })?;
        }
        r.applied = true;
    }
    Ok(r)
}

/// What `repair packs` found and did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct PackRepair {
    /// Packs read whole.
    pub packs_read: u64,
    /// Damaged or missing data packs their parity rebuilds: written back when applied.
    pub rebuilt: Vec<PackId>,
    /// Intact data packs without a parity object (in a repository that keeps parity): given
    /// one when applied.
    pub parity_written: Vec<PackId>,
    /// Damaged or missing tree packs every tree of which has an intact copy in another pack:
    /// dropped from the index and deleted when applied, after each of their trees was written
    /// once more, so every tree has two copies again.
    pub removed: Vec<PackId>,
    /// Trees written again for the removed packs.
    pub trees_recopied: u64,
    /// Packs damaged beyond these repairs, with why: their blobs are lost (run `repair
    /// snapshots --read-data`).
    pub lost: Vec<(PackId, String)>,
    /// Whether the repository was changed.
    pub applied: bool,
}

/// Reads every indexed pack whole and repairs what can be repaired without losing a byte: a
/// damaged data pack is rebuilt from its parity and written back (the same bytes its name
/// says), an intact one lacking parity gets it, and a damaged tree pack whose trees all have
/// intact copies elsewhere is replaced by new copies of them and removed.
///
/// # Errors
/// Store errors.
pub fn repair_packs(repo: &Repository, apply: bool) -> Result<PackRepair> {
    let _session = if apply { Some(repo.begin_session()?) } else { None };
    let mut r = PackRepair::default();
    let files = repo.index_files()?;
    let mut index = Index::default();
    index.note_loaded_from(files.iter().map(|(id, _)| *id));
    let mut packs = std::collections::BTreeMap::new();
    for (_, f) in &files {
        index.add_file(f);
        union_packs(&mut packs, &f.packs);
    }
    index.finalize();
    let parities: std::collections::HashSet<PackId> =
        repo.store().list(ObjectKind::Parity).map_err(Error::Storage)?.into_iter().map(|i| PackId(i.key.id)).collect();
    let keeps_parity = repo.config().data_parity > 0;
    // Trees to write again, read from their intact copies.
    let mut recopy: Vec<(BlobId, Vec<u8>)> = Vec::new();
    for (id, IndexedPack { entries, .. }) in &packs {
        r.packs_read += 1;
        let data_pack = entries.first().is_some_and(|e| e.kind == BlobKind::Data);
        match repo.rebuild_pack(id) {
            Ok(Rebuilt::Intact(bytes)) => {
                if keeps_parity && data_pack && !parities.contains(id) {
                    if apply {
                        repo.put_parity(id, &bytes)?;
                    }
                    r.parity_written.push(*id);
                }
            }
            Ok(Rebuilt::Repaired { pack, .. }) => {
                if apply {
                    let key = ObjectKey::new(ObjectKind::Pack, id.0);
                    repo.store().replace(&key, bytes::Bytes::from(pack)).map_err(Error::store(key))?;
                }
                r.rebuilt.push(*id);
            }
            Err(e) if e.is_storage_trouble() => return Err(e),
            Err(e) => {
                let copies = (!data_pack).then(|| intact_copies_elsewhere(repo, &index, id, entries)).flatten();
                match copies {
                    Some(trees) => {
                        r.trees_recopied += trees.len() as u64;
                        recopy.extend(trees);
                        r.removed.push(*id);
                    }
                    None => r.lost.push((*id, e.to_string())),
                }
            }
        }
    }
    if apply && !r.removed.is_empty() {
        // New copies first (each tree once more, whatever the index holds), then an index
        // without the damaged packs, then the packs.
        let _ = repo.write_blobs(&Index::default(), WriteOptions::default(), |writer| {
            recopy.iter().try_for_each(|(id, plain)| writer.add_tree_copy(*id, plain))
        })?;
        let kept: Vec<IndexedPack> =
            files.iter().flat_map(|(_, f)| f.packs.iter()).filter(|p| !r.removed.contains(&p.id)).cloned().collect();
        let supersedes: Vec<IndexId> = files.iter().map(|(id, _)| *id).collect();
        repo.save_index_objects(&supersedes, &kept)?;
        for id in &supersedes {
            let key = ObjectKey::new(ObjectKind::Index, id.0);
            repo.store().delete(&key).map_err(Error::store(key))?;
        }
        for id in &r.removed {
            let key = ObjectKey::new(ObjectKind::Pack, id.0);
            repo.store().delete(&key).map_err(Error::store(key))?;
        }
    }
    r.applied = apply;
    Ok(r)
}

/// For a damaged tree pack: every tree in it read from an intact copy in another pack, or
/// `None` when one has none.
fn intact_copies_elsewhere(
    repo: &Repository,
    index: &Index,
    pack: &PackId,
    entries: &[crate::format::pack::PackEntry],
) -> Option<Vec<(BlobId, Vec<u8>)>> {
    entries
        .iter()
        .map(|e| {
            let plain = index
                .get(&e.id)
                .into_iter()
                .chain(index.alternates(&e.id))
                .filter(|c| index.pack(c).id != *pack)
                .find_map(|c| repo.read_entry(index, c).ok())?;
            Some((e.id, plain))
        })
        .collect()
}

/// One snapshot `repair snapshots` or `rewrite` rewrote (or would).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SnapshotRepair {
    /// The snapshot rewritten.
    pub snapshot: SnapshotId,
    /// Its replacement (when applied).
    pub replacement: Option<SnapshotId>,
    /// Entries removed (their data is missing, or a pattern matched them), and directories
    /// emptied because their tree is unreadable.
    pub removed: Vec<Removed>,
    /// The snapshot's object was damaged and one of its two copies intact (FORMAT.md §13): it
    /// is (or would be) written back from that copy under the same name, nothing removed.
    pub from_copy: bool,
}

/// An entry a rewrite left out of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Its path in the snapshot.
    pub path: PathBuf,
    /// Why: its data is damaged (stored, but failing authentication) or missing, or a pattern
    /// matched it.
    pub reason: String,
    /// Set when it is a directory whose tree could not be read (it is kept, empty): why.
    pub unreadable: Option<String>,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.unreadable {
            None => write!(f, "{} ({})", self.path.display(), self.reason),
            Some(why) => write!(f, "{} (directory unreadable: {why})", self.path.display()),
        }
    }
}

/// As the text `Display` gives, the shape `--json` has always printed.
impl Serialize for Removed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Rewrites snapshots that reference missing, unreadable or `damaged` data (as found by
/// [`crate::operations::check::run`]): files with such a blob are
/// removed, unreadable directories become empty; the new snapshot is tagged `repaired` and the
/// old one deleted.
///
/// # Errors
/// Store errors.
pub fn repair_snapshots(repo: &Repository, damaged: &[BlobId], apply: bool) -> Result<Vec<SnapshotRepair>> {
    let _session = if apply { Some(repo.begin_session()?) } else { None };
    // A snapshot object with one intact copy gets its bytes back, under the same name.
    let mut rebuilt = Vec::new();
    for (id, bytes) in repo.damaged_snapshot_copies()? {
        if apply {
            let key = ObjectKey::new(ObjectKind::Snapshot, id.0);
            repo.store().replace(&key, bytes::Bytes::from(bytes)).map_err(Error::store(key))?;
        }
        rebuilt.push(SnapshotRepair {
            snapshot: id,
            replacement: apply.then_some(id),
            removed: vec![],
            from_copy: true,
        });
    }
    let mut index = Index::default();
    // Damaged blobs count as missing: rebuild the lookup without them.
    let bad: std::collections::HashSet<BlobId> = damaged.iter().copied().collect();
    let files = repo.index_files()?;
    index.note_loaded_from(files.iter().map(|(id, _)| *id));
    for (_, f) in files {
        for p in &f.packs {
            let entries: Vec<_> = p.entries.iter().filter(|e| !bad.contains(&e.id)).copied().collect();
            index.add_pack(p.id, p.seal, &entries);
        }
    }
    index.finalize();
    let snapshots = repo.snapshots()?;
    // Damaged (stored, failing authentication) is told apart from missing (in no index).
    let unreadable = |_: &Path, node: &Node| -> Option<String> {
        if node.kind != NodeKind::File || node.content.iter().all(|id| index.contains(id)) {
            None
        } else if node.content.iter().any(|id| bad.contains(id)) {
            Some("its data is damaged".into())
        } else {
            Some("its data is missing".into())
        }
    };
    let tree_damaged = |id: &BlobId| bad.contains(id);
    rebuilt.extend(rewrite_snapshots(
        repo,
        &index,
        snapshots,
        &RewriteHow { drop: &unreadable, damaged: &tree_damaged, tag: "repaired", apply, progress: &NoProgress },
    )?);
    Ok(rebuilt)
}

/// How [`rewrite_snapshots`] rewrites.
struct RewriteHow<'a> {
    /// Why an entry is left out, or `None` to keep it.
    drop: &'a dyn Fn(&Path, &Node) -> Option<String>,
    /// Whether a tree blob is damaged (stored, failing authentication) rather than missing.
    damaged: &'a dyn Fn(&BlobId) -> bool,
    /// The tag of each replacement snapshot.
    tag: &'a str,
    /// Store the result (otherwise a dry run: nothing is stored, trees are only named).
    apply: bool,
    /// Hears the bytes of file content walked against the snapshots' total, and each snapshot
    /// done.
    progress: &'a dyn Progress,
}

/// Rewrites `snapshots` without the entries `how.drop` selects (and, for unreadable
/// directories, with an empty one): new trees, a new snapshot tagged `how.tag` replacing each
/// changed one.
fn rewrite_snapshots(
    repo: &Repository,
    index: &Index,
    snapshots: Vec<(SnapshotId, Snapshot)>,
    how: &RewriteHow<'_>,
) -> Result<Vec<SnapshotRepair>> {
    let RewriteHow { drop, damaged, tag, apply, progress } = *how;
    let walker = TreeWalker::new(repo, index);
    progress.total(snapshots.iter().map(|(_, s)| s.summary.total_bytes).sum(), snapshots.len() as u64);
    let plan = |put_tree: &dyn Fn(&[u8]) -> Result<BlobId>| -> Result<Vec<(SnapshotId, Snapshot, SnapshotRepair)>> {
        let mut out = Vec::new();
        for (id, snap) in &snapshots {
            // The root has no entry naming it: the snapshot records its subdirectories.
            let mut rewriter = Rewriter {
                drop,
                damaged,
                put_tree,
                removed: Vec::new(),
                progress,
                walker: &walker,
                next_hints: snap.subdirs.clone(),
            };
            let (root, root_hints) = walker.walk(&snap.tree, Path::new("/"), &mut rewriter)?;
            progress.file_done(Path::new(&format!("snapshot {}", id.short())), snap.summary.total_bytes);
            if rewriter.removed.is_empty() {
                continue;
            }
            let mut fixed = snap.clone();
            if fixed.tree != root {
                fixed.subdirs = root_hints;
            }
            fixed.tree = root;
            fixed.parent = None;
            if !fixed.tags.iter().any(|t| t == tag) {
                fixed.tags.push(tag.into());
            }
            let report =
                SnapshotRepair { snapshot: *id, replacement: None, removed: rewriter.removed, from_copy: false };
            out.push((*id, fixed, report));
        }
        Ok(out)
    };
    if !apply {
        let planned = plan(&|plain| Ok(repo.master().blob_id(plain)))?;
        return Ok(planned.into_iter().map(|(_, _, report)| report).collect());
    }
    let (planned, _, committed) =
        repo.write_blobs(index, WriteOptions::default(), |writer| plan(&|plain| writer.add(BlobKind::Tree, plain)))?;
    let mut out = Vec::with_capacity(planned.len());
    for (old, fixed, mut report) in planned {
        report.replacement = Some(repo.save_snapshot(&fixed, &committed)?);
        let key = ObjectKey::new(ObjectKind::Snapshot, old.0);
        repo.store().delete(&key).map_err(Error::store(key))?;
        out.push(report);
    }
    Ok(out)
}

/// Erases paths from snapshots (`rewrite --exclude`): every entry matching `excludes` (globs,
/// as for backup) is removed from `snapshots` (all when empty); each changed snapshot is
/// replaced by one tagged `rewritten`. The data itself leaves the repository at the next
/// prune, once no snapshot references it. `progress` hears the file bytes walked of the
/// snapshots' total, and each snapshot (`snapshot ID`) once walked.
///
/// # Errors
/// Bad patterns; store errors; unreadable trees.
pub fn erase(
    repo: &Repository,
    snapshots: &[SnapshotId],
    excludes: &[String],
    apply: bool,
    progress: &dyn Progress,
) -> Result<Vec<SnapshotRepair>> {
    if excludes.is_empty() {
        return Err(Error::InvalidArgument("rewrite needs at least one --exclude pattern".into()));
    }
    let patterns = PathPatterns::new(excludes)?;
    let _session = if apply { Some(repo.begin_session()?) } else { None };
    let index = repo.load_index()?;
    let mut selected = repo.snapshots()?;
    if !snapshots.is_empty() {
        selected.retain(|(id, _)| snapshots.contains(id));
    }
    let matches = |path: &Path, _: &Node| patterns.matches(path).then(|| "matched --exclude".to_string());
    rewrite_snapshots(
        repo,
        &index,
        selected,
        &RewriteHow { drop: &matches, damaged: &|_| false, tag: "rewritten", apply, progress },
    )
}

/// Rewrites trees without the entries `drop` selects, bottom-up: a tree with nothing left out
/// below it keeps its id. An unreadable one becomes a directory holding what the entry naming it
/// records of its subdirectories ([`Node::subdirs`]), each walked and rewritten in turn: only
/// the files directly in it are lost.
struct Rewriter<'a> {
    /// Why an entry is left out, or `None` to keep it.
    drop: &'a dyn Fn(&Path, &Node) -> Option<String>,
    /// Whether a tree blob is damaged (stored, failing authentication) rather than missing.
    damaged: &'a dyn Fn(&BlobId) -> bool,
    /// Stores a tree blob (or, in a dry run, only names it).
    put_tree: &'a dyn Fn(&[u8]) -> Result<BlobId>,
    removed: Vec<Removed>,
    /// Hears the content bytes of each file walked.
    progress: &'a dyn Progress,
    /// Walks the subdirectories salvaged from an unreadable tree.
    walker: &'a TreeWalker<'a>,
    /// The subdirectories the entry last visited records ([`Node::subdirs`]): what is salvaged
    /// if its tree, read next, is unreadable.
    next_hints: Vec<Node>,
}

impl TreeVisitor for Rewriter<'_> {
    /// The id of the rewritten tree, and what the entry naming it records of it.
    type Output = (BlobId, Vec<Node>);

    fn entry(&mut self, path: &Path, node: &Node) -> Result<bool> {
        if node.kind == NodeKind::File {
            self.progress.bytes_read(node.size);
        }
        if let Some(reason) = (self.drop)(path, node) {
            self.removed.push(Removed { path: path.to_path_buf(), reason, unreadable: None });
            return Ok(false);
        }
        self.next_hints = if node.kind == NodeKind::Dir { node.subdirs.clone() } else { Vec::new() };
        Ok(true)
    }

    fn after(
        &mut self,
        id: &BlobId,
        path: &Path,
        tree: Tree,
        below: Vec<Option<(BlobId, Vec<Node>)>>,
    ) -> Result<(BlobId, Vec<Node>)> {
        let mut changed = false;
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for (mut node, rewritten) in tree.nodes.into_iter().zip(below) {
            if (self.drop)(&path.join(node.os_name()), &node).is_some() {
                changed = true;
                continue;
            }
            // A subdirectory rewritten: its new id, and the record of its own subdirectories
            // made again (so nothing erased from it stays named one level up).
            if let Some((new, hints)) = rewritten
                && node.subtree != Some(new)
            {
                node.subtree = Some(new);
                node.subdirs = hints;
                changed = true;
            }
            nodes.push(node);
        }
        let tree = Tree::new(nodes);
        let hints = tree.subdir_hints();
        if !changed {
            return Ok((*id, hints));
        }
        Ok(((self.put_tree)(&tree.encode())?, hints))
    }

    fn unreadable(&mut self, id: &BlobId, path: &Path, error: Error) -> Result<(BlobId, Vec<Node>)> {
        let why = if (self.damaged)(id) {
            format!("tree blob {id} is damaged: stored, but its bytes fail authentication")
        } else {
            error.to_string()
        };
        // Its subdirectories, as the entry naming it records them, walked like any other.
        let walker = self.walker;
        let mut salvaged = Vec::new();
        for mut hint in std::mem::take(&mut self.next_hints) {
            let Some(sub) = hint.subtree else { continue };
            let at = path.join(hint.os_name());
            if !self.entry(&at, &hint)? {
                continue;
            }
            // Nothing records a salvaged directory's own subdirectories.
            self.next_hints.clear();
            let (new, hints) = walker.walk(&sub, &at, self)?;
            hint.subtree = Some(new);
            hint.subdirs = hints;
            salvaged.push(hint);
        }
        let lost = if salvaged.is_empty() {
            why
        } else {
            let names: Vec<String> = salvaged.iter().map(Node::display_name).collect();
            format!("{why}; its other entries are lost, its subdirectories {} are salvaged", names.join(", "))
        };
        self.removed.push(Removed {
            path: path.to_path_buf(),
            reason: "directory unreadable".into(),
            unreadable: Some(lost),
        });
        let tree = Tree::new(salvaged);
        let hints = tree.subdir_hints();
        Ok(((self.put_tree)(&tree.encode())?, hints))
    }
}
