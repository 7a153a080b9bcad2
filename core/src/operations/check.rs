//! Verification of a repository (issue "Prove the backups").
//!
//! Structure (always): every index object opens; every indexed pack exists with exactly the size
//! its entries imply and a header that agrees with the index; every snapshot opens; every tree
//! it reaches is readable; every blob it references is indexed.
//!
//! Data (`read_data`): selected packs are downloaded whole, checked against their name (BLAKE3 of
//! the bytes), and every blob in them is authenticated, decompressed and re-hashed.
//!
//! Every problem names the object, and — because an operator needs to know what a damaged pack
//! costs — the snapshots and paths whose content depends on it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use rand::seq::SliceRandom;
use serde::Serialize;

use crate::format::blob;
use crate::format::index::IndexedPack;
use crate::format::pack::ENTRY_LEN;
use crate::format::tree::{NodeKind, Tree};
use crate::foundation::crypto::SEAL_OVERHEAD;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, PackId, SnapshotId};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind};
use crate::repository::trees::{TreeVisitor, TreeWalker};

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// None: structure only.
    None,
    /// All packs.
    All,
    /// Slice `n` (1-based) of `m`: packs are assigned to slices by their id, so `m` runs cover
    /// every pack exactly once.
    Subset {
        /// This slice, 1..=m.
        n: u32,
        /// Number of slices.
        m: u32,
    },
    /// A random sample of this percentage of packs.
    Percent(f64),
}

impl std::str::FromStr for ReadData {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| format!("`{s}` is not a percentage"))?;
            if !(0.0..=100.0).contains(&v) || v == 0.0 {
                return Err(format!("`{s}`: the percentage must be in (0, 100]"));
            }
            return Ok(ReadData::Percent(v));
        }
        let (n, m) = s.split_once('/').ok_or_else(|| format!("`{s}`: expected N/M or P%"))?;
        let n: u32 = n.trim().parse().map_err(|_| format!("`{s}`: N is not a number"))?;
        let m: u32 = m.trim().parse().map_err(|_| format!("`{s}`: M is not a number"))?;
        if m == 0 || n == 0 || n > m {
            return Err(format!("`{s}`: need 1 ≤ N ≤ M"));
        }
        Ok(ReadData::Subset { n, m })
    }
}

/// Which slice (0-based) of `m` a pack falls in.
#[must_use]
pub fn pack_slice(id: &PackId, m: u32) -> u32 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0.0[..8]);
    ((u128::from(u64::from_be_bytes(b)) * u128::from(m)) >> 64) as u32
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The damaged or missing object (`pack <id>`, `index <id>`, `snapshot <id>`, `tree <id>`).
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// A file (or tree) that damage affects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: String,
    /// The path in it.
    pub path: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Index objects read.
    pub index_objects: u64,
    /// Packs the index names.
    pub packs: u64,
    /// Packs whose data was read.
    pub packs_read: u64,
    /// Bytes of packs read.
    pub bytes_read: u64,
    /// Blobs the index holds.
    pub blobs: u64,
    /// Packs in storage that no index names (left by an interrupted backup; prune removes them).
    pub unindexed_packs: Vec<String>,
    /// Problems: any makes the check fail.
    pub problems: Vec<Problem>,
    /// Files and trees whose data is damaged or missing, per snapshot.
    pub affected: Vec<Affected>,
    /// Blobs found damaged or missing (for `repair snapshots`).
    #[serde(skip)]
    pub damaged_blobs: Vec<BlobId>,
}

impl CheckReport {
    /// Whether the repository passed.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn expected_pack_size(p: &IndexedPack) -> u64 {
    let body = p.entries.iter().map(|e| u64::from(e.offset) + u64::from(e.length)).max().unwrap_or(16);
    body + (SEAL_OVERHEAD + 5 + ENTRY_LEN * p.entries.len()) as u64 + 4
}

/// Checks `repo`.
///
/// # Errors
/// Only when the store cannot be listed at all; everything else is a [`Problem`].
pub fn run(repo: &Repository, read_data: ReadData) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let store = repo.store();
    // 1. Index objects.
    let mut index = Index::default();
    let mut packs: BTreeMap<PackId, IndexedPack> = BTreeMap::new();
    for info in store.list(ObjectKind::Index).map_err(Error::Storage)? {
        report.index_objects += 1;
        let id = crate::foundation::id::IndexId(info.key.id);
        let file =
            repo.get_verified(info.key).and_then(|d| crate::format::index::IndexFile::open(repo.master(), &id, &d));
        match file {
            Ok(f) => {
                index.add_file(&f);
                // Several index objects may name one pack, each with all or some of its
                // entries: check against their union.
                for p in f.packs {
                    let known =
                        packs.entry(p.id).or_insert_with(|| IndexedPack { id: p.id, salt: p.salt, entries: vec![] });
                    for e in p.entries {
                        if !known.entries.iter().any(|k| k.offset == e.offset) {
                            known.entries.push(e);
                        }
                    }
                }
            }
            Err(e) => report.problems.push(Problem { object: format!("index {id}"), message: e.to_string() }),
        }
    }
    index.finalize();
    report.packs = packs.len() as u64;
    report.blobs = index.len() as u64;

    // 2. Packs: existence, size, header agreement.
    let stored: HashMap<PackId, u64> =
        store.list(ObjectKind::Pack).map_err(Error::Storage)?.into_iter().map(|i| (PackId(i.key.id), i.size)).collect();
    let mut bad_blobs: HashMap<BlobId, String> = HashMap::new();
    let mark_pack_bad = |p: &IndexedPack,
                         object: String,
                         message: String,
                         report: &mut CheckReport,
                         bad: &mut HashMap<BlobId, String>| {
        for e in &p.entries {
            bad.entry(e.id).or_insert_with(|| object.clone());
        }
        report.problems.push(Problem { object, message });
    };
    for (id, p) in &packs {
        let object = format!("pack {id}");
        let expected = expected_pack_size(p);
        match stored.get(id) {
            None => mark_pack_bad(p, object, "missing from storage".into(), &mut report, &mut bad_blobs),
            Some(&size) if size != expected => {
                mark_pack_bad(
                    p,
                    object,
                    format!("size {size} bytes, the index implies {expected}"),
                    &mut report,
                    &mut bad_blobs,
                );
            }
            Some(&size) => match repo.read_pack_header_tail(id, size, p.entries.len()) {
                Ok((salt, entries)) => {
                    let mut a = entries.clone();
                    let mut b = p.entries.clone();
                    a.sort_by_key(|e| e.offset);
                    b.sort_by_key(|e| e.offset);
                    if a != b || salt != p.salt {
                        mark_pack_bad(
                            p,
                            object,
                            "header does not agree with the index".into(),
                            &mut report,
                            &mut bad_blobs,
                        );
                    }
                }
                Err(e) => mark_pack_bad(p, object, format!("header: {e}"), &mut report, &mut bad_blobs),
            },
        }
    }
    report.unindexed_packs = stored.keys().filter(|id| !packs.contains_key(id)).map(ToString::to_string).collect();
    report.unindexed_packs.sort();

    // 3. Data.
    let structurally_bad: HashSet<String> = report.problems.iter().map(|p| p.object.clone()).collect();
    let mut selected: Vec<&IndexedPack> = packs
        .values()
        .filter(|p| !structurally_bad.contains(&format!("pack {}", p.id)))
        .filter(|p| match read_data {
            ReadData::None => false,
            ReadData::All | ReadData::Percent(_) => true,
            ReadData::Subset { n, m } => pack_slice(&p.id, m) == n - 1,
        })
        .collect();
    if let ReadData::Percent(pct) = read_data {
        selected.shuffle(&mut rand::thread_rng());
        let keep = ((selected.len() as f64 * pct / 100.0).ceil() as usize).min(selected.len());
        selected.truncate(keep);
    }
    for p in selected {
        report.packs_read += 1;
        let object = format!("pack {}", p.id);
        let key = ObjectKey::new(ObjectKind::Pack, p.id.0);
        let data = match repo.store().get(&key) {
            Ok(d) => d,
            Err(e) => {
                mark_pack_bad(p, object, format!("{key}: {e}"), &mut report, &mut bad_blobs);
                continue;
            }
        };
        // A pack whose bytes do not match its name is damaged; which blobs it costs is found
        // below, blob by blob, so the report names exactly the files affected.
        if crate::foundation::id::Digest::of(&data) != p.id.0 {
            report.problems.push(Problem { object: object.clone(), message: "content does not match its name".into() });
        }
        report.bytes_read += data.len() as u64;
        let key = repo.master().subkey(&p.salt);
        let mut damaged = Vec::new();
        for e in &p.entries {
            let range = e.offset as usize..(e.offset + e.length) as usize;
            let ok = data.get(range).map(|s| blob::open(repo.master(), &key, e.kind, e.id, e.codec, e.raw_len, s));
            if !matches!(ok, Some(Ok(_))) {
                damaged.push(e.id);
            }
        }
        if !damaged.is_empty() {
            for id in &damaged {
                bad_blobs.entry(*id).or_insert_with(|| object.clone());
            }
            report.problems.push(Problem { object, message: format!("{} blobs fail authentication", damaged.len()) });
        }
    }

    // 4. Snapshots and trees.
    let snapshots = match store.list(ObjectKind::Snapshot) {
        Ok(s) => s,
        Err(e) => return Err(Error::Storage(e)),
    };
    let walker = TreeWalker::new(repo, &index);
    let mut trees = CheckTrees {
        index: &index,
        bad: &bad_blobs,
        seen_ok: HashSet::new(),
        affected: BTreeSet::new(),
        problems: Vec::new(),
        snapshot: SnapshotId::default(),
    };
    for info in snapshots {
        report.snapshots += 1;
        let id = SnapshotId(info.key.id);
        match repo.load_snapshot(id) {
            Ok(s) => {
                trees.snapshot = id;
                walker.walk(&s.tree, Path::new("/"), &mut trees)?;
            }
            Err(e) => report.problems.push(Problem { object: format!("snapshot {id}"), message: e.to_string() }),
        }
    }
    report.problems.extend(trees.problems);
    report.damaged_blobs = bad_blobs.keys().copied().collect();
    report.affected = trees.affected.into_iter().collect();
    Ok(report)
}

/// Checks the trees of the snapshots: each readable and indexed, each file's blobs indexed and
/// not in damaged packs. A subtree found intact is not walked again for another snapshot; a
/// damaged one is, so every snapshot it costs is named.
struct CheckTrees<'a> {
    index: &'a Index,
    bad: &'a HashMap<BlobId, String>,
    /// Trees already walked without damage below them.
    seen_ok: HashSet<BlobId>,
    affected: BTreeSet<Affected>,
    problems: Vec<Problem>,
    /// The snapshot being walked.
    snapshot: SnapshotId,
}

impl CheckTrees<'_> {
    fn damaged(&mut self, path: &Path) {
        self.affected.insert(Affected { snapshot: self.snapshot.to_string(), path: path.display().to_string() });
    }

    fn tree_problem(&mut self, id: &BlobId, path: &Path, message: String) -> bool {
        self.problems.push(Problem { object: format!("tree {id}"), message });
        self.damaged(path);
        true
    }
}

impl TreeVisitor for CheckTrees<'_> {
    /// Whether anything below is damaged.
    type Output = bool;

    fn before(&mut self, id: &BlobId, path: &Path) -> Result<Option<bool>> {
        if self.seen_ok.contains(id) {
            return Ok(Some(false));
        }
        if let Some(obj) = self.bad.get(id) {
            let message = format!("tree blob {id} is in damaged {obj}");
            return Ok(Some(self.tree_problem(id, path, message)));
        }
        if !self.index.contains(id) {
            return Ok(Some(self.tree_problem(id, path, format!("tree blob {id} is not in the index"))));
        }
        Ok(None)
    }

    fn after(&mut self, id: &BlobId, path: &Path, tree: Tree, below: Vec<Option<bool>>) -> Result<bool> {
        let mut damaged = below.into_iter().flatten().any(|d| d);
        for node in tree.nodes.iter().filter(|n| n.kind == NodeKind::File) {
            let p = path.join(node.os_name());
            let mut file_bad = false;
            for blob in &node.content {
                if self.bad.contains_key(blob) {
                    file_bad = true;
                } else if !self.index.contains(blob) {
                    file_bad = true;
                    self.problems.push(Problem {
                        object: format!("data blob {blob}"),
                        message: format!(
                            "referenced by {} in snapshot {} but not in the index",
                            p.display(),
                            self.snapshot.short()
                        ),
                    });
                }
            }
            if file_bad {
                damaged = true;
                self.damaged(&p);
            }
        }
        if !damaged {
            self.seen_ok.insert(*id);
        }
        Ok(damaged)
    }

    fn unreadable(&mut self, id: &BlobId, path: &Path, error: Error) -> Result<bool> {
        Ok(self.tree_problem(id, path, error.to_string()))
    }
}
