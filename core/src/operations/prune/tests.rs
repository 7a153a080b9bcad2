use super::*;
use crate::format::blob::BlobKind;
use crate::format::tree::{Node, NodeKind, Time, Tree};
use crate::repository::writer::WriteOptions;

fn repo(name: &str) -> Repository {
    crate::repository::testing::memory_repo(name)
}

fn node(name: &str, kind: NodeKind, content: Vec<BlobId>, subtree: Option<BlobId>) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: Time::default(),
        atime: Time::default(),
        ctime: Time::default(),
        inode: 0,
        dev: 0,
        nlink: 1,
        size: 0,
        rdev: 0,
        content,
        hash: None,
        subtree,
        target: None,
        link: None,
        xattrs: vec![],
        flags: 0,
        subdirs: Vec::new(),
    }
}

/// Writes `/dir/file` (one data blob) the way a backup does, index objects included;
/// returns the root tree, the directory's tree and the data blob.
fn write_tree(repo: &Repository, data: &[u8]) -> [BlobId; 3] {
    let index = repo.load_index().unwrap();
    let (ids, _, _) = repo
        .write_blobs(&index, WriteOptions::default(), |w| {
            let blob = w.add(BlobKind::Data, data)?;
            let dir =
                w.add(BlobKind::Tree, &Tree::new(vec![node("file", NodeKind::File, vec![blob], None)]).encode())?;
            let root =
                w.add(BlobKind::Tree, &Tree::new(vec![node("dir", NodeKind::Dir, vec![], Some(dir))]).encode())?;
            Ok([root, dir, blob])
        })
        .unwrap();
    ids
}

#[test]
fn marking_reads_the_index_objects_a_later_snapshot_was_committed_with() {
    let repo = repo("prune-mark-refresh");
    let early = write_tree(&repo, b"before the prune read the index");
    let mut catalog = Catalog::read(&repo).unwrap();
    // A backup commits after the prune read the index: its trees are in no object read.
    let late = write_tree(&repo, b"committed while the prune ran");
    assert!(!catalog.index().contains(&late[0]));
    let mut used = HashSet::new();
    mark(&repo, &mut catalog, vec![early[0], late[0]], &mut used).unwrap();
    let want: HashSet<BlobId> = early.iter().chain(&late).copied().collect();
    assert_eq!(used, want);
}

#[test]
fn a_blob_in_no_index_after_refreshing_is_damage() {
    let repo = repo("prune-mark-missing");
    let root = write_tree(&repo, b"stored")[0];
    let gone = repo.master().blob_id(b"a tree never stored");
    let mut catalog = Catalog::read(&repo).unwrap();
    let err = mark(&repo, &mut catalog, vec![root, gone], &mut HashSet::new()).unwrap_err();
    assert!(
        err.to_string().contains(&format!("blob {gone} is damaged: is used by a snapshot but in no index")),
        "{err}"
    );
}

/// A backup that commits after prune listed the snapshots (its packs look unused and are
/// dropped from the index) restores as soon as the prune is done: the sweep walks the
/// snapshots committed meanwhile and indexes what they need again, from this run's own
/// garbage list too.
#[test]
fn a_snapshot_committed_while_prune_runs_is_indexed_when_it_ends() {
    let repo = repo("prune-commit-during");
    let ids = write_tree(&repo, b"uploaded by a backup still running");
    let opts = PruneOptions { grace: Duration::ZERO, ..Default::default() };
    let plan = PrunePlan::compute(&repo, &opts).unwrap();
    assert_eq!(plan.drop.len(), 3, "no snapshot yet: the data pack and both tree packs look unused");
    // The backup commits now, bypassing its own checks (as if they ran before the prune
    // rewrote the index).
    let bytes = crate::repository::testing::snapshot_of(ids[0]).seal(repo.master());
    let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
    repo.store().put(&key, bytes.into()).unwrap();
    plan.apply(&repo, &opts).unwrap();
    let index = repo.load_index().unwrap();
    for id in ids {
        let entry = index.get(&id).expect("indexed again when the prune ended");
        repo.read_entry(&index, entry).expect("and still stored");
    }
}

/// Prune keeps both packs of a tree it needs (trees are stored twice), and drops a tree's
/// two packs together once no snapshot needs it.
#[test]
fn both_copies_of_a_used_tree_are_kept() {
    let repo = repo("prune-tree-copies");
    let ids = write_tree(&repo, b"kept");
    let bytes = crate::repository::testing::snapshot_of(ids[0]).seal(repo.master());
    let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
    repo.store().put(&key, bytes.into()).unwrap();
    let opts = PruneOptions { grace: Duration::ZERO, ..Default::default() };
    let stats = run(&repo, &opts).unwrap();
    assert_eq!((stats.packs_marked, stats.packs_kept), (0, 3), "{stats:?}");
    let index = repo.load_index().unwrap();
    for tree in &ids[..2] {
        assert_eq!(index.alternates(tree).len(), 1, "both copies are still indexed");
    }
    repo.store().delete(&key).unwrap();
    let stats = run(&repo, &opts).unwrap();
    assert_eq!(stats.packs_marked, 3, "{stats:?}");
}

/// A tree left with one copy (one of its packs lost, say after a damaged pack was removed)
/// is written once more by the next prune, read from the copy left; the index then names
/// two readable copies again, and a second prune has nothing more to copy.
#[test]
fn a_tree_left_with_one_copy_gets_its_second_back() {
    let repo = repo("prune-recopy");
    let ids = write_tree(&repo, b"two trees, one pack of them lost");
    let bytes = crate::repository::testing::snapshot_of(ids[0]).seal(repo.master());
    let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
    repo.store().put(&key, bytes.into()).unwrap();
    let index = repo.load_index().unwrap();
    let lost = index.pack(index.get(&ids[0]).unwrap()).id;
    repo.store().delete(&ObjectKey::new(ObjectKind::Pack, lost.0)).unwrap();
    let opts = PruneOptions { grace: Duration::ZERO, ..Default::default() };
    let stats = run(&repo, &opts).unwrap();
    assert_eq!(stats.trees_recopied, 2, "{stats:?}");
    let index = repo.load_index().unwrap();
    for tree in &ids[..2] {
        let copies: Vec<crate::repository::index::IndexEntry> =
            index.get(tree).into_iter().chain(index.alternates(tree)).copied().collect();
        assert_eq!(copies.len(), 2, "two copies again");
        assert!(copies.iter().all(|e| index.pack(e).id != lost));
        for e in copies {
            repo.read_entry(&index, &e).expect("each copy reads");
        }
    }
    assert_eq!(run(&repo, &opts).unwrap().trees_recopied, 0);
}

/// A used tree whose first copy is damaged, in a pack being repacked, is repacked from its
/// second copy: prune does not stall on damage the repository can absorb.
#[test]
fn a_repacked_tree_with_a_damaged_first_copy_is_read_from_its_second() {
    let repo = repo("prune-repack-damaged");
    let index = repo.load_index().unwrap();
    let (roots, _, _) = repo
        .write_blobs(&index, WriteOptions::default(), |w| {
            let mut roots = Vec::new();
            for name in ["kept", "forgotten"] {
                let blob = w.add(BlobKind::Data, name.as_bytes())?;
                let file = node("file", NodeKind::File, vec![blob], None);
                roots.push(w.add(BlobKind::Tree, &Tree::new(vec![file]).encode())?);
            }
            Ok(roots)
        })
        .unwrap();
    let bytes = crate::repository::testing::snapshot_of(roots[0]).seal(repo.master());
    let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
    repo.store().put(&key, bytes.into()).unwrap();
    let index = repo.load_index().unwrap();
    let first = *index.get(&roots[0]).unwrap();
    let pack = ObjectKey::new(ObjectKind::Pack, index.pack(&first).id.0);
    let mut damaged = repo.store().get(&pack).unwrap().to_vec();
    damaged[first.offset as usize + 1] ^= 1;
    repo.store().replace(&pack, damaged.into()).unwrap();
    assert!(repo.read_entry(&index, &first).is_err(), "the first copy is damaged");
    let opts = PruneOptions { grace: Duration::ZERO, max_unused: 0.0, ..Default::default() };
    let stats = run(&repo, &opts).unwrap();
    assert!(stats.packs_repacked >= 2, "both tree packs are half unused: {stats:?}");
    let index = repo.load_index().unwrap();
    let copies: Vec<crate::repository::index::IndexEntry> =
        index.get(&roots[0]).into_iter().chain(index.alternates(&roots[0])).copied().collect();
    assert_eq!(copies.len(), 2, "two copies again");
    for e in copies {
        repo.read_entry(&index, &e).expect("each copy reads");
    }
}
