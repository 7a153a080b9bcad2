//! What unit tests across the crate build on: an in-memory repository with a fast key, and a
//! snapshot of a root tree.

use std::sync::Arc;

use super::{InitOptions, Repository};
use crate::format::keyfile::KdfParams;
use crate::format::snapshot::{SNAPSHOT_VERSION, Snapshot};
use crate::foundation::id::BlobId;
use crate::repository::store::object_store::ObjectStoreBackend;

/// A new repository in memory (`memory://NAME`), password `password`.
pub(crate) fn memory_repo(name: &str) -> Repository {
    memory_repo_with(name, &InitOptions::default())
}

/// As [`memory_repo`], with `options` (its key derivation made fast).
pub(crate) fn memory_repo_with(name: &str, options: &InitOptions) -> Repository {
    let store = Arc::new(ObjectStoreBackend::open(&format!("memory://{name}"), &Default::default()).unwrap());
    let opts = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..options.clone() };
    Repository::init(store, b"password", &opts).unwrap()
}

/// A snapshot of `/` whose root tree is `tree`.
pub(crate) fn snapshot_of(tree: BlobId) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        time: jiff::Timestamp::UNIX_EPOCH,
        host: "h".into(),
        user: "u".into(),
        paths: vec!["/".into()],
        tags: vec![],
        parent: None,
        tree,
        summary: Default::default(),
        original: None,
        created: None,
        program: "test".into(),
        postgres: None,
        subdirs: Vec::new(),
        attributes: None,
    }
}
