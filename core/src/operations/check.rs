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
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::seq::SliceRandom;
use serde::Serialize;

use crate::format::blob::{self, BlobKind};
use crate::format::index::{IndexFile, IndexedPack, union_packs};
use crate::format::tree::{NodeKind, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest, IndexId, PackId, SnapshotId};
use crate::foundation::private::Modes;
use crate::foundation::progress::Progress;
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::batch::{self, Flow};
use crate::repository::store::{ObjectKey, ObjectKind};
use crate::repository::trees::{TreeVisitor, TreeWalker};

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
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

/// What a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Checked {
    /// An index object.
    Index(IndexId),
    /// A pack.
    Pack(PackId),
    /// A snapshot.
    Snapshot(SnapshotId),
    /// A tree blob.
    Tree(BlobId),
    /// A data blob.
    DataBlob(BlobId),
    /// A tenant's key object (FORMAT.md §14d), by its id.
    TenantKey(crate::foundation::id::Digest),
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Checked::Index(id) => write!(f, "index {id}"),
            Checked::Pack(id) => write!(f, "pack {id}"),
            Checked::Snapshot(id) => write!(f, "snapshot {id}"),
            Checked::Tree(id) => write!(f, "tree {id}"),
            Checked::DataBlob(id) => write!(f, "data blob {id}"),
            Checked::TenantKey(id) => write!(f, "tenant key {id}"),
        }
    }
}

/// As the text `Display` gives (`pack <id>`), the shape `check --json` has always printed.
impl Serialize for Checked {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// The damaged or missing object.
    pub object: Checked,
    /// What is wrong with it.
    pub message: String,
}

/// A file (or tree) that damage affects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Affected {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// The path in it.
    #[serde(serialize_with = "crate::foundation::path::serialize_path")]
    pub path: PathBuf,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
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
    /// Data packs in an archive storage class, not warm: their headers were not read (size
    /// and presence were still checked).
    pub packs_archived: u64,
    /// Packs in storage that no index names: left by a backup that stopped before indexing
    /// them, or named by an index object that is lost (`repair index` indexes them again).
    pub unindexed_packs: Vec<PackId>,
    /// Problems: any makes the check fail.
    pub problems: Vec<Problem>,
    /// Files and trees whose data is damaged or missing, per snapshot.
    pub affected: Vec<Affected>,
    /// Blobs found damaged or missing (for `repair snapshots`).
    #[serde(skip)]
    pub damaged_blobs: Vec<BlobId>,
    /// Files and directories of a local repository that users other than its owner (and, when
    /// the repository is group-readable, its group) can read: a warning, not a problem. A key
    /// file others can read can be copied and its password guessed offline.
    #[serde(serialize_with = "serialize_paths")]
    pub exposed: Vec<PathBuf>,
}

fn serialize_paths<S: serde::Serializer>(paths: &[PathBuf], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| p.to_string_lossy()))
}

/// The files and directories below `root` whose modes let more users read them than the
/// root's own mode does (owner, and the group when the root lets its group in).
fn exposed(root: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(root) else { return Vec::new() };
    let root_mode = meta.permissions().mode();
    let modes = Modes::following(root_mode);
    let mut out = Vec::new();
    if root_mode & 0o007 != 0 {
        out.push(root.to_path_buf());
    }
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let is_dir = meta.is_dir();
            if modes.exposes(meta.permissions().mode(), is_dir) {
                out.push(entry.path());
            }
            if is_dir {
                dirs.push(entry.path());
            }
        }
    }
    out.sort();
    out
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
    body + crate::format::pack::tail_len(p.entries.len()) + p.seal.tail_extra()
}

/// What a check found wrong with an object, in words that do not repeat the object's name; or,
/// when the store could not be read at all, the error that ends the check (it found nothing
/// about the repository then).
fn finding(e: Error) -> Result<String> {
    if e.is_storage_trouble() {
        return Err(e);
    }
    Ok(match e {
        Error::Store { cause, .. } => cause.to_string(),
        Error::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// Packs downloaded side by side by `--read-data`: each is a whole pack in memory (16 MiB by
/// default), so fewer than the store's requests in flight.
const READ_DATA_IN_FLIGHT: usize = 4;

/// What reading one pack's data found.
struct PackData {
    /// Bytes read.
    bytes: u64,
    /// Whether the bytes hash to the pack's name.
    named_right: bool,
    /// For a pack whose bytes do not match its name: whether its parity rebuilt it (then its
    /// blobs were opened from the rebuilt bytes), or why not.
    parity: Option<std::result::Result<(), String>>,
    /// Blobs that failed authentication, decompression or their id.
    damaged: Vec<BlobId>,
}

/// The words a check adds about a damaged pack its parity rebuilds.
const REBUILT_BY_PARITY: &str = "its parity rebuilds it, so no file is lost; `cairn repair packs` writes it back";

/// Downloads one pack and opens every blob in it (on the thread that downloaded it); a pack
/// whose bytes do not match its name is rebuilt from its parity first, when it has one.
fn read_pack(repo: &Repository, p: &IndexedPack, has_parity: bool) -> Result<PackData> {
    let key = ObjectKey::new(ObjectKind::Pack, p.id.0);
    let stored = repo.store().get(&key).map_err(Error::store(key))?;
    let named_right = Digest::of(&stored) == p.id.0;
    let (data, parity) = if named_right || !has_parity {
        (stored.clone(), None)
    } else {
        match repo.repair_from_parity(&p.id, &stored) {
            Ok(rebuilt) => (bytes::Bytes::from(rebuilt), Some(Ok(()))),
            Err(e) => (stored.clone(), Some(Err(finding(e)?))),
        }
    };
    let subkey = p.seal.key(repo.master()).map_err(|e| Error::crypto(format!("pack {}", p.id), e))?;
    let damaged = p
        .entries
        .iter()
        .filter(|e| {
            let range = e.offset as usize..(e.offset + e.length) as usize;
            let ok = data.get(range).map(|s| blob::open(repo.master(), &subkey, e.kind, e.id, e.codec, e.raw_len, s));
            !matches!(ok, Some(Ok(_)))
        })
        .map(|e| e.id)
        .collect();
    Ok(PackData { bytes: stored.len() as u64, named_right, parity, damaged })
}

/// Checks `repo`.
///
/// # Errors
/// When the store cannot be read (unreachable, refusing, failing after retries): the check
/// stops rather than take what it could not read for damage. Everything it finds wrong with
/// the repository's content is a [`Problem`] instead.
pub fn run(repo: &Repository, read_data: ReadData) -> Result<CheckReport> {
    run_with_progress(repo, read_data, &crate::foundation::progress::NoProgress)
}

/// As [`run`], reporting to `progress` the bytes of packs to read (its total) and each pack
/// read.
///
/// # Errors
/// As [`run`].
pub fn run_with_progress(repo: &Repository, read_data: ReadData, progress: &dyn Progress) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let store = repo.store();
    // 1. Index objects.
    let mut index = Index::default();
    let mut packs: BTreeMap<PackId, IndexedPack> = BTreeMap::new();
    for info in store.list(ObjectKind::Index).map_err(Error::Storage)? {
        report.index_objects += 1;
        let id = IndexId(info.key.id);
        let file = repo.get_verified(info.key).and_then(|d| IndexFile::open(repo.master(), &id, &d));
        match file {
            Ok(f) => {
                index.add_file(&f);
                // Checked against what all index objects say of a pack together.
                union_packs(&mut packs, &f.packs);
            }
            Err(e) => report.problems.push(Problem { object: Checked::Index(id), message: finding(e)? }),
        }
    }
    index.finalize();
    report.packs = packs.len() as u64;
    report.blobs = index.len() as u64;

    // 2. Packs: existence, size, header agreement.
    let stored: HashMap<PackId, u64> =
        store.list(ObjectKind::Pack).map_err(Error::Storage)?.into_iter().map(|i| (PackId(i.key.id), i.size)).collect();
    let mut bad_blobs: HashMap<BlobId, Checked> = HashMap::new();
    let lose_pack = |p: &IndexedPack,
                     object: Checked,
                     message: String,
                     report: &mut CheckReport,
                     bad: &mut HashMap<BlobId, Checked>| {
        for e in &p.entries {
            bad.entry(e.id).or_insert(object);
        }
        report.problems.push(Problem { object, message });
    };
    // Parity (FORMAT.md §10a): a data pack with a structural problem that its parity rebuilds
    // costs no file.
    let parities: HashSet<PackId> =
        store.list(ObjectKind::Parity).map_err(Error::Storage)?.into_iter().map(|i| PackId(i.key.id)).collect();
    let mark_pack_bad = |p: &IndexedPack,
                         object: Checked,
                         message: String,
                         report: &mut CheckReport,
                         bad: &mut HashMap<BlobId, Checked>|
     -> Result<()> {
        if parities.contains(&p.id) {
            match repo.rebuild_pack(&p.id) {
                Ok(_) => {
                    report.problems.push(Problem { object, message: format!("{message}; {REBUILT_BY_PARITY}") });
                    return Ok(());
                }
                Err(e) => {
                    let why = finding(e)?;
                    lose_pack(p, object, format!("{message}; {why}"), report, bad);
                    return Ok(());
                }
            }
        }
        lose_pack(p, object, message, report, bad);
        Ok(())
    };
    for (id, p) in &packs {
        let object = Checked::Pack(*id);
        let expected = expected_pack_size(p);
        if repo.config().data_parity > 0
            && p.entries.first().is_some_and(|e| e.kind == BlobKind::Data)
            && !parities.contains(id)
        {
            let message = "has no parity object (`cairn repair packs` writes it)".into();
            report.problems.push(Problem { object, message });
        }
        match stored.get(id) {
            None => mark_pack_bad(p, object, "missing from storage".into(), &mut report, &mut bad_blobs)?,
            Some(&size) if size != expected => {
                let message = format!("size {size} bytes, the index implies {expected}");
                mark_pack_bad(p, object, message, &mut report, &mut bad_blobs)?;
            }
            Some(&size) => match repo.read_pack_header_tail(id, size, p.entries.len(), p.seal.tail_extra() as usize) {
                Ok((seal, entries)) => {
                    let mut a = entries.clone();
                    let mut b = p.entries.clone();
                    a.sort_by_key(|e| e.offset);
                    b.sort_by_key(|e| e.offset);
                    if a != b || seal != p.seal {
                        let message = "header does not agree with the index".into();
                        mark_pack_bad(p, object, message, &mut report, &mut bad_blobs)?;
                    }
                }
                // Archived and not warm: not damage, and not worth a warm-up for a header.
                Err(e) if e.kind() == crate::foundation::error::ErrorKind::Archived => report.packs_archived += 1,
                Err(e) => {
                    let message = format!("header: {}", finding(e)?);
                    mark_pack_bad(p, object, message, &mut report, &mut bad_blobs)?;
                }
            },
        }
    }
    report.unindexed_packs = stored.keys().filter(|id| !packs.contains_key(id)).copied().collect();
    report.unindexed_packs.sort();

    // 3. Data, several packs side by side.
    let structurally_bad: HashSet<Checked> = report.problems.iter().map(|p| p.object).collect();
    let mut selected: Vec<&IndexedPack> = packs
        .values()
        .filter(|p| !structurally_bad.contains(&Checked::Pack(p.id)))
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
    if !selected.is_empty() {
        progress.total(selected.iter().map(|p| expected_pack_size(p)).sum(), selected.len() as u64);
    }
    let read: Mutex<Vec<(usize, Result<PackData>)>> = Mutex::new(Vec::with_capacity(selected.len()));
    let in_flight = batch::in_flight(store.as_ref(), 0).min(READ_DATA_IN_FLIGHT);
    batch::for_each(
        &selected,
        in_flight,
        |p| {
            let got = read_pack(repo, p, parities.contains(&p.id));
            progress.bytes_read(expected_pack_size(p));
            progress.file_done(std::path::Path::new(&format!("pack {}", p.id.short())), expected_pack_size(p));
            got
        },
        |n, got| {
            let trouble = got.as_ref().err().is_some_and(Error::is_storage_trouble);
            if let Ok(mut all) = read.lock() {
                all.push((n, got));
            }
            if trouble { Flow::Stop } else { Flow::Continue }
        },
    );
    let mut read = read.into_inner().map_err(|_| Error::Internal("check lock poisoned".into()))?;
    read.sort_by_key(|(n, _)| *n);
    for (n, got) in read {
        let p = selected[n];
        let object = Checked::Pack(p.id);
        report.packs_read += 1;
        let data = match got {
            Ok(d) => d,
            Err(e) => {
                let message = finding(e)?;
                mark_pack_bad(p, object, message, &mut report, &mut bad_blobs)?;
                continue;
            }
        };
        // A pack whose bytes do not match its name is damaged; which blobs it costs is found
        // blob by blob, so the report names exactly the files affected.
        if !data.named_right {
            let message = match &data.parity {
                None => "content does not match its name".to_string(),
                Some(Ok(())) => format!("content does not match its name; {REBUILT_BY_PARITY}"),
                Some(Err(why)) => format!("content does not match its name; {why}"),
            };
            report.problems.push(Problem { object, message });
        }
        report.bytes_read += data.bytes;
        if !data.damaged.is_empty() {
            for id in &data.damaged {
                bad_blobs.entry(*id).or_insert(object);
            }
            let message = format!("{} blobs fail authentication", data.damaged.len());
            report.problems.push(Problem { object, message });
        }
    }

    // Trees are stored twice (FORMAT.md §10): a damaged or missing copy costs nothing while
    // another copy lies in a pack with no problem. Such trees are not counted as lost.
    let bad_packs: HashSet<PackId> = report
        .problems
        .iter()
        .filter_map(|p| match p.object {
            Checked::Pack(id) => Some(id),
            _ => None,
        })
        .collect();
    let recovered: Vec<BlobId> = bad_blobs
        .keys()
        .filter(|id| {
            index
                .get(id)
                .into_iter()
                .chain(index.alternates(id))
                .any(|e| e.kind() == BlobKind::Tree && !bad_packs.contains(&index.pack(e).id))
        })
        .copied()
        .collect();
    if let Some(first) = recovered.first() {
        report.problems.push(Problem {
            object: Checked::Tree(*first),
            message: format!(
                "{} damaged or missing tree blobs (this one among them) have an intact copy in another pack: no file is lost",
                recovered.len()
            ),
        });
    }
    for id in &recovered {
        bad_blobs.remove(id);
    }

    // 4. Snapshots and trees.
    let walker = TreeWalker::new(repo, &index);
    let mut trees = CheckTrees {
        index: &index,
        bad: &bad_blobs,
        seen_ok: HashSet::new(),
        affected: BTreeSet::new(),
        problems: Vec::new(),
        snapshot: SnapshotId::default(),
    };
    let (snapshots, damaged) = repo.snapshots_checked()?;
    report.snapshots = (snapshots.len() + damaged.len()) as u64;
    for (id, e) in damaged {
        report.problems.push(Problem { object: Checked::Snapshot(id), message: finding(e)? });
    }
    // Version 2 snapshots hold their sealed bytes twice (FORMAT.md §13): one damaged copy
    // costs nothing.
    for (id, _) in repo.damaged_snapshot_copies()? {
        let message = "content does not match its name; its second copy is intact, so nothing is lost; \
                       `cairn repair snapshots --apply` writes it back"
            .into();
        report.problems.push(Problem { object: Checked::Snapshot(id), message });
    }
    for (id, s) in snapshots {
        trees.snapshot = id;
        walker.walk(&s.tree, Path::new("/"), &mut trees)?;
    }
    report.problems.extend(trees.problems);
    // 5. Tenants' keys (FORMAT.md §14d): one that does not open loses every backup of its
    // tenant; one with a damaged copy costs nothing yet.
    if repo.tenant_name().is_none() {
        for (key, message) in repo.check_tenant_keys()? {
            report.problems.push(Problem { object: Checked::TenantKey(key.id), message });
        }
    }
    report.exposed = store.local_root().map(exposed).unwrap_or_default();
    report.damaged_blobs = bad_blobs.keys().copied().collect();
    report.affected = trees.affected.into_iter().collect();
    Ok(report)
}

/// Checks the trees of the snapshots: each readable and indexed, each file's blobs indexed and
/// not in damaged packs. A subtree found intact is not walked again for another snapshot; a
/// damaged one is, so every snapshot it costs is named.
struct CheckTrees<'a> {
    index: &'a Index,
    bad: &'a HashMap<BlobId, Checked>,
    /// Trees already walked without damage below them.
    seen_ok: HashSet<BlobId>,
    affected: BTreeSet<Affected>,
    problems: Vec<Problem>,
    /// The snapshot being walked.
    snapshot: SnapshotId,
}

impl CheckTrees<'_> {
    fn damaged(&mut self, path: &Path) {
        self.affected.insert(Affected { snapshot: self.snapshot, path: path.to_path_buf() });
    }

    fn tree_problem(&mut self, id: &BlobId, path: &Path, message: String) -> bool {
        self.problems.push(Problem { object: Checked::Tree(*id), message });
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
            let message = format!("is in damaged {obj}");
            return Ok(Some(self.tree_problem(id, path, message)));
        }
        if !self.index.contains(id) {
            return Ok(Some(self.tree_problem(id, path, "is not in the index".into())));
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
                        object: Checked::DataBlob(*blob),
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
        let message = finding(error)?;
        Ok(self.tree_problem(id, path, message))
    }
}
