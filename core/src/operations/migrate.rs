//! `cairn migrate`: a version 1 or 2 repository becomes version 3 in place (FORMAT.md §21).
//!
//! Packs, trees and snapshots are never rewritten: a version 3 reader reads those of versions
//! 1 and 2. What changes is the config (version 3, sealed under the metadata key, its clear
//! version authenticated, padding chosen), the key files (who made them and when sealed
//! instead of in clear), and the index objects (sealed under the metadata key, so write-only
//! keys can deduplicate against them). The steps, each safe to be killed after:
//!
//! 1. Replace the config with a version 3 one (one atomic put; the commit point). From here
//!    on older binaries refuse the repository, and new objects are written as version 3.
//! 2. For each version 1 key file: write its version 2 form (the same wrapped key, so no
//!    password is needed), then delete the version 1 file. A run that finds a version 2 file
//!    with the same wrapped key only deletes the old one, so running again finishes the job.
//! 3. For each index object sealed under the master key: write the same content under the
//!    metadata key, naming the old object as superseded, then delete the old one. A run that
//!    finds both reads the union (as after any interrupted prune), and deletes the old one.

use serde::Serialize;

use crate::format::config::{Config, FORMAT_VERSION};
use crate::format::index::IndexFile;
use crate::format::keyfile::KeyFile;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, KeyId, ObjectKey, ObjectKind};
use crate::repository::Repository;

/// How to migrate.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// Pad new blobs (FORMAT.md §9); blobs already stored stay as they are.
    pub padding: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions { padding: true }
    }
}

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MigrateOutcome {
    /// The format version before.
    pub from: u32,
    /// The format version after.
    pub to: u32,
    /// Whether the config was replaced by this run.
    pub config_replaced: bool,
    /// Key files rewritten as version 2 by this run.
    pub keys_upgraded: usize,
    /// Version 1 key files removed whose version 2 form an earlier, interrupted run wrote.
    pub keys_finished: usize,
    /// Index objects sealed again under the metadata key by this run.
    pub indexes_resealed: usize,
}

/// Upgrades `repo` to the newest format version; a repository already there is left as it is
/// (but key files an interrupted run left behind are finished).
///
/// # Errors
/// Store errors (the repository is then as the last finished step left it: run again);
/// [`Error::Corrupt`] for a key file that cannot be read.
pub fn run(repo: &mut Repository, opts: &MigrateOptions) -> Result<MigrateOutcome> {
    let from = repo.config().version;
    let config_replaced = from < FORMAT_VERSION;
    if config_replaced {
        let config = Config { version: FORMAT_VERSION, padding: opts.padding, ..repo.config().clone() };
        repo.replace_config(config)?;
    }
    let mut outcome = MigrateOutcome {
        from,
        to: FORMAT_VERSION,
        config_replaced,
        keys_upgraded: 0,
        keys_finished: 0,
        indexes_resealed: 0,
    };
    let listed = repo.store().list(ObjectKind::Key).map_err(Error::Storage)?;
    let mut files = Vec::new();
    for info in listed {
        let data = repo.get_verified(info.key)?;
        let kf = KeyFile::decode(&data).map_err(|e| Error::corrupt(info.key, e.to_string()))?;
        files.push((KeyId(info.key.id), kf));
    }
    let upgraded: Vec<String> =
        files.iter().filter(|(_, kf)| kf.version >= 2).map(|(_, kf)| kf.wrapped.clone()).collect();
    for (id, kf) in files.iter().filter(|(_, kf)| kf.version < 2) {
        let old = ObjectKey::new(ObjectKind::Key, id.0);
        let new_id = if upgraded.contains(&kf.wrapped) {
            outcome.keys_finished += 1;
            files.iter().find(|(_, f)| f.version >= 2 && f.wrapped == kf.wrapped).map(|(i, _)| *i)
        } else {
            let meta = kf.meta(repo.master()).map_err(|e| Error::corrupt(old, e.to_string()))?;
            let bytes = kf.upgrade(repo.master(), &meta).encode();
            let new = KeyId(Digest::of(&bytes));
            let key = ObjectKey::new(ObjectKind::Key, new.0);
            repo.store().put(&key, bytes::Bytes::from(bytes)).map_err(Error::store(key))?;
            outcome.keys_upgraded += 1;
            Some(new)
        };
        repo.store().delete(&old).map_err(Error::store(old))?;
        if *id == repo.key_id()
            && let Some(new) = new_id
        {
            repo.set_key_id(new);
        }
    }
    outcome.indexes_resealed = reseal_indexes(repo)?;
    Ok(outcome)
}

/// Step 3: every index object a write-only key cannot open is written again under the
/// metadata key (superseding the old one, which is then deleted). Returns how many.
fn reseal_indexes(repo: &Repository) -> Result<usize> {
    let write_only = repo.master().write_only();
    let mut resealed = 0;
    for id in repo.index_ids()? {
        let key = ObjectKey::new(ObjectKind::Index, id.0);
        let data = match repo.get_verified(key) {
            Ok(data) => data,
            // Superseded and deleted by an earlier step of this run or a concurrent prune.
            Err(e) if e.is_missing_object() => continue,
            Err(e) => return Err(e),
        };
        if IndexFile::open(&write_only, &id, &data).is_ok() {
            continue;
        }
        let mut file = IndexFile::open(repo.master(), &id, &data)?;
        file.supersedes.push(id);
        repo.save_index(&file)?;
        repo.store().delete(&key).map_err(Error::store(key))?;
        resealed += 1;
    }
    Ok(resealed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::keyfile::{KdfParams, KeyMeta};
    use crate::repository::InitOptions;
    use crate::repository::store::Store;
    use crate::repository::store::object_store::ObjectStoreBackend;

    /// A version 1 repository: a version 2 one with its config and key file rewritten the way
    /// version 1 wrote them.
    fn v1_repo(name: &str) -> (Arc<ObjectStoreBackend>, Repository) {
        let store = Arc::new(ObjectStoreBackend::open(&format!("memory://{name}"), &Default::default()).unwrap());
        let opts =
            InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
        let mut repo = Repository::init(store.clone(), b"pw", &opts).unwrap();
        let v1 = Config { version: 1, padding: false, ..repo.config().clone() };
        repo.replace_config(v1).unwrap();
        for info in store.list(ObjectKind::Key).unwrap() {
            store.delete(&info.key).unwrap();
        }
        let meta = KeyMeta { host: "h".into(), user: "u".into(), created: "t".into(), write_only: false };
        for password in [&b"pw"[..], b"other"] {
            let kf = KeyFile::wrap(repo.master(), password, opts.kdf, &meta, false).unwrap();
            let bytes = kf.encode();
            store.put(&ObjectKey::new(ObjectKind::Key, Digest::of(&bytes)), bytes.into()).unwrap();
        }
        let repo = Repository::open(store.clone(), b"pw").unwrap();
        assert_eq!(repo.config().version, 1);
        (store, repo)
    }

    fn key_versions(store: &ObjectStoreBackend) -> Vec<u32> {
        let mut v: Vec<u32> = store
            .list(ObjectKind::Key)
            .unwrap()
            .iter()
            .map(|i| KeyFile::decode(&store.get(&i.key).unwrap()).unwrap().version)
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_version_1_repository_becomes_version_3_and_every_password_still_opens() {
        let (store, mut repo) = v1_repo("migrate-once");
        // An index object as version 1 sealed it: under the master key itself.
        let file = IndexFile { supersedes: vec![], packs: vec![] };
        let old = repo.save_index(&file).unwrap();
        let write_only = repo.master().write_only();
        let sealed_before = |id: Digest| store.get(&ObjectKey::new(ObjectKind::Index, id)).unwrap();
        assert!(IndexFile::open(&write_only, &old, &sealed_before(old.0)).is_err());
        let outcome = run(&mut repo, &MigrateOptions::default()).unwrap();
        assert_eq!((outcome.from, outcome.to, outcome.config_replaced, outcome.keys_upgraded), (1, 3, true, 2));
        assert_eq!(outcome.indexes_resealed, 1);
        assert_eq!(key_versions(&store), [2, 2]);
        for password in [&b"pw"[..], b"other"] {
            let opened = Repository::open(store.clone(), password).unwrap();
            assert_eq!(opened.config().version, 3);
            assert!(opened.config().padding);
        }
        assert!(store.list(ObjectKind::Key).unwrap().iter().any(|i| KeyId(i.key.id) == repo.key_id()));
        // The index is now one object a write-only key opens, naming the old one superseded.
        let ids: Vec<_> = repo.index_ids().unwrap().into_iter().collect();
        assert_eq!(ids.len(), 1);
        let now = IndexFile::open(&write_only, &ids[0], &sealed_before(ids[0].0)).unwrap();
        assert_eq!(now.supersedes, vec![old]);
        let again = run(&mut repo, &MigrateOptions::default()).unwrap();
        assert_eq!(
            (again.config_replaced, again.keys_upgraded, again.keys_finished, again.indexes_resealed),
            (false, 0, 0, 0)
        );
    }

    /// A run stopped after writing a version 2 key file but before deleting the version 1 one
    /// is finished by the next run, without a second version 2 file.
    #[test]
    fn an_interrupted_key_upgrade_is_finished_by_the_next_run() {
        let (store, repo) = v1_repo("migrate-resume");
        let listed = store.list(ObjectKind::Key).unwrap();
        let kf = KeyFile::decode(&store.get(&listed[0].key).unwrap()).unwrap();
        let upgraded = kf.upgrade(repo.master(), &kf.meta(repo.master()).unwrap()).encode();
        store.put(&ObjectKey::new(ObjectKind::Key, Digest::of(&upgraded)), upgraded.into()).unwrap();
        let mut repo = repo;
        let outcome = run(&mut repo, &MigrateOptions::default()).unwrap();
        assert_eq!((outcome.keys_upgraded, outcome.keys_finished), (1, 1));
        assert_eq!(key_versions(&store), [2, 2]);
    }
}
