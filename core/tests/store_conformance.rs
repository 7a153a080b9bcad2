//! One conformance suite for the storage layer, run against every backend and decorator:
//! memory, local disk, the retry, fault and cache decorators, and real servers on 127.0.0.1 that
//! scripts/test.sh starts: S3 (SeaweedFS, scripts/s3.sh), Azure Blob (Azurite,
//! scripts/azurite.sh) and WebDAV (rclone, scripts/webdav.sh). Each server's tests fail, saying
//! so, when its variables are missing. GCS has no emulator here that object_store 0.14 can
//! write to (it uses the XML API; see README.md, "Repository URLs").
//! See STYLE.md §2.7 (restic's backend test suite does the same).

use std::sync::Arc;

use bytes::Bytes;
use cairn_core::id::Digest;
use cairn_core::store::cache::CachedStore;
use cairn_core::store::fault::{FaultConfig, FaultyStore};
use cairn_core::store::object_store::{BackendOptions, ObjectStoreBackend};
use cairn_core::store::retry::{RetryPolicy, RetryStore};
use cairn_core::store::{ObjectKey, ObjectKind, Store, StoreError};

fn key(kind: ObjectKind, data: &[u8]) -> ObjectKey {
    ObjectKey::new(kind, Digest::of(data))
}

/// The contract every store must keep.
fn conformance(store: &dyn Store) {
    for kind in [ObjectKind::Key, ObjectKind::Snapshot, ObjectKind::Index, ObjectKind::Pack, ObjectKind::Garbage] {
        assert!(store.list(kind).unwrap().is_empty(), "{kind:?} starts empty");
    }
    let a = Bytes::from_static(b"first object, forty-two bytes long......!");
    let ka = key(ObjectKind::Pack, &a);
    store.put(&ka, a.clone()).unwrap();
    assert_eq!(store.get(&ka).unwrap(), a);
    assert_eq!(store.get_range(&ka, 6..12).unwrap(), Bytes::from_static(b"object"));
    assert_eq!(store.get_range_cacheable(&ka, 0..5).unwrap(), Bytes::from_static(b"first"));
    // Into a buffer: what it held is replaced, whatever its size.
    let mut buf = b"left over from an earlier, longer read".to_vec();
    store.get_range_into(&ka, 6..12, &mut buf).unwrap();
    assert_eq!(buf, b"object");
    // Create-only: an existing name is never overwritten.
    match store.put(&ka, Bytes::from_static(b"other bytes")) {
        Err(StoreError::AlreadyExists) => {}
        other => panic!("second put must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get(&ka).unwrap(), a, "content unchanged after a refused overwrite");
    // The config object has a fixed name.
    store.put(&ObjectKey::CONFIG, Bytes::from_static(b"cfg")).unwrap();
    assert!(matches!(store.put(&ObjectKey::CONFIG, Bytes::from_static(b"cfg2")), Err(StoreError::AlreadyExists)));
    assert_eq!(store.get(&ObjectKey::CONFIG).unwrap(), Bytes::from_static(b"cfg"));
    // The config is the one object replaced (`cairn migrate`): whole, and seen at once.
    store.replace(&ObjectKey::CONFIG, Bytes::from_static(b"config, version 2")).unwrap();
    assert_eq!(store.get(&ObjectKey::CONFIG).unwrap(), Bytes::from_static(b"config, version 2"));
    // Listing by kind, with sizes.
    let mut snaps = Vec::new();
    for i in 0..5u8 {
        let d = Bytes::from(vec![i; 100 + usize::from(i)]);
        let k = key(ObjectKind::Snapshot, &d);
        store.put(&k, d).unwrap();
        snaps.push(k);
    }
    let listed = store.list(ObjectKind::Snapshot).unwrap();
    assert_eq!(listed.len(), 5);
    for info in &listed {
        assert!(snaps.contains(&info.key));
        assert_eq!(info.size, store.get(&info.key).unwrap().len() as u64, "listed size of {}", info.key);
    }
    let packs = store.list(ObjectKind::Pack).unwrap();
    assert_eq!(packs.len(), 1);
    assert_eq!(packs[0].size, a.len() as u64);
    // Missing objects.
    let missing = key(ObjectKind::Index, b"missing");
    assert!(matches!(store.get(&missing), Err(StoreError::NotFound(_))));
    assert!(matches!(store.get_range(&missing, 0..1), Err(StoreError::NotFound(_))));
    assert!(matches!(store.get_range_into(&missing, 0..1, &mut buf), Err(StoreError::NotFound(_))));
    // Delete, and deleting again is fine.
    store.delete(&snaps[0]).unwrap();
    store.delete(&snaps[0]).unwrap();
    assert_eq!(store.list(ObjectKind::Snapshot).unwrap().len(), 4);
    assert!(matches!(store.get(&snaps[0]), Err(StoreError::NotFound(_))));
    // A large object (multipart above 64 MiB is exercised separately where it matters).
    let big = Bytes::from(vec![7u8; 3 << 20]);
    let kb = key(ObjectKind::Pack, &big);
    store.put(&kb, big.clone()).unwrap();
    assert_eq!(store.get_range(&kb, (3 << 20) - 10..3 << 20).unwrap(), big.slice((3 << 20) - 10..));
}

/// The contract, again, for a store nested in `store` (a tenant's repository): it keeps every
/// promise above, and its objects and the parent's never see each other.
fn conformance_with_nested(store: &dyn Store) {
    let nested = store.nested("tenants/conformance").unwrap();
    conformance(&*nested);
    let sibling = store.nested("tenants/other").unwrap();
    assert!(sibling.list(ObjectKind::Pack).unwrap().is_empty(), "a sibling sees none of its objects");
    assert!(matches!(sibling.get(&ObjectKey::CONFIG), Err(StoreError::NotFound(_))));
    conformance(store);
    assert_eq!(nested.list(ObjectKind::Snapshot).unwrap().len(), 4, "the parent's objects are not the nested store's");
    assert_eq!(store.list(ObjectKind::Snapshot).unwrap().len(), 4, "nor the other way round");
    assert_eq!(nested.get(&ObjectKey::CONFIG).unwrap(), Bytes::from_static(b"config, version 2"));
    for info in nested.list(ObjectKind::Pack).unwrap() {
        nested.delete(&info.key).unwrap();
    }
    assert!(nested.list(ObjectKind::Pack).unwrap().is_empty());
    assert_eq!(store.list(ObjectKind::Pack).unwrap().len(), 2, "deleting there leaves the parent's");
}

fn local() -> (tempfile::TempDir, ObjectStoreBackend) {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStoreBackend::open(dir.path().to_str().unwrap(), &BackendOptions::default()).unwrap();
    (dir, store)
}

#[test]
fn memory_store_conforms() {
    conformance_with_nested(
        &ObjectStoreBackend::open("memory://conformance-memory", &BackendOptions::default()).unwrap(),
    );
}

#[test]
fn local_store_conforms() {
    let (_dir, store) = local();
    conformance_with_nested(&store);
}

#[test]
fn retry_over_flaky_store_conforms() {
    let (_dir, store) = local();
    let faults: FaultConfig = "fail_rate=0.3,seed=11".parse().unwrap();
    let policy = RetryPolicy { max_retries: 30, base_delay: std::time::Duration::from_millis(1), ..Default::default() };
    conformance_with_nested(&RetryStore::new(FaultyStore::new(store, faults), policy));
}

#[test]
fn cached_store_conforms_and_refetches_damaged_entries() {
    let (_dir, store) = local();
    let cache = tempfile::tempdir().unwrap();
    let cached = CachedStore::new(store, cache.path().to_path_buf());
    conformance(&cached);
    // Damage a cached snapshot: the cache must notice (content ≠ name) and refetch.
    let listed = cached.list(ObjectKind::Snapshot).unwrap();
    let k = listed[0].key;
    let good = cached.get(&k).unwrap();
    std::fs::write(cache.path().join(k.path()), b"garbage").unwrap();
    assert_eq!(cached.get(&k).unwrap(), good);
    // A cached range is the caller's to authenticate: one it found damaged is dropped and
    // fetched again.
    let pack = cached.list(ObjectKind::Pack).unwrap()[0].key;
    let good = cached.get_range_cacheable(&pack, 1..5).unwrap();
    let entry = cache.path().join("trees").join(format!("{}-1-5", pack.id));
    std::fs::write(&entry, b"bad!").unwrap();
    assert_eq!(&cached.get_range_cacheable(&pack, 1..5).unwrap()[..], b"bad!", "served from the cache");
    cached.uncache_range(&pack, 1..5);
    assert_eq!(cached.get_range_cacheable(&pack, 1..5).unwrap(), good);
    assert_eq!(std::fs::read(&entry).unwrap(), good, "and cached again");
    // Run records are immutable and read by every `cairn run`: kept in the cache too.
    let record = key(ObjectKind::Record, b"a run record");
    cached.put(&record, Bytes::from_static(b"a run record")).unwrap();
    assert_eq!(&cached.get(&record).unwrap()[..], b"a run record");
    assert!(cache.path().join(record.path()).is_file(), "a record read is cached");
}

#[test]
fn permanent_errors_are_not_retried_and_transient_ones_give_up() {
    let (_dir, store) = local();
    let k = key(ObjectKind::Pack, b"x");
    let faulty = FaultyStore::new(store, "fail_nth=1".parse().unwrap());
    let retry = RetryStore::new(faulty, RetryPolicy { max_retries: 5, ..Default::default() });
    assert!(matches!(retry.put(&k, Bytes::from_static(b"x")), Err(StoreError::Permanent(_))));
    let (_dir2, store2) = local();
    let always = FaultyStore::new(store2, "fail_rate=1".parse().unwrap());
    let policy = RetryPolicy { max_retries: 3, base_delay: std::time::Duration::from_millis(1), ..Default::default() };
    match RetryStore::new(always, policy).get(&k) {
        Err(StoreError::Transient(msg)) => assert!(msg.contains("gave up after 4 attempts"), "{msg}"),
        other => panic!("expected to give up, got {other:?}"),
    }
}

/// The S3 server scripts/test.sh starts. Missing configuration is a failure, not a skip.
fn s3_url(test: &str) -> String {
    std::env::var("S3_TEST_ENDPOINT")
        .expect("S3_TEST_ENDPOINT is not set: run the suite with scripts/test.sh, which starts SeaweedFS on 127.0.0.1");
    let bucket = std::env::var("S3_TEST_BUCKET").unwrap_or_else(|_| "cairn-ci".into());
    format!("s3://{bucket}/conformance-{test}-{}", std::process::id())
}

fn s3_options() -> BackendOptions {
    let get = |k: &str| std::env::var(k).unwrap_or_default();
    BackendOptions {
        settings: vec![
            ("aws_endpoint".into(), get("S3_TEST_ENDPOINT")),
            ("aws_access_key_id".into(), get("S3_TEST_KEY")),
            ("aws_secret_access_key".into(), get("S3_TEST_SECRET")),
            ("aws_region".into(), get("S3_TEST_REGION")),
            ("aws_allow_http".into(), "true".into()),
        ],
        timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    }
}

#[test]
fn s3_store_conforms() {
    let store = ObjectStoreBackend::open(&s3_url("plain"), &s3_options()).unwrap();
    conformance_with_nested(&store);
}

/// An object above the 64 MiB multipart threshold: uploaded in parts where the service has
/// them (S3, Azure), in one request where it has not (WebDAV), and create-only either way.
fn large_object_round_trips(store: &dyn Store) {
    let big = Bytes::from((0..70u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let k = key(ObjectKind::Pack, &big);
    store.put(&k, big.clone()).unwrap();
    assert!(matches!(store.put(&k, big.clone()), Err(StoreError::AlreadyExists)));
    assert_eq!(store.get(&k).unwrap(), big);
    assert_eq!(store.list(ObjectKind::Pack).unwrap()[0].size, big.len() as u64);
}

#[test]
fn s3_multipart_upload_round_trips() {
    large_object_round_trips(&ObjectStoreBackend::open(&s3_url("multipart"), &s3_options()).unwrap());
}

#[test]
fn s3_behind_cache_and_retry_conforms() {
    let store = ObjectStoreBackend::open(&s3_url("stack"), &s3_options()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let stacked = CachedStore::new(RetryStore::new(store, RetryPolicy::default()), cache.path().to_path_buf());
    conformance_with_nested(&Arc::new(stacked));
}

/// A variable the server scripts export; missing is a failure that names the script, not a skip.
fn server_var(name: &str, script: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test.sh, which starts {script} on 127.0.0.1")
    })
}

/// A fresh prefix per test and process, so runs never see each other's objects.
fn fresh_prefix(test: &str) -> String {
    format!("conformance-{test}-{}", std::process::id())
}

/// Azurite (scripts/azurite.sh), reached the way a user names a real account: account name,
/// key and endpoint as `-o` settings.
fn azure(test: &str) -> ObjectStoreBackend {
    let container = server_var("AZURE_TEST_CONTAINER", "Azurite (scripts/azurite.sh)");
    let opts = BackendOptions {
        settings: vec![
            ("azure_storage_endpoint".into(), server_var("AZURE_TEST_ENDPOINT", "Azurite")),
            ("azure_storage_account_name".into(), server_var("AZURE_TEST_ACCOUNT", "Azurite")),
            ("azure_storage_account_key".into(), server_var("AZURE_TEST_KEY", "Azurite")),
        ],
        timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    };
    ObjectStoreBackend::open(&format!("az://{container}/{}", fresh_prefix(test)), &opts).unwrap()
}

/// rclone's WebDAV server (scripts/webdav.sh), one folder per test.
fn webdav(test: &str) -> ObjectStoreBackend {
    let base = server_var("WEBDAV_TEST_URL", "rclone serve webdav (scripts/webdav.sh)");
    let opts = BackendOptions { timeout: Some(std::time::Duration::from_secs(30)), ..Default::default() };
    ObjectStoreBackend::open(&format!("{base}/{}", fresh_prefix(test)), &opts).unwrap()
}

#[test]
fn azure_store_conforms() {
    conformance_with_nested(&azure("plain"));
}

#[test]
fn azure_behind_cache_and_retry_conforms() {
    let cache = tempfile::tempdir().unwrap();
    let stacked = CachedStore::new(RetryStore::new(azure("stack"), RetryPolicy::default()), cache.path().to_path_buf());
    conformance_with_nested(&Arc::new(stacked));
}

#[test]
fn azure_multipart_upload_round_trips() {
    large_object_round_trips(&azure("multipart"));
}

#[test]
fn webdav_store_conforms() {
    conformance_with_nested(&webdav("plain"));
}

#[test]
fn webdav_large_object_round_trips() {
    large_object_round_trips(&webdav("large"));
}

/// A repository folder two levels down whose name needs escaping: every missing collection is
/// created, and the name is decoded once.
#[test]
fn webdav_nested_escaped_path_conforms() {
    let store = webdav("nested%20dir/repo");
    conformance(&store);
    assert!(store.describe().contains("nested%20dir/repo"), "{}", store.describe());
}

#[test]
fn webdav_behind_cache_and_retry_conforms() {
    let cache = tempfile::tempdir().unwrap();
    let stacked =
        CachedStore::new(RetryStore::new(webdav("stack"), RetryPolicy::default()), cache.path().to_path_buf());
    conformance_with_nested(&Arc::new(stacked));
}

/// A listing taken ahead (while a repository's key is derived) serves the next listing of its
/// kind once, and never hides what this store itself wrote or deleted since.
#[test]
fn a_listing_taken_ahead_serves_once_and_never_hides_this_stores_writes() {
    let dir = tempfile::tempdir().unwrap();
    let open = || ObjectStoreBackend::open(dir.path().to_str().unwrap(), &BackendOptions::default()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cached = CachedStore::new(open(), cache.path().to_path_buf());
    let elsewhere = open();
    let object = |n: u8| {
        let d = Bytes::from(vec![n; 10]);
        (key(ObjectKind::Snapshot, &d), d)
    };
    let (k1, d1) = object(1);
    cached.put(&k1, d1).unwrap();
    cached.list_ahead(&[ObjectKind::Snapshot, ObjectKind::Index]);
    // Another writer adds a snapshot after the listing was taken: the first listing is the one
    // taken ahead, the next one is fresh.
    let (k2, d2) = object(2);
    elsewhere.put(&k2, d2).unwrap();
    let names = |listed: Vec<cairn_core::store::ObjectInfo>| listed.into_iter().map(|i| i.key).collect::<Vec<_>>();
    assert_eq!(names(cached.list(ObjectKind::Snapshot).unwrap()), vec![k1]);
    assert_eq!(names(cached.list(ObjectKind::Snapshot).unwrap()).len(), 2);
    // This store's own write of a kind drops the listing taken ahead of that kind.
    cached.list_ahead(&[ObjectKind::Snapshot]);
    let (k3, d3) = object(3);
    cached.put(&k3, d3).unwrap();
    assert!(names(cached.list(ObjectKind::Snapshot).unwrap()).contains(&k3));
    // And its own delete.
    cached.list_ahead(&[ObjectKind::Snapshot]);
    cached.delete(&k1).unwrap();
    assert!(!names(cached.list(ObjectKind::Snapshot).unwrap()).contains(&k1));
    // A store without the cache lists afresh every time.
    let plain = open();
    plain.list_ahead(&[ObjectKind::Snapshot]);
    let (k4, d4) = object(4);
    elsewhere.put(&k4, d4).unwrap();
    assert!(names(plain.list(ObjectKind::Snapshot).unwrap()).contains(&k4));
}

/// S3 `RestoreObject` (issue 15, item 4), which object_store lacks, sent by the store itself.
/// SeaweedFS has no archive classes and refuses the request (405), so what this shows is
/// the request's address, the bucket and the object's full key, and that the service's
/// answer comes back as an error naming the object, not as success. Against AWS the same
/// request starts the warm-up (not tested here: no local server emulates archive tiers; the
/// restore path is tested with the fault store in tests/e2e/cold.rs).
#[test]
fn s3_a_warm_up_request_goes_to_the_object_and_its_refusal_is_reported() {
    let store = ObjectStoreBackend::open(&s3_url("warm"), &s3_options()).unwrap();
    let k = key(ObjectKind::Pack, b"warm");
    store.put(&k, Bytes::from_static(b"warm")).unwrap();
    let bucket = std::env::var("S3_TEST_BUCKET").unwrap_or_else(|_| "cairn-ci".into());
    match store.warm_up(&k, &cairn_core::store::WarmUp::default()) {
        Err(StoreError::Permanent(message)) => {
            let resource = format!("<Resource>/{bucket}/conformance-warm-{}/{}", std::process::id(), k.path());
            assert!(message.contains(&resource), "{message}");
            assert!(message.contains(&k.path()), "the error names the object: {message}");
        }
        other => panic!("SeaweedFS has no archive tier, the request must be refused: {other:?}"),
    }
    assert!(store.is_warm(&k).unwrap(), "an object in the default class is warm");
}
