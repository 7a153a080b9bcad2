//! A read-only view of a repository as a directory tree, for `cairn mount` (the CLI puts it
//! behind FUSE) and anything else that browses snapshots by path:
//!
//! ```text
//! snapshots/<id>/…          each snapshot's tree (ids as `cairn snapshots` shows them)
//! snapshots/latest          → <id> of the newest snapshot
//! hosts/<host>/<id>         → ../../snapshots/<id>
//! tags/<tag>/<id>           → ../../snapshots/<id>
//! by-time/<time>            → ../snapshots/<id> (UTC, `2026-12-04T02:21:12Z`)
//! ```
//!
//! Entries are numbered (inodes) as they are first met and keep their number; names of one
//! inode within a snapshot (hard links) share one. Trees are read when a directory is first
//! listed or looked into; file content is read blob by blob, only the blobs a read covers,
//! through a small cache of decoded blobs, so memory is bounded by what is browsed (the
//! entries met) plus [`BLOB_CACHE`] blobs, never by the size of a file or repository.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use crate::format::blob::{self, BlobKind};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Time};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, SnapshotId};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind};

/// An entry's number; [`ROOT`] is the top directory.
pub type Ino = u64;

/// The top directory's number.
pub const ROOT: Ino = 1;

/// Decoded data blobs kept for reads that come back to them (a sequential reader asks for a
/// blob's bytes in many small reads).
pub const BLOB_CACHE: usize = 8;

/// Blobs of a file read at once from the one a read needs on (at most [`BLOB_CACHE`]).
pub const READ_AHEAD: usize = 4;

/// What an entry is.
#[derive(Debug, Clone)]
enum Place {
    /// A directory made up by the view (the root, `snapshots/`, a host, …).
    Virtual,
    /// A symbolic link made up by the view, with its target.
    Link(Vec<u8>),
    /// An entry of a snapshot's tree (a snapshot's own directory is its root tree, a made-up
    /// node carrying the snapshot's time).
    Node { snapshot: Ino, node: Arc<Node> },
}

#[derive(Debug)]
struct Entry {
    place: Place,
    /// Filled when first listed: names in order, with their numbers.
    children: Option<Vec<(Vec<u8>, Ino)>>,
    /// Files: where each content blob starts, filled at the first read.
    starts: Option<Arc<Vec<u64>>>,
}

/// What [`Browser::attr`] tells of an entry: a `stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Its number.
    pub ino: Ino,
    /// File, directory, symbolic link, …
    pub kind: NodeKind,
    /// `st_mode`'s permission bits (with setuid, setgid and sticky).
    pub perm: u32,
    /// Owner and group.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Bytes of content (a symbolic link: of its target).
    pub size: u64,
    /// Modification time.
    pub mtime: Time,
    /// Access time.
    pub atime: Time,
    /// Status-change time.
    pub ctime: Time,
    /// Link count.
    pub nlink: u32,
    /// Device number (devices).
    pub rdev: u64,
}

/// The view. Reads go to the repository as they come; nothing is written.
pub struct Browser {
    repo: Repository,
    index: Index,
    entries: Vec<Entry>,
    /// Hard links: (snapshot, link number) → the inode all its names share.
    links: HashMap<(Ino, u64), Ino>,
    blobs: VecDeque<Cached>,
    /// Buffers of blobs evicted from the cache, reused for the next ones: a sequential reader
    /// then allocates (and faults in) no new memory per blob.
    spare: Vec<Vec<u8>>,
    /// The owner of made-up entries (the user who mounted).
    uid: u32,
    gid: u32,
    /// The time of made-up entries: the newest snapshot's.
    time: Time,
}

fn time_of(t: jiff::Timestamp) -> Time {
    Time { secs: t.as_second(), nanos: u32::try_from(t.subsec_nanosecond()).unwrap_or(0) }
}

impl Browser {
    /// The view of `repo` as it is now: its snapshots and index are read once; `uid` and `gid`
    /// own the made-up directories.
    ///
    /// # Errors
    /// Store errors and damaged snapshots or index objects.
    pub fn new(repo: Repository, uid: u32, gid: u32) -> Result<Self> {
        let index = repo.load_index()?;
        let mut snapshots = repo.snapshots()?;
        snapshots.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        let time = snapshots.last().map_or(Time::default(), |(_, s)| time_of(s.time));
        let mut view = Browser {
            repo,
            index,
            entries: vec![],
            links: HashMap::new(),
            blobs: VecDeque::new(),
            spare: Vec::new(),
            uid,
            gid,
            time,
        };
        view.build(&snapshots);
        Ok(view)
    }

    fn add(&mut self, place: Place) -> Ino {
        self.entries.push(Entry { place, children: None, starts: None });
        self.entries.len() as Ino // numbers start at 1: ROOT
    }

    fn add_dir(&mut self, children: Vec<(Vec<u8>, Ino)>) -> Ino {
        let ino = self.add(Place::Virtual);
        self.entry_mut(ino).children = Some(children);
        ino
    }

    fn link(&mut self, target: String) -> Ino {
        self.add(Place::Link(target.into_bytes()))
    }

    /// The made-up directories and links over `snapshots` (oldest first).
    fn build(&mut self, snapshots: &[(SnapshotId, Snapshot)]) {
        let root = self.add(Place::Virtual);
        debug_assert_eq!(root, ROOT);
        // Short ids, longer where two snapshots share one.
        let mut names: Vec<String> = snapshots.iter().map(|(id, _)| id.short()).collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for n in &names {
            *seen.entry(n.clone()).or_default() += 1;
        }
        for (name, (id, _)) in names.iter_mut().zip(snapshots) {
            if seen[name.as_str()] > 1 {
                *name = id.to_string();
            }
        }
        let mut by_id = Vec::new();
        let mut hosts: std::collections::BTreeMap<String, Vec<(Vec<u8>, Ino)>> = Default::default();
        let mut tags: std::collections::BTreeMap<String, Vec<(Vec<u8>, Ino)>> = Default::default();
        let mut by_time: Vec<(Vec<u8>, Ino)> = Vec::new();
        let mut times_taken = std::collections::HashSet::new();
        for (name, (_, snap)) in names.iter().zip(snapshots) {
            let node = Node {
                name: name.clone().into_bytes(),
                kind: NodeKind::Dir,
                mode: 0o40555,
                uid: self.uid,
                gid: self.gid,
                mtime: time_of(snap.time),
                atime: time_of(snap.time),
                ctime: time_of(snap.time),
                inode: 0,
                dev: 0,
                nlink: 2,
                size: 0,
                rdev: 0,
                content: vec![],
                hash: None,
                subtree: Some(snap.tree),
                target: None,
                link: None,
                xattrs: vec![],
                flags: 0,
                subdirs: Vec::new(),
            };
            let ino = self.entries.len() as Ino + 1;
            self.add(Place::Node { snapshot: ino, node: Arc::new(node) });
            by_id.push((name.clone().into_bytes(), ino));
            let to_snapshot = format!("../../snapshots/{name}");
            let host_link = self.link(to_snapshot.clone());
            hosts.entry(snap.host.clone()).or_default().push((name.clone().into_bytes(), host_link));
            for tag in &snap.tags {
                let tag_link = self.link(to_snapshot.clone());
                tags.entry(tag.clone()).or_default().push((name.clone().into_bytes(), tag_link));
            }
            let mut when = snap.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            if !times_taken.insert(when.clone()) {
                when = format!("{when}-{name}");
            }
            let time_link = self.link(format!("../snapshots/{name}"));
            by_time.push((when.into_bytes(), time_link));
        }
        if let Some(newest) = names.last() {
            let latest = self.link(newest.clone());
            by_id.push((b"latest".to_vec(), latest));
        }
        by_id.sort();
        by_time.sort();
        let snapshots_dir = self.add_dir(by_id);
        let mut groups = |groups: std::collections::BTreeMap<String, Vec<(Vec<u8>, Ino)>>| {
            let children: Vec<(Vec<u8>, Ino)> = groups
                .into_iter()
                .map(|(name, mut links)| {
                    links.sort();
                    (name.into_bytes(), self.add_dir(links))
                })
                .collect();
            self.add_dir(children)
        };
        let hosts_dir = groups(hosts);
        let tags_dir = groups(tags);
        let time_dir = self.add_dir(by_time);
        self.entry_mut(ROOT).children = Some(vec![
            (b"by-time".to_vec(), time_dir),
            (b"hosts".to_vec(), hosts_dir),
            (b"snapshots".to_vec(), snapshots_dir),
            (b"tags".to_vec(), tags_dir),
        ]);
    }

    fn entry(&self, ino: Ino) -> Result<&Entry> {
        usize::try_from(ino)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.entries.get(i))
            .ok_or_else(|| Error::NotFound(format!("entry {ino}")))
    }

    fn entry_mut(&mut self, ino: Ino) -> &mut Entry {
        let i = usize::try_from(ino).unwrap_or(usize::MAX).saturating_sub(1);
        &mut self.entries[i]
    }

    /// The entry's `stat`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a number never given out.
    pub fn attr(&self, ino: Ino) -> Result<Attr> {
        let made_up = |kind: NodeKind, perm: u32, size: u64| Attr {
            ino,
            kind,
            perm,
            uid: self.uid,
            gid: self.gid,
            size,
            mtime: self.time,
            atime: self.time,
            ctime: self.time,
            nlink: if kind == NodeKind::Dir { 2 } else { 1 },
            rdev: 0,
        };
        Ok(match &self.entry(ino)?.place {
            Place::Virtual => made_up(NodeKind::Dir, 0o555, 0),
            Place::Link(target) => made_up(NodeKind::Symlink, 0o777, target.len() as u64),
            Place::Node { node, .. } => Attr {
                ino,
                kind: node.kind,
                perm: node.mode & 0o7777,
                uid: node.uid,
                gid: node.gid,
                size: match node.kind {
                    NodeKind::Symlink => node.target.as_ref().map_or(0, |t| t.len() as u64),
                    _ => node.size,
                },
                mtime: node.mtime,
                atime: node.atime,
                ctime: node.ctime,
                nlink: u32::try_from(node.nlink.max(1)).unwrap_or(u32::MAX),
                rdev: node.rdev,
            },
        })
    }

    /// A directory's entries, in name order, each with its number (read from the repository
    /// the first time).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for something that is not a directory; errors reading its tree.
    pub fn children(&mut self, ino: Ino) -> Result<Vec<(Vec<u8>, Ino)>> {
        let entry = self.entry(ino)?;
        if let Some(children) = &entry.children {
            return Ok(children.clone());
        }
        let (snapshot, subtree) = match &entry.place {
            Place::Node { snapshot, node } if node.kind == NodeKind::Dir => (*snapshot, node.subtree),
            _ => return Err(Error::InvalidArgument(format!("entry {ino} is not a directory"))),
        };
        let nodes = match subtree {
            Some(tree) => self.repo.load_tree(&self.index, &tree)?.nodes,
            None => Vec::new(),
        };
        let mut children = Vec::with_capacity(nodes.len());
        for node in nodes {
            let name = node.name.clone();
            let shared = node.link.map(|link| (snapshot, link));
            let child = match shared.and_then(|key| self.links.get(&key)) {
                Some(&ino) => ino,
                None => {
                    let child = self.add(Place::Node { snapshot, node: Arc::new(node) });
                    if let Some(key) = shared {
                        self.links.insert(key, child);
                    }
                    child
                }
            };
            children.push((name, child));
        }
        self.entry_mut(ino).children = Some(children.clone());
        Ok(children)
    }

    /// The entry named `name` in directory `parent`.
    ///
    /// # Errors
    /// As [`Browser::children`].
    pub fn lookup(&mut self, parent: Ino, name: &[u8]) -> Result<Option<Ino>> {
        let children = self.children(parent)?;
        Ok(children.binary_search_by(|(n, _)| n.as_slice().cmp(name)).ok().map(|i| children[i].1))
    }

    /// A symbolic link's target.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for something that is not a symbolic link.
    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        match &self.entry(ino)?.place {
            Place::Link(target) => Ok(target.clone()),
            Place::Node { node, .. } if node.kind == NodeKind::Symlink => Ok(node.target.clone().unwrap_or_default()),
            _ => Err(Error::InvalidArgument(format!("entry {ino} is not a symbolic link"))),
        }
    }

    /// An entry's extended attributes (names and values, as stored).
    ///
    /// # Errors
    /// [`Error::NotFound`] for a number never given out.
    pub fn xattrs(&self, ino: Ino) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(match &self.entry(ino)?.place {
            Place::Node { node, .. } => node.xattrs.iter().map(|x| (x.name.clone(), x.value.clone())).collect(),
            _ => Vec::new(),
        })
    }

    /// Up to `len` bytes of a file from `offset` (fewer only at its end), into `out` (cleared
    /// first; a caller reading again and again passes the same buffer).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for something that is not a file; errors reading its blobs.
    pub fn read(&mut self, ino: Ino, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let (node, starts) = self.file(ino)?;
        let end = offset.saturating_add(len as u64).min(node.size);
        let mut at = offset;
        while at < end {
            // The blob holding byte `at`: the last one starting at or before it.
            let i = starts.partition_point(|&s| s <= at).saturating_sub(1);
            if i >= node.content.len() {
                break;
            }
            let (holder, range) = self.blob(&node.content[i..])?;
            let blob = &holder[range];
            let from = usize::try_from(at - starts[i]).unwrap_or(usize::MAX);
            let take = usize::try_from(end - at).unwrap_or(usize::MAX).min(blob.len().saturating_sub(from));
            if take == 0 {
                break; // a content list shorter than the size: damaged, read as ending here
            }
            out.extend_from_slice(&blob[from..from + take]);
            at += take as u64;
        }
        Ok(())
    }

    /// A file's node and where each of its blobs starts.
    fn file(&mut self, ino: Ino) -> Result<(Arc<Node>, Arc<Vec<u64>>)> {
        let entry = self.entry(ino)?;
        let node = match &entry.place {
            Place::Node { node, .. } if node.kind == NodeKind::File => Arc::clone(node),
            _ => return Err(Error::InvalidArgument(format!("entry {ino} is not a file"))),
        };
        if let Some(starts) = &entry.starts {
            return Ok((node, Arc::clone(starts)));
        }
        let mut starts = Vec::with_capacity(node.content.len());
        let mut at = 0u64;
        for id in &node.content {
            starts.push(at);
            let e = self.index.get(id).ok_or_else(|| {
                Error::corrupt(format!("Data blob {id}"), "is in no index object (run `cairn check`)")
            })?;
            at += u64::from(e.raw_len);
        }
        let starts = Arc::new(starts);
        self.entry_mut(ino).starts = Some(Arc::clone(&starts));
        Ok((node, starts))
    }

    /// The plaintext of the first of `ids` (a file's blobs from the one a read needs on), as
    /// a buffer and the range of it that holds the plaintext, from the cache; on a miss it is
    /// read with the next [`READ_AHEAD`] - 1 side by side, so a sequential reader finds those
    /// in the cache and decoding runs on every core.
    fn blob(&mut self, ids: &[BlobId]) -> Result<(Arc<Vec<u8>>, Range<usize>)> {
        use rayon::prelude::*;
        let Some(id) = ids.first() else { return Err(Error::Internal("no blob to read".into())) };
        if let Some(c) = self.blobs.iter().find(|c| c.id == *id) {
            return Ok((Arc::clone(&c.holder), c.range.clone()));
        }
        let mut wanted: Vec<(BlobId, Vec<u8>, Vec<u8>)> = Vec::with_capacity(READ_AHEAD);
        for b in ids.iter().take(READ_AHEAD) {
            if !wanted.iter().any(|w| w.0 == *b) && (b == id || !self.blobs.iter().any(|c| c.id == *b)) {
                let (buf, scratch) = (self.spare.pop().unwrap_or_default(), self.spare.pop().unwrap_or_default());
                wanted.push((*b, buf, scratch));
            }
        }
        let (repo, index) = (&self.repo, &self.index);
        let read: Vec<(BlobId, Result<Decoded>)> =
            wanted.into_par_iter().map(|(b, buf, scratch)| (b, decode(repo, index, &b, buf, scratch))).collect();
        let mut first = None;
        for (b, decoded) in read {
            // Only the blob asked for must read; one read ahead that fails is read (and its
            // error reported) when it is asked for.
            let decoded = match decoded {
                Ok(d) => d,
                Err(e) if b == *id => return Err(e),
                Err(_) => continue,
            };
            self.spare.extend(decoded.spare);
            let holder = Arc::new(decoded.holder);
            if b == *id {
                first = Some((Arc::clone(&holder), decoded.range.clone()));
            }
            if self.blobs.len() == BLOB_CACHE
                && let Some(old) = self.blobs.pop_front()
                && let Ok(buf) = Arc::try_unwrap(old.holder)
            {
                self.spare.push(buf);
            }
            self.blobs.push_back(Cached { id: b, holder, range: decoded.range });
        }
        self.spare.truncate(2 * READ_AHEAD);
        first.ok_or_else(|| Error::Internal("the blob read was not kept".into()))
    }
}

/// A decoded blob in the cache: the buffer holding its plaintext, and where in it.
struct Cached {
    id: BlobId,
    holder: Arc<Vec<u8>>,
    range: Range<usize>,
}

/// A blob just decoded: the buffer its plaintext is in and where, and the buffer left over.
struct Decoded {
    holder: Vec<u8>,
    range: Range<usize>,
    spare: Option<Vec<u8>>,
}

/// Reads and opens data blob `id` into `buf` (its sealed bytes, decrypted in place) or
/// `scratch` (decompressed), reusing their memory. A blob that fails so is read again through
/// [`Repository::read_blob`], which falls back on parity.
fn decode(repo: &Repository, index: &Index, id: &BlobId, mut buf: Vec<u8>, mut scratch: Vec<u8>) -> Result<Decoded> {
    let entry = index.get(id).ok_or_else(|| Error::corrupt(format!("Data blob {id}"), "is in no index object"))?;
    let pack = index.pack(entry);
    let key = ObjectKey::new(ObjectKind::Pack, pack.id.0);
    let range = u64::from(entry.offset)..u64::from(entry.offset) + u64::from(entry.length);
    // Where the plaintext is: decompressed into `scratch` (its start), or decrypted in place
    // in `buf` (just after the nonce).
    let mut fast = None;
    if repo.store().get_range_into(&key, range, &mut buf).is_ok() {
        let base = buf.as_ptr() as usize;
        let subkey = pack.seal.key(repo.master()).map_err(|e| Error::crypto(format!("pack {}", pack.id), e))?;
        let (master, codec, len) = (repo.master(), entry.codec(), entry.raw_len);
        if let Ok(plain) = blob::open_in_place(master, &subkey, BlobKind::Data, *id, codec, len, &mut buf, &mut scratch)
        {
            let start = if codec.is_zstd() { 0 } else { (plain.as_ptr() as usize).saturating_sub(base) };
            fast = Some(start..start + plain.len());
        }
    }
    Ok(match fast {
        Some(range) if entry.codec().is_zstd() => Decoded { holder: scratch, range, spare: Some(buf) },
        Some(range) => Decoded { holder: buf, range, spare: Some(scratch) },
        None => {
            let plain = repo.read_blob(index, BlobKind::Data, id)?;
            Decoded { range: 0..plain.len(), holder: plain, spare: Some(buf) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::progress::NoProgress;
    use crate::operations::backup::{self, BackupOptions, BackupSource};

    fn view_of(src: &std::path::Path) -> Browser {
        let repo = crate::repository::testing::memory_repo("browse");
        backup::run(&repo, BackupSource::paths([src]), &BackupOptions::default(), &NoProgress).unwrap();
        Browser::new(repo, 0, 0).unwrap()
    }

    fn walk(view: &mut Browser, path: &str) -> Ino {
        let mut ino = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = view.lookup(ino, part.as_bytes()).unwrap().unwrap_or_else(|| panic!("{part} in {path}"));
        }
        ino
    }

    #[test]
    fn files_read_back_at_any_offset_and_hard_links_share_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(src.join("big"), &big).unwrap();
        std::fs::hard_link(src.join("big"), src.join("again")).unwrap();
        // Compressible: its blobs are decompressed, where the others are only decrypted.
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        std::fs::write(src.join("text"), &text).unwrap();
        std::os::unix::fs::symlink("big", src.join("link")).unwrap();
        let mut view = view_of(&src);
        let latest = walk(&mut view, "snapshots/latest");
        let id = view.readlink(latest).unwrap();
        let base = format!("snapshots/{}{}", String::from_utf8(id).unwrap(), src.display());
        let file = walk(&mut view, &format!("{base}/big"));
        assert_eq!(view.attr(file).unwrap().size, big.len() as u64);
        for (offset, len) in [(0u64, 4096usize), (1_048_570, 300_000), (2_999_990, 4096), (3_000_000, 10)] {
            let mut got = Vec::new();
            view.read(file, offset, len, &mut got).unwrap();
            let from = (offset as usize).min(big.len());
            assert_eq!(got, big[from..(from + len).min(big.len())], "at {offset}");
        }
        assert_eq!(walk(&mut view, &format!("{base}/again")), file, "hard links share a number");
        let text_file = walk(&mut view, &format!("{base}/text"));
        let mut got = Vec::new();
        view.read(text_file, 1_000_001, 70_000, &mut got).unwrap();
        assert_eq!(got, text[1_000_001..1_070_001]);
        let link = walk(&mut view, &format!("{base}/link"));
        assert_eq!(view.readlink(link).unwrap(), b"big");
        assert!(view.lookup(ROOT, b"nothing").unwrap().is_none());
        let dir = walk(&mut view, &base);
        assert!(view.read(dir, 0, 1, &mut Vec::new()).is_err(), "a directory is not read");
    }
}
