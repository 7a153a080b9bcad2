//! Looking inside snapshots: listing (`ls`), finding paths (`find`), comparing two snapshots
//! (`diff`) and sizes (`stats`). Every function here only reads the repository, through the
//! one tree walker ([`crate::advanced::trees`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, ObjectKind, SnapshotId};
use crate::foundation::path::serialize_path;
use crate::foundation::pattern::PathPatterns;
use crate::repository::Repository;
use crate::repository::trees::{TreeVisitor, TreeWalker};

/// Calls `visit` for the entry at `path` in `snapshot` and, for a directory, every entry
/// below it, depth first in name order (a directory before its contents). The snapshot's root
/// itself (`/`) is not visited, only what is below it.
///
/// # Errors
/// [`Error::NotFound`] when `path` is not in the snapshot; unreadable trees; whatever `visit`
/// returns.
pub fn ls(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    let index = repo.load_index()?;
    let walker = TreeWalker::new(repo, &index);
    let base = Path::new("/").join(path);
    let node = walker.find(snapshot, &base)?;
    if base != Path::new("/") {
        visit(&base, &node)?;
    }
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(sub)) => walker.for_each(&sub, &base, visit),
        _ => Ok(()),
    }
}

/// How an entry differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// Content (or kind, or link target) differs.
    Modified,
    /// Same content, other metadata (mode, owner, times).
    Metadata,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// The path.
    #[serde(serialize_with = "serialize_path")]
    pub path: PathBuf,
    /// What changed.
    pub change: Change,
}

/// What changed from snapshot `a` to snapshot `b`, in path order. Directories the two share
/// (the same tree id) are skipped without reading them.
///
/// # Errors
/// Unreadable trees.
pub fn diff(repo: &Repository, a: &Snapshot, b: &Snapshot) -> Result<Vec<DiffEntry>> {
    let index = repo.load_index()?;
    let walker = TreeWalker::new(repo, &index);
    let mut differ = Differ { walker: &walker, older: Vec::new(), next_older: Some(a.tree), out: Vec::new() };
    walker.walk(&b.tree, Path::new("/"), &mut differ)?;
    let mut out = differ.out;
    out.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(out)
}

/// Walks the newer snapshot's trees, holding the older snapshot's tree of the same directory.
struct Differ<'w, 'a> {
    walker: &'w TreeWalker<'a>,
    /// The older snapshot's trees of the directories being walked (empty where it had none).
    older: Vec<Tree>,
    /// The older tree of the directory the walk enters next (set by `entry`).
    next_older: Option<BlobId>,
    out: Vec<DiffEntry>,
}

impl Differ<'_, '_> {
    fn push(&mut self, path: &Path, change: Change) {
        self.out.push(DiffEntry { path: path.to_path_buf(), change });
    }

    /// Everything below the older tree `id` at `path` was removed.
    fn removed_below(&mut self, id: &BlobId, path: &Path) -> Result<()> {
        let mut gone = Vec::new();
        self.walker.for_each(id, path, &mut |p, _| {
            gone.push(p.to_path_buf());
            Ok(())
        })?;
        self.out.extend(gone.into_iter().map(|path| DiffEntry { path, change: Change::Removed }));
        Ok(())
    }
}

impl TreeVisitor for Differ<'_, '_> {
    type Output = ();

    fn before(&mut self, id: &BlobId, _: &Path) -> Result<Option<()>> {
        let older = self.next_older.take();
        if older == Some(*id) {
            return Ok(Some(())); // the same tree: nothing below differs
        }
        self.older.push(match older {
            Some(o) => self.walker.load(&o)?,
            None => Tree::default(),
        });
        Ok(None)
    }

    fn entry(&mut self, path: &Path, y: &Node) -> Result<bool> {
        // The walk enters a directory (and calls `before`) right after its entry, and only
        // when it has a tree.
        self.next_older = None;
        let x = self.older.last().and_then(|t| t.find(&y.name)).cloned();
        let Some(x) = x else {
            self.push(path, Change::Added);
            return Ok(y.kind == NodeKind::Dir);
        };
        let content_differs = x.kind != y.kind || x.content != y.content || x.target != y.target || x.rdev != y.rdev;
        let meta_differs = x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.mtime != y.mtime;
        if x.kind == NodeKind::Dir && y.kind == NodeKind::Dir {
            if meta_differs {
                self.push(path, Change::Metadata);
            }
            self.next_older = x.subtree;
            return Ok(true);
        }
        if content_differs {
            self.push(path, Change::Modified);
        } else if meta_differs {
            self.push(path, Change::Metadata);
        }
        Ok(false)
    }

    fn after(&mut self, _: &BlobId, path: &Path, tree: Tree, _: Vec<Option<()>>) -> Result<()> {
        let older = self.older.pop().unwrap_or_default();
        for x in older.nodes.iter().filter(|x| tree.find(&x.name).is_none()) {
            let p = path.join(x.os_name());
            self.push(&p, Change::Removed);
            if let (NodeKind::Dir, Some(sub)) = (x.kind, x.subtree) {
                self.removed_below(&sub, &p)?;
            }
        }
        Ok(())
    }
}

/// Sizes of one snapshot, or of several together.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files (hard links counted once per snapshot).
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes a restore would write.
    pub restore_size: u64,
    /// Distinct data and tree blobs referenced.
    pub blobs: u64,
    /// Plaintext bytes of the distinct blobs (the deduplicated size).
    pub dedup_size: u64,
    /// Bytes those blobs take in packs (compressed and encrypted).
    pub stored_size: u64,
    /// dedup_size / stored_size.
    pub compression_ratio: f64,
    /// restore_size / stored_size.
    pub space_saving_ratio: f64,
    /// Packs holding the blobs.
    pub packs: u64,
    /// All pack bytes in the repository (including unused parts).
    pub repository_size: u64,
}

/// Statistics over `snapshots`, together.
///
/// # Errors
/// Unreadable trees; store errors listing the packs.
pub fn stats(repo: &Repository, snapshots: &[Snapshot]) -> Result<Stats> {
    let index = repo.load_index()?;
    let walker = TreeWalker::new(repo, &index);
    let mut s = Stats { snapshots: snapshots.len() as u64, ..Default::default() };
    let mut blobs: HashSet<BlobId> = HashSet::new();
    for snapshot in snapshots {
        let mut links: HashSet<u64> = HashSet::new();
        blobs.insert(snapshot.tree);
        walker.for_each(&snapshot.tree, Path::new("/"), &mut |_, n| {
            match n.kind {
                NodeKind::Dir => {
                    s.dirs += 1;
                    blobs.extend(n.subtree);
                }
                NodeKind::File => {
                    if n.link.is_none_or(|l| links.insert(l)) {
                        s.files += 1;
                        s.restore_size += n.size;
                    }
                    blobs.extend(n.content.iter().copied());
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    let mut packs = HashSet::new();
    for id in &blobs {
        if let Some(e) = index.get(id) {
            s.dedup_size += u64::from(e.raw_len);
            s.stored_size += u64::from(e.length);
            packs.insert(e.pack());
        }
    }
    s.blobs = blobs.len() as u64;
    s.packs = packs.len() as u64;
    s.repository_size = repo.store().list(ObjectKind::Pack).map_err(Error::Storage)?.iter().map(|i| i.size).sum();
    if s.stored_size > 0 {
        s.compression_ratio = s.dedup_size as f64 / s.stored_size as f64;
        s.space_saving_ratio = s.restore_size as f64 / s.stored_size as f64;
    }
    Ok(s)
}

/// A path found by [`find`].
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// The snapshot's time.
    pub time: jiff::Timestamp,
    /// The path.
    #[serde(serialize_with = "serialize_path")]
    pub path: PathBuf,
    /// What it is.
    pub kind: NodeKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time (`None` when it is out of range).
    pub mtime: Option<jiff::Timestamp>,
}

/// Paths in `snapshots` whose name (patterns without `/`) or full path matches a glob.
///
/// # Errors
/// Bad patterns; unreadable trees.
pub fn find(repo: &Repository, snapshots: &[(SnapshotId, Snapshot)], patterns: &[String]) -> Result<Vec<Found>> {
    let patterns = PathPatterns::new(patterns)?;
    let index = repo.load_index()?;
    let walker = TreeWalker::new(repo, &index);
    let mut out = Vec::new();
    for (id, snap) in snapshots {
        walker.for_each(&snap.tree, Path::new("/"), &mut |path, n| {
            if patterns.matches(path) {
                out.push(Found {
                    snapshot: *id,
                    time: snap.time,
                    path: path.to_path_buf(),
                    kind: n.kind,
                    size: n.size,
                    mtime: jiff::Timestamp::new(n.mtime.secs, i32::try_from(n.mtime.nanos).unwrap_or(0)).ok(),
                });
            }
            Ok(())
        })?;
    }
    Ok(out)
}
