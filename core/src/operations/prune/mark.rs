//! Marking: the snapshots prune keeps, the index objects and garbage lists it reads blobs
//! through ([`Catalog`]), the walk that finds every blob they use ([`mark`]), and the garbage
//! lists themselves, read and written.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use bytes::Bytes;

use crate::format::garbage::{GarbageList, GarbagePack};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::PackEntry;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest, IndexId};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind};
use crate::repository::trees::{TreeVisitor, TreeWalker};

/// How many times marking reads the index objects written since it last read them before it
/// takes a blob no index names for damage rather than a concurrent backup's.
const REFRESHES: u32 = 5;

/// The snapshots to keep blobs for, listed and read before any index object is: FORMAT.md
/// §Write ordering commits a snapshot's index objects before the snapshot, so every snapshot
/// read here is covered by the index objects listed after it. A snapshot forgotten by a
/// concurrent `forget` between the listing and the read is simply gone.
///
/// # Errors
/// A damaged snapshot: prune refuses to run, since it could not know what the snapshot needs.
pub(super) fn live_snapshot_trees(repo: &Repository) -> Result<Vec<BlobId>> {
    let (ok, damaged) = repo.snapshots_checked()?;
    if let Some((_, e)) = damaged.into_iter().find(|(_, e)| !e.is_missing_object()) {
        return Err(e);
    }
    Ok(ok.into_iter().map(|(_, s)| s.tree).collect())
}

/// The index objects and garbage lists prune reads blobs through, brought up to date when a
/// snapshot committed while prune runs needs what they did not hold yet.
pub(super) struct Catalog {
    pub(super) files: BTreeMap<IndexId, IndexFile>,
    pub(super) lists: BTreeMap<ObjectKey, (jiff::Timestamp, GarbageList)>,
}

impl Catalog {
    pub(super) fn read(repo: &Repository) -> Result<Self> {
        let files = repo.index_files()?.into_iter().collect();
        let mut catalog = Catalog { files, lists: BTreeMap::new() };
        catalog.read_lists(repo)?;
        Ok(catalog)
    }

    /// Reads the garbage lists not read yet.
    fn read_lists(&mut self, repo: &Repository) -> Result<()> {
        for info in repo.store().list(ObjectKind::Garbage).map_err(Error::Storage)? {
            // A list swept by a concurrent prune since the listing is simply gone.
            if !self.lists.contains_key(&info.key)
                && let Some(list) = read_garbage_if_present(repo, &info.key)?
            {
                self.lists.insert(info.key, (info.last_modified, list));
            }
        }
        Ok(())
    }

    /// Brings the catalog up to the store's present: reads the index objects and garbage lists
    /// written since the last read and forgets those deleted since (a concurrent prune that
    /// supersedes index objects writes their replacement first, and a list it sweeps held only
    /// packs it deleted).
    fn refresh(&mut self, repo: &Repository) -> Result<()> {
        let infos = repo.store().list(ObjectKind::Index).map_err(Error::Storage)?;
        let present: HashSet<IndexId> = infos.iter().map(|i| IndexId(i.key.id)).collect();
        self.files.retain(|id, _| present.contains(id));
        for info in infos {
            let id = IndexId(info.key.id);
            if self.files.contains_key(&id) {
                continue;
            }
            match repo.get_verified(info.key) {
                Ok(data) => {
                    self.files.insert(id, IndexFile::open(repo.master(), &id, &data)?);
                }
                // Superseded and deleted by a concurrent prune since the listing.
                Err(e) if e.is_missing_object() => {}
                Err(e) => return Err(e),
            }
        }
        let lists: HashSet<ObjectKey> =
            repo.store().list(ObjectKind::Garbage).map_err(Error::Storage)?.into_iter().map(|i| i.key).collect();
        self.lists.retain(|key, _| lists.contains(key));
        self.read_lists(repo)
    }

    /// The index of every index object read.
    pub(super) fn index(&self) -> Index {
        let mut index = Index::default();
        for f in self.files.values() {
            index.add_file(f);
        }
        index.finalize();
        index
    }

    /// The packs on the garbage lists read (out of the index, stored until swept).
    pub(super) fn listed_packs(&self) -> impl Iterator<Item = IndexedPack> + '_ {
        self.lists.values().flat_map(|(_, l)| l.packs.iter().filter_map(GarbagePack::to_indexed))
    }

    /// `index` plus the blobs only garbage-listed packs hold.
    pub(super) fn lookup(&self, index: &Index) -> Index {
        with_listed(index, &self.listed_packs().collect::<Vec<_>>())
    }
}

/// Marks every blob below `roots` as used (trees already in `used` are not walked again),
/// reading trees through the index `catalog` holds. A blob no index object read so far names
/// belongs to a snapshot committed after they were read: marking reads the index objects
/// written since and goes on from the trees it could not read, never failing over a race.
///
/// # Errors
/// Unreadable trees; a blob still in no index after [`REFRESHES`] reads: the repository is
/// damaged, and prune refuses to guess what is needed.
pub(super) fn mark(
    repo: &Repository,
    catalog: &mut Catalog,
    roots: Vec<BlobId>,
    used: &mut HashSet<BlobId>,
) -> Result<()> {
    /// Marks what a walk reaches; a tree marked before is not read again, a tree or data blob
    /// the index lacks is put aside.
    struct Mark<'u> {
        used: &'u mut HashSet<BlobId>,
        index: &'u Index,
        trees_missing: Vec<BlobId>,
        data_missing: Vec<BlobId>,
    }
    impl TreeVisitor for Mark<'_> {
        type Output = ();
        fn before(&mut self, id: &BlobId, _: &Path) -> Result<Option<()>> {
            if self.used.contains(id) {
                return Ok(Some(()));
            }
            if !self.index.contains(id) {
                self.trees_missing.push(*id);
                return Ok(Some(()));
            }
            self.used.insert(*id);
            Ok(None)
        }
        fn entry(&mut self, _: &Path, node: &Node) -> Result<bool> {
            if node.kind == NodeKind::File {
                for id in &node.content {
                    if self.used.insert(*id) && !self.index.contains(id) {
                        self.data_missing.push(*id);
                    }
                }
            }
            Ok(true)
        }
        fn after(&mut self, _: &BlobId, _: &Path, _: Tree, _: Vec<Option<()>>) -> Result<()> {
            Ok(())
        }
        fn unreadable(&mut self, id: &BlobId, _: &Path, error: Error) -> Result<()> {
            // In a pack a concurrent prune has swept since the index was read: its blobs are
            // in that prune's new packs, or nothing needs them any more.
            if !error.is_missing_object() {
                return Err(error);
            }
            self.used.remove(id);
            self.trees_missing.push(*id);
            Ok(())
        }
    }
    let mut trees = roots;
    let mut data: Vec<BlobId> = Vec::new();
    for refreshed in 0..=REFRESHES {
        if refreshed > 0 {
            catalog.refresh(repo)?;
        }
        let index = catalog.index();
        let lookup = catalog.lookup(&index);
        drop(index);
        data.retain(|id| !lookup.contains(id));
        let mut visitor = Mark { used, index: &lookup, trees_missing: Vec::new(), data_missing: Vec::new() };
        let walker = TreeWalker::new(repo, &lookup);
        for root in &trees {
            walker.walk(root, Path::new("/"), &mut visitor)?;
        }
        trees = visitor.trees_missing;
        data.extend(visitor.data_missing);
        if trees.is_empty() && data.is_empty() {
            return Ok(());
        }
    }
    let id = trees.first().or(data.first()).copied().unwrap_or_default();
    Err(Error::corrupt(
        format!("blob {id}"),
        "is used by a snapshot but in no index; run `cairn check` and `cairn repair index` before pruning",
    ))
}

/// `index` plus the blobs only garbage-listed packs hold: a blob the index has is always read
/// from the indexed pack (a listed pack may already be swept).
fn with_listed(index: &Index, listed: &[IndexedPack]) -> Index {
    let mut lookup = index.clone();
    for p in listed {
        let only_here: Vec<PackEntry> = p.entries.iter().filter(|e| !index.contains(&e.id)).copied().collect();
        lookup.add_pack(p.id, p.seal, &only_here);
    }
    lookup.finalize();
    lookup
}

/// Stores a garbage list; its key.
pub(super) fn write_garbage(repo: &Repository, list: &GarbageList) -> Result<ObjectKey> {
    let sealed = list.seal(repo.master());
    let key = ObjectKey::new(ObjectKind::Garbage, Digest::of(&sealed));
    repo.store().put(&key, Bytes::from(sealed)).map_err(Error::store(key))?;
    Ok(key)
}

/// Reads a garbage list; `None` when it is gone (swept by a concurrent prune since the listing).
pub(super) fn read_garbage_if_present(repo: &Repository, key: &ObjectKey) -> Result<Option<GarbageList>> {
    match repo.get_verified(*key) {
        Ok(data) => GarbageList::open(repo.master(), key, &data).map(Some),
        Err(e) if e.is_missing_object() => Ok(None),
        Err(e) => Err(e),
    }
}
