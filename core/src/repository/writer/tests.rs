//! Tests of the writer: deduplication across threads, checkpoints, prune's packs, a failed run,
//! the check after a snapshot is written, and trees' second copies.

use std::sync::Arc;

use super::*;
use crate::format::keyfile::KdfParams;
use crate::repository::InitOptions;
use crate::repository::store::object_store::ObjectStoreBackend;

fn repo(name: &str, pack_size: u32) -> Repository {
    let store = Arc::new(ObjectStoreBackend::open(&format!("memory://{name}"), &Default::default()).unwrap());
    let opts = InitOptions {
        kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
        pack_size,
        ..Default::default()
    };
    Repository::init(store, b"password", &opts).unwrap()
}

/// `len` incompressible bytes, different for each `i`.
fn blob(i: u32, len: usize) -> Vec<u8> {
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Blobs added from several threads, with duplicates, come back from the index exactly once
/// each, in packs of data or of trees only; checkpoints and the last index object name
/// every pack.
#[test]
fn blobs_from_many_threads_are_stored_once_and_indexed() {
    let repo = repo("writer-threads", 1 << 16);
    let index = repo.load_index().unwrap();
    let ((), stats, committed) = repo
        .write_blobs(&index, WriteOptions::default(), |w| {
            std::thread::scope(|s| {
                for t in 0..4u32 {
                    s.spawn(move || {
                        for i in 0..300u32 {
                            let kind = if i % 10 == 0 { BlobKind::Tree } else { BlobKind::Data };
                            // Each thread adds its own blob, and one every thread adds: each is
                            // stored once.
                            w.add(kind, &blob(i * 4 + t, 3000)).unwrap();
                            w.add(kind, &blob(i * 4, 3000)).unwrap();
                        }
                    });
                }
            });
            Ok(())
        })
        .unwrap();
    let index = repo.load_index().unwrap();
    let distinct: HashSet<Vec<u8>> = (0..1200u32).map(|i| blob(i, 3000)).collect();
    assert_eq!(stats.blobs_new as usize, distinct.len());
    assert_eq!(index.len(), distinct.len());
    for plain in &distinct {
        let id = repo.master().blob_id(plain);
        let entry = index.get(&id).expect("stored and indexed");
        assert_eq!(repo.read_entry(&index, entry).unwrap(), *plain);
    }
    assert!(stats.packs_uploaded as usize > CHECKPOINT_PACKS, "enough packs for a checkpoint");
    assert!(committed.index_objects().len() >= 2, "a checkpoint and the last object");
    for p in index.packs() {
        let kinds: HashSet<BlobKind> = index.entries().filter(|e| index.pack(e).id == p.id).map(|e| e.kind()).collect();
        // A pack of trees' second copies has no entry in the table (one per blob).
        assert!(kinds.len() <= 1, "data and trees in separate packs");
    }
}

/// A blob the committed index has is not stored again; one only the writer has taken on
/// is stored once.
#[test]
fn known_blobs_are_not_stored_again() {
    let repo = repo("writer-known", 1 << 16);
    let index = repo.load_index().unwrap();
    let (id, _, _) = repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Data, b"old")).unwrap();
    let index = repo.load_index().unwrap();
    let (new, stats, _) = repo
        .write_blobs(&index, WriteOptions::default(), |w| {
            assert!(w.known(&id) && w.has(&id));
            assert!(!w.add_with_id(BlobKind::Data, id, b"old")?);
            let new = w.add(BlobKind::Data, b"new")?;
            assert!(!w.known(&new) && w.has(&new));
            assert!(!w.add_with_id(BlobKind::Data, new, b"new")?);
            Ok(new)
        })
        .unwrap();
    assert_eq!((stats.blobs_new, stats.packs_uploaded), (1, 1));
    assert!(repo.load_index().unwrap().contains(&new));
}

/// Prune's way: packs come back to the caller and no index object is written.
#[test]
fn packs_for_the_caller_are_not_indexed() {
    let repo = repo("writer-packs", 1 << 16);
    let index = repo.load_index().unwrap();
    let (id, stats, packs) =
        repo.write_packs(&index, WriteOptions::default(), |w| w.add(BlobKind::Data, b"moved")).unwrap();
    assert_eq!(stats.packs_uploaded, 1);
    assert_eq!(packs.len(), 1);
    assert_eq!(packs[0].entries[0].id, id);
    assert!(repo.index_ids().unwrap().is_empty());
}

/// Work that fails still leaves what was uploaded indexed, and no token.
#[test]
fn a_failed_run_indexes_what_it_uploaded() {
    let repo = repo("writer-failed", 1 << 16);
    let index = repo.load_index().unwrap();
    // Twenty packs' worth: with one uploader and queues of a few blobs, most of them are
    // uploaded before the work fails.
    let result = repo.write_blobs(&index, WriteOptions::default(), |w| -> Result<()> {
        for i in 0..320 {
            w.add(BlobKind::Data, &blob(i, 4000))?;
        }
        Err(Error::InvalidArgument("the source failed".into()))
    });
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
    let index = repo.load_index().unwrap();
    assert!(index.packs().len() >= 15, "uploaded packs are indexed for the next run: {}", index.packs().len());
    let stored = repo.store().list(ObjectKind::Pack).unwrap();
    assert_eq!(stored.len(), index.packs().len(), "every pack uploaded is indexed");
    for e in index.entries() {
        assert!(repo.read_entry(&index, e).is_ok());
    }
}

/// A prune that rewrote the index after the writer's own check (and listed the snapshots
/// before this one existed) took the writer's pack out of the index: writing the snapshot
/// names it in an index object again, so the snapshot restores at once.
#[test]
fn a_snapshot_written_after_a_prune_dropped_its_pack_indexes_it_again() {
    let repo = repo("writer-post-commit", 1 << 16);
    let index = repo.load_index().unwrap();
    let (id, _, committed) =
        repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Tree, b"a tree")).unwrap();
    for old in repo.index_ids().unwrap() {
        repo.store().delete(&ObjectKey::new(ObjectKind::Index, old.0)).unwrap();
    }
    assert!(!repo.load_index().unwrap().contains(&id));
    let snapshot = crate::repository::testing::snapshot_of(id);
    repo.save_snapshot(&snapshot, &committed).unwrap();
    let index = repo.load_index().unwrap();
    assert_eq!(repo.read_entry(&index, index.get(&id).expect("indexed again")).unwrap(), b"a tree");
}

/// Every tree is stored in two packs; a read falls back on the second copy when the first
/// pack is damaged, and `check --read-data` counts no file lost.
#[test]
fn trees_are_stored_twice_and_a_damaged_copy_costs_nothing() {
    let repo = repo("writer-tree-copies", 1 << 16);
    let index = repo.load_index().unwrap();
    let tree = crate::format::tree::Tree::new(vec![]).encode();
    let (id, stats, committed) =
        repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Tree, &tree)).unwrap();
    assert_eq!((stats.blobs_new, stats.packs_uploaded), (1, 2), "one tree, two packs");
    let snapshot = crate::repository::testing::snapshot_of(id);
    repo.save_snapshot(&snapshot, &committed).unwrap();
    let index = repo.load_index().unwrap();
    let first = *index.get(&id).unwrap();
    assert_eq!(index.alternates(&id).len(), 1);
    assert_ne!(index.pack(&index.alternates(&id)[0]).id, index.pack(&first).id);

    // Flip a byte of the first copy, in place.
    let key = ObjectKey::new(ObjectKind::Pack, index.pack(&first).id.0);
    let mut bytes = repo.store().get(&key).unwrap().to_vec();
    bytes[first.offset as usize + 20] ^= 0x40;
    repo.store().replace(&key, bytes.into()).unwrap();
    assert!(repo.read_entry(&index, &first).is_err(), "the first copy is damaged");
    assert_eq!(repo.read_blob(&index, BlobKind::Tree, &id).unwrap(), tree, "the second copy is read");

    let report = crate::operations::check::run(&repo, crate::operations::check::ReadData::All).unwrap();
    assert!(report.problems.iter().any(|p| p.message.contains("intact copy")), "{:?}", report.problems);
    assert!(report.affected.is_empty(), "no file is lost: {:?}", report.affected);
    assert!(report.damaged_blobs.is_empty());
}
