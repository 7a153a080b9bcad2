//! Unit tests of the repository's own reads and writes.

use std::sync::Arc;

use super::*;
use crate::format::blob::BlobKind;
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::keyfile::KdfParams;
use crate::format::pack::{PackEntry, PackSeal};
use crate::foundation::compress::Codec;
use crate::foundation::crypto::SALT_LEN;
use crate::foundation::id::{BlobId, IndexId, PackId};
use crate::repository::store::Store;
use crate::repository::store::object_store::ObjectStoreBackend;

fn pack(n: u32) -> IndexedPack {
    let id = |s: &str| Digest::of(format!("{s} {n}").as_bytes());
    let entry = PackEntry {
        kind: BlobKind::Data,
        codec: Codec::None,
        id: BlobId(id("blob")),
        offset: 16,
        length: 40,
        raw_len: 12,
    };
    IndexedPack { id: PackId(id("pack")), seal: PackSeal::salted([7; SALT_LEN]), entries: vec![entry] }
}

#[test]
fn index_objects_are_split_and_the_first_supersedes() {
    let store: Arc<dyn Store> = Arc::new(ObjectStoreBackend::open("memory://", &Default::default()).unwrap());
    let init = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
    let repo = Repository::init(store.clone(), b"pw", &init).unwrap();
    let packs: Vec<IndexedPack> = (0..u32::try_from(PACKS_PER_INDEX).unwrap() * 2 + 1).map(pack).collect();
    let old = [IndexId(Digest::of(b"old 1")), IndexId(Digest::of(b"old 2"))];
    repo.save_index_objects(&old, &packs).unwrap();
    let objects = store.list(ObjectKind::Index).unwrap();
    assert_eq!(objects.len(), 3);
    let mut superseding = 0;
    let mut named = 0;
    for info in &objects {
        let file =
            IndexFile::open(repo.master(), &IndexId(info.key.id), &repo.get_verified(info.key).unwrap()).unwrap();
        assert!(file.packs.len() <= PACKS_PER_INDEX);
        named += file.packs.len();
        if !file.supersedes.is_empty() {
            assert_eq!(file.supersedes, old);
            superseding += 1;
        }
    }
    assert_eq!((named, superseding), (packs.len(), 1));
    let index = repo.load_index().unwrap();
    assert!(packs.iter().all(|p| index.contains(&p.entries[0].id)));

    // No pack left: one empty object still supersedes the old ones.
    repo.save_index_objects(&old, &[]).unwrap();
    assert_eq!(store.list(ObjectKind::Index).unwrap().len(), 4);
}

#[test]
fn a_key_file_removed_from_the_store_does_not_open_it_from_the_cache() {
    use crate::foundation::id::ObjectKey;
    use crate::repository::store::cache::CachedStore;
    use crate::repository::store::fault::FaultyStore;
    const NAME: &str = "memory://removed-key-stays-removed";
    let cheap = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let dir = tempfile::tempdir().unwrap();
    let backend = || ObjectStoreBackend::open(NAME, &Default::default()).unwrap();
    let cached: Arc<dyn Store> = Arc::new(CachedStore::new(backend(), dir.path().to_path_buf()));
    let repo = Repository::init(Arc::clone(&cached), b"a", &InitOptions { kdf: cheap, ..Default::default() }).unwrap();
    repo.add_key(b"b", cheap).unwrap();
    let key_a = Repository::open(Arc::clone(&cached), b"a").unwrap().key_id();
    assert!(
        cached.cached(ObjectKind::Key).iter().any(|(key, _)| key.id == key_a.0),
        "the cache holds key file a, so the next open may derive the key from it"
    );
    // Another host removes key file a; this host's cache still holds its copy. The store
    // answers slowly, as a distant one does, so the key is derived from the cached copy before
    // the listing (which also drops the copy from the cache) comes back.
    backend().delete(&ObjectKey::new(ObjectKind::Key, key_a.0)).unwrap();
    let distant: Arc<dyn Store> = Arc::new(CachedStore::new(
        FaultyStore::new(backend(), "delay_ms=300".parse().unwrap()),
        dir.path().to_path_buf(),
    ));
    assert!(matches!(Repository::open(Arc::clone(&distant), b"a"), Err(Error::WrongPassword)));
    assert!(matches!(Repository::open(Arc::clone(&distant), b"c"), Err(Error::WrongPassword)));
    assert!(Repository::open(distant, b"b").is_ok());
}
