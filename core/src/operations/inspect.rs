//! Looking inside snapshots: walking trees, finding paths, diffing snapshots, statistics, and
//! writing a directory as a tar stream. Every function here only reads the repository.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::format::blob::BlobKind;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, SnapshotId};
use crate::foundation::pattern::PathPatterns;
use crate::repository::Repository;
use crate::repository::index::Index;

/// Calls `visit` for every node below the tree `root`, depth first, with its path (which starts
/// with `base`). Directories are visited before their contents.
///
/// # Errors
/// Unreadable trees, and whatever `visit` returns.
pub fn walk(
    repo: &Repository,
    index: &Index,
    root: &BlobId,
    base: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    let tree = repo.load_tree(index, root)?;
    for node in &tree.nodes {
        let path = base.join(node.os_name());
        visit(&path, node)?;
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            walk(repo, index, &sub, &path, visit)?;
        }
    }
    Ok(())
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
#[derive(Debug, Clone, Serialize)]
pub struct DiffEntry {
    /// The path.
    pub path: String,
    /// What changed.
    pub change: Change,
}

/// Compares two trees; identical subtrees (same id) are skipped without reading them.
///
/// # Errors
/// Unreadable trees.
pub fn diff(repo: &Repository, index: &Index, a: &BlobId, b: &BlobId) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    diff_trees(repo, index, Some(*a), Some(*b), Path::new("/"), &mut out)?;
    Ok(out)
}

fn diff_trees(
    repo: &Repository,
    index: &Index,
    a: Option<BlobId>,
    b: Option<BlobId>,
    base: &Path,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<BlobId>| -> Result<Tree> {
        match id {
            Some(id) => repo.load_tree(index, &id),
            None => Ok(Tree::default()),
        }
    };
    let (ta, tb) = (load(a)?, load(b)?);
    let mut names: Vec<&[u8]> = ta.nodes.iter().chain(&tb.nodes).map(|n| n.name.as_slice()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (na, nb) = (ta.find(name), tb.find(name));
        let path = base.join(std::ffi::OsStr::new(&String::from_utf8_lossy(name).into_owned()));
        let shown = path.display().to_string();
        match (na, nb) {
            (Some(x), None) => {
                out.push(DiffEntry { path: shown, change: Change::Removed });
                if x.kind == NodeKind::Dir {
                    diff_trees(repo, index, x.subtree, None, &path, out)?;
                }
            }
            (None, Some(y)) => {
                out.push(DiffEntry { path: shown, change: Change::Added });
                if y.kind == NodeKind::Dir {
                    diff_trees(repo, index, None, y.subtree, &path, out)?;
                }
            }
            (Some(x), Some(y)) => {
                let content_differs =
                    x.kind != y.kind || x.content != y.content || x.target != y.target || x.rdev != y.rdev;
                let meta_differs = x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.mtime != y.mtime;
                if x.kind == NodeKind::Dir && y.kind == NodeKind::Dir {
                    if meta_differs {
                        out.push(DiffEntry { path: shown, change: Change::Metadata });
                    }
                    diff_trees(repo, index, x.subtree, y.subtree, &path, out)?;
                } else if content_differs {
                    out.push(DiffEntry { path: shown, change: Change::Modified });
                } else if meta_differs {
                    out.push(DiffEntry { path: shown, change: Change::Metadata });
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// Sizes of one snapshot, or of several together.
#[derive(Debug, Clone, Default, Serialize)]
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

/// Statistics over `snapshots` (each given by its root tree).
///
/// # Errors
/// Unreadable trees.
pub fn stats(repo: &Repository, index: &Index, roots: &[BlobId]) -> Result<Stats> {
    let mut s = Stats { snapshots: roots.len() as u64, ..Default::default() };
    let mut blobs: HashSet<BlobId> = HashSet::new();
    for root in roots {
        let mut links: HashSet<u64> = HashSet::new();
        blobs.insert(*root);
        walk(repo, index, root, Path::new("/"), &mut |_, n| {
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
    s.repository_size = repo
        .store()
        .list(crate::repository::store::ObjectKind::Pack)
        .map_err(Error::Storage)?
        .iter()
        .map(|i| i.size)
        .sum();
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
    pub snapshot: String,
    /// The snapshot's time.
    pub time: String,
    /// The path.
    pub path: String,
    /// file, dir, symlink, ...
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (RFC 3339).
    pub mtime: String,
}

/// Paths in `snapshots` whose name (patterns without `/`) or full path matches a glob.
///
/// # Errors
/// Bad patterns; unreadable trees.
pub fn find(
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, crate::format::snapshot::Snapshot)],
    patterns: &[String],
) -> Result<Vec<Found>> {
    let patterns = PathPatterns::new(patterns)?;
    let mut out = Vec::new();
    for (id, snap) in snapshots {
        walk(repo, index, &snap.tree, Path::new("/"), &mut |path, n| {
            if patterns.matches(path) {
                out.push(Found {
                    snapshot: id.to_string(),
                    time: snap.time.to_string(),
                    path: path.display().to_string(),
                    kind: format!("{:?}", n.kind).to_lowercase(),
                    size: n.size,
                    mtime: jiff::Timestamp::new(n.mtime.secs, i32::try_from(n.mtime.nanos).unwrap_or(0))
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                });
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Writes the directory `node` (at `path` in the snapshot) as a tar stream, with file contents
/// streamed blob by blob and checked against their stored hashes.
///
/// # Errors
/// Unreadable or damaged data (the stream is then incomplete and the error says why), and
/// write errors on `out`.
pub fn dump_tar(
    repo: &Repository,
    index: &Index,
    node: &Node,
    path: &Path,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let root_name = PathBuf::from(path.file_name().unwrap_or(std::ffi::OsStr::new(".")));
    let mut links: HashMap<u64, PathBuf> = HashMap::new();
    let mut entries: Vec<(PathBuf, Node)> = vec![(root_name.clone(), node.clone())];
    if let Some(sub) = node.subtree {
        walk(repo, index, &sub, &root_name, &mut |p, n| {
            entries.push((p.to_path_buf(), n.clone()));
            Ok(())
        })?;
    }
    for (p, n) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(n.mode & 0o7777);
        h.set_uid(u64::from(n.uid));
        h.set_gid(u64::from(n.gid));
        h.set_mtime(u64::try_from(n.mtime.secs).unwrap_or(0));
        match n.kind {
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                builder.append_data(&mut h, &p, std::io::empty()).map_err(io)?;
            }
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let target =
                    PathBuf::from(String::from_utf8_lossy(n.target.as_deref().unwrap_or_default()).into_owned());
                builder.append_link(&mut h, &p, &target).map_err(io)?;
            }
            NodeKind::File => {
                if let Some(first) = n.link.and_then(|l| links.get(&l)) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    builder.append_link(&mut h, &p, first).map_err(io)?;
                    continue;
                }
                if let Some(l) = n.link {
                    links.insert(l, p.clone());
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(n.size);
                let reader = BlobReader::new(repo, index, &n);
                builder.append_data(&mut h, &p, reader).map_err(|e| match e.into_inner() {
                    Some(inner) => match inner.downcast::<Error>() {
                        Ok(engine) => *engine,
                        Err(other) => Error::io("<stdout>", std::io::Error::other(other.to_string())),
                    },
                    None => Error::io("<stdout>", std::io::Error::other("write failed")),
                })?;
            }
            _ => {}
        }
    }
    builder.finish().map_err(io)
}

/// Reads a file's content blob by blob, checking the whole-file hash at the end.
struct BlobReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    content: Vec<BlobId>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    hasher: blake3::Hasher,
    expected: Option<crate::foundation::id::Digest>,
}

impl<'a> BlobReader<'a> {
    fn new(repo: &'a Repository, index: &'a Index, node: &Node) -> Self {
        BlobReader {
            repo,
            index,
            content: node.content.clone(),
            next: 0,
            buf: Vec::new(),
            pos: 0,
            hasher: blake3::Hasher::new(),
            expected: node.hash,
        }
    }
}

impl std::io::Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.content.len() {
                if let Some(h) = self.expected.take()
                    && crate::foundation::id::Digest(*self.hasher.finalize().as_bytes()) != h
                {
                    return Err(std::io::Error::other(Error::corrupt(
                        "file",
                        "content does not match its stored hash",
                    )));
                }
                return Ok(0);
            }
            let id = self.content[self.next];
            self.next += 1;
            self.buf = self.repo.read_blob(self.index, BlobKind::Data, &id).map_err(std::io::Error::other)?;
            self.hasher.update(&self.buf);
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
