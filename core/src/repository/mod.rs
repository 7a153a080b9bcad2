//! A repository: a store, the master key, and the config (FORMAT.md §Config, §Read and write
//! ordering).
//!
//! [`Repository::open`] tries each key file with the password, then reads and checks the config.
//! It also offers the typed reads everything else builds on: the index, snapshots, blobs, trees.

pub mod index;
mod index_objects;
pub mod keycache;
pub mod keys;
mod pack_headers;
pub mod parity;
mod read;
pub mod records;
mod retention;
pub mod select;
pub mod session;
mod snapshots;
pub mod store;
pub mod tenant;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
pub mod trees;
pub mod writer;

pub use snapshots::CheckedSnapshots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use crate::format::config::{Config, FORMAT_VERSION, check_version};
use crate::format::keyfile::{KdfParams, KeyFile, KeyFileError, KeyMeta};
use crate::foundation::chunk::{CHUNKER_FASTCDC_2020_SEEDED, ChunkerParams, Cutter};
use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, KeyId};
use crate::foundation::identity::host_and_user;
use crate::repository::index::Index;
use crate::repository::store::batch::{self, Flow};
use crate::repository::store::{ObjectKey, ObjectKind, Store, StoreError};

/// Options of `init`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InitOptions {
    /// Chunk size bounds.
    pub chunker_params: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level.
    pub compression: i32,
    /// argon2id costs for the first key file.
    pub kdf: KdfParams,
    /// For a repository on local disk: let the directory's group read it (files 0640,
    /// directories 0750) instead of its owner alone (0600, 0700), e.g. for a backup group.
    pub group_readable: bool,
    /// Pad blobs to their Padmé length (FORMAT.md §9), hiding exact chunk sizes from the store.
    pub padding: bool,
    /// Reed–Solomon parity beside every data pack, in percent of its size (0 = none, up to
    /// 100): a damaged byte range up to about that share of a pack is rebuilt (FORMAT.md §10a).
    pub data_parity: u8,
    /// The storage class data packs are created in (FORMAT.md §7), e.g. S3 `GLACIER_IR`;
    /// metadata stays in the default class. Classes that need a warm-up before reads are
    /// refused.
    pub data_storage_class: Option<String>,
    /// S3 Object Lock (FORMAT.md §7): every object but session markers, garbage lists and
    /// tenant keys retained this long from its write; the bucket must have object lock on.
    pub object_lock: Option<crate::format::config::ObjectLock>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker_params: ChunkerParams::default(),
            pack_size: 16 << 20,
            compression: 1,
            kdf: KdfParams::default(),
            group_readable: false,
            padding: true,
            data_parity: 0,
            data_storage_class: None,
            object_lock: None,
        }
    }
}

/// `store`, retaining what it writes when `config` has object lock.
fn with_lock(store: Arc<dyn Store>, config: &Config) -> Arc<dyn Store> {
    match config.object_lock {
        Some(lock) => Arc::new(store::lock::LockingStore::new(store, lock)),
        None => store,
    }
}

/// Index objects written by prune and `repair index` hold at most this many packs each.
pub const PACKS_PER_INDEX: usize = 4096;

/// The fewest blobs for which the CLI keeps the index as a mapped table (FORMAT.md §11a): below
/// a million, decoding the index objects takes about a tenth of a second and 48 MB, less than
/// writing the table would cost a run that changed it.
pub const INDEX_TABLE_MIN_BLOBS: usize = 1 << 20;

/// An open repository.
pub struct Repository {
    store: Arc<dyn Store>,
    master: MasterKey,
    config: Config,
    key_id: KeyId,
    /// For a tenant's repository nested in another ([`tenant`]): the tenant's name.
    tenant: Option<String>,
    /// Where a write-only key keeps its local records (FORMAT.md §5.6).
    own_records: Option<std::path::PathBuf>,
    /// Where the index is kept as a mapped table between runs (FORMAT.md §11a), and the
    /// fewest blobs worth a table.
    index_cache: Option<(std::path::PathBuf, usize)>,
    /// The index decoded from the repository's own objects, once a blob failed to read where
    /// the mapped table put it ([`Repository::read_blob`]).
    decoded_index: OnceLock<Index>,
}

fn store_err(key: ObjectKey) -> impl FnOnce(StoreError) -> Error {
    move |cause| Error::Store { key, cause }
}

impl Repository {
    /// Creates a repository in an empty store.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the store already holds a repository or the options are
    /// invalid.
    pub fn init(store: Arc<dyn Store>, password: &[u8], options: &InitOptions) -> Result<Self> {
        options.chunker_params.validate().map_err(Error::InvalidArgument)?;
        if !(1 << 16..=1 << 30).contains(&options.pack_size) {
            return Err(Error::InvalidArgument("pack size must be between 64 KiB and 1 GiB".into()));
        }
        if !(0..=22).contains(&options.compression) {
            return Err(Error::InvalidArgument("compression level must be 0 (off) to 22".into()));
        }
        if options.data_parity > 100 {
            return Err(Error::InvalidArgument("data parity must be 0 (off) to 100 %".into()));
        }
        if let Some(class) = &options.data_storage_class {
            crate::format::config::check_storage_class(class).map_err(Error::InvalidArgument)?;
        }
        match store.get(&ObjectKey::CONFIG) {
            Ok(_) => return Err(Error::InvalidArgument(format!("{} already holds a repository", store.describe()))),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(store_err(ObjectKey::CONFIG)(e)),
        }
        // Before the first object: who else may read what the repository holds.
        store.make_private(options.group_readable).map_err(Error::Storage)?;
        let master = MasterKey::generate().for_version(FORMAT_VERSION);
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let config = Config {
            version: FORMAT_VERSION,
            id: Digest(id),
            chunker: CHUNKER_FASTCDC_2020_SEEDED.into(),
            chunker_params: options.chunker_params,
            pack_size: options.pack_size,
            compression: options.compression,
            padding: options.padding,
            data_parity: options.data_parity,
            data_storage_class: options.data_storage_class.clone(),
            object_lock: options.object_lock,
        };
        let store = with_lock(store, &config);
        // Key first: a config without a key would be a repository nobody can open.
        let key_id = match Self::write_key(&*store, &master, FORMAT_VERSION, password, options.kdf) {
            Ok(id) => id,
            // Written but not retained: the bucket has no object lock. No repository is left.
            Err(Error::Store { key, cause }) if options.object_lock.is_some() => {
                let _ = store.delete(&key);
                return Err(Error::InvalidArgument(format!(
                    "{}: cannot retain objects ({cause}); object lock needs an S3 bucket created with object lock on",
                    store.describe()
                )));
            }
            Err(e) => return Err(e),
        };
        store.put(&ObjectKey::CONFIG, Bytes::from(config.seal(&master))).map_err(|e| match e {
            StoreError::AlreadyExists => {
                Error::InvalidArgument(format!("{} already holds a repository", store.describe()))
            }
            e => store_err(ObjectKey::CONFIG)(e),
        })?;
        Ok(Repository::assemble(store, master, config, key_id, None))
    }

    /// An open repository of its parts, with no local state set yet (records, index cache).
    fn assemble(
        store: Arc<dyn Store>,
        master: MasterKey,
        config: Config,
        key_id: KeyId,
        tenant: Option<String>,
    ) -> Self {
        Repository {
            store,
            master,
            config,
            key_id,
            tenant,
            own_records: None,
            index_cache: None,
            decoded_index: OnceLock::new(),
        }
    }

    /// Creates a repository at `url` (a path, `file://`, `s3://`, `az://`, `gs://`,
    /// `http(s)://` or `memory://`), with the store settings of [`store::OpenOptions::default`]
    /// (credentials from the environment, retries, a metadata cache for remote stores).
    ///
    /// # Errors
    /// As [`store::open`] and [`Repository::init`].
    pub fn init_url(url: &str, password: &[u8], options: &InitOptions) -> Result<Self> {
        let mut open = store::OpenOptions::default();
        open.backend.create = true;
        let store = store::open(url, &open).map_err(Error::Storage)?;
        Self::init(store, password, options)
    }

    /// Opens the repository at `url` (see [`Repository::init_url`]) with `password`.
    ///
    /// # Errors
    /// As [`store::open`] and [`Repository::open`].
    pub fn open_url(url: &str, password: &[u8]) -> Result<Self> {
        let store = store::open(url, &store::OpenOptions::default()).map_err(|e| match e {
            StoreError::NotFound(_) => Error::RepositoryNotFound { location: url.to_string() },
            e => Error::Storage(e),
        })?;
        Self::open(store, password)
    }

    /// Writes a key file wrapping `master` under `password`, in the layout of repository format
    /// `version` (FORMAT.md §6: version 2 seals who made it and when).
    pub(crate) fn write_key(
        store: &dyn Store,
        master: &MasterKey,
        version: u32,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<KeyId> {
        let (host, user) = host_and_user();
        let meta =
            KeyMeta { host, user, created: jiff::Timestamp::now().to_string(), write_only: master.is_write_only() };
        let kf = KeyFile::wrap(master, password, kdf, &meta, version >= 2)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let bytes = kf.encode();
        let id = KeyId(Digest::of(&bytes));
        let key = ObjectKey::new(ObjectKind::Key, id.0);
        store.put(&key, Bytes::from(bytes)).map_err(store_err(key))?;
        Ok(id)
    }

    /// Opens the repository in `store` with `password`.
    ///
    /// # Errors
    /// [`Error::WrongPassword`] if no key file opens; [`Error::UnsupportedVersion`] for another
    /// format version; store and corruption errors naming the object.
    pub fn open(store: Arc<dyn Store>, password: &[u8]) -> Result<Self> {
        // The config and the key files are fetched side by side, and the snapshots and the
        // index (which nearly every command reads next) listed: one round trip to a distant
        // store, not three. Meanwhile the key is derived from the key files a remote store's
        // cache holds: the derivation (a tenth of a second or more, on purpose) then overlaps
        // the round trip instead of following it.
        let answered = AtomicBool::new(false);
        let (config_bytes, keys, (early, refused)) = std::thread::scope(|s| {
            let keys = s.spawn(|| Self::fetch_keys(&*store));
            let early = s.spawn(|| Self::unwrap_cached_key(&*store, password, &answered));
            s.spawn(|| store.list_ahead(&[ObjectKind::Snapshot, ObjectKind::Index]));
            let config = store.get(&ObjectKey::CONFIG);
            let keys = keys.join().unwrap_or_else(|_| Err(Error::Internal("key fetch panicked".into())));
            answered.store(true, Ordering::Relaxed);
            (config, keys, early.join().unwrap_or_default())
        });
        let config_bytes = match config_bytes {
            Ok(bytes) => bytes,
            // No config, and listing the keys failed for another reason (an invalid bucket
            // name, a refused request): the store's own message says more than "no repository".
            Err(StoreError::NotFound(_)) => {
                return Err(match keys {
                    Err(e) if !e.is_missing_object() => e,
                    _ => Error::RepositoryNotFound { location: store.describe() },
                });
            }
            Err(e) => return Err(store_err(ObjectKey::CONFIG)(e)),
        };
        check_version(Config::stored_version(&config_bytes)?)?;
        let keys = keys?;
        if keys.is_empty() {
            return Err(Error::NotFound("key files (the repository has none)".into()));
        }
        // A cached key file counts only while the store still lists it (a removed key stays
        // removed) and its key opens the config; otherwise the listed key files decide.
        let early = early.filter(|(_, key_id)| keys.iter().any(|(info, _)| info.key.id == key_id.0));
        if let Some((master, key_id)) = early
            && let Ok(config) = Config::open(&master, &config_bytes)
        {
            let master = master.for_version(config.version);
            return Ok(Repository::assemble(with_lock(store, &config), master, config, key_id, None));
        }
        // The copies that refused the password are the same bytes as the listed files (both
        // checked against their names): each key is derived at most once.
        let keys = keys.into_iter().filter(|(info, _)| !refused.contains(&KeyId(info.key.id))).collect();
        let (master, config, key_id) = Self::unlock(&config_bytes, keys, password)?;
        Ok(Repository::assemble(with_lock(store, &config), master, config, key_id, None))
    }

    /// The master key that `password` unwraps from a key file `store` holds a checked copy of
    /// ([`Store::cached`]), with that file's id, if one does; and the key files whose copies
    /// refused the password. Starts on no further key file once `answered` (the store's
    /// listing is back, and the listed files are tried then).
    fn unwrap_cached_key(
        store: &dyn Store,
        password: &[u8],
        answered: &AtomicBool,
    ) -> (Option<(MasterKey, KeyId)>, Vec<KeyId>) {
        let mut refused = Vec::new();
        for (key, data) in store.cached(ObjectKind::Key) {
            if answered.load(Ordering::Relaxed) {
                break;
            }
            match KeyFile::decode(&data).and_then(|kf| kf.unwrap_key(password)) {
                Ok(master) => return (Some((master, KeyId(key.id))), refused),
                Err(KeyFileError::WrongPassword) => refused.push(KeyId(key.id)),
                // Unreadable: the listed copy is tried again, and its error reported.
                Err(_) => {}
            }
        }
        (None, refused)
    }

    /// Opens the repository in `store` with a master key already unwrapped from key file
    /// `key_id` (by [`keycache`]); `None` if that key file is gone or the config does not open
    /// with the key (another repository now at the same place).
    pub(crate) fn open_with_master(store: Arc<dyn Store>, master: MasterKey, key_id: KeyId) -> Result<Option<Self>> {
        let (config_bytes, keys) = std::thread::scope(|s| {
            let keys = s.spawn(|| store.list(ObjectKind::Key));
            s.spawn(|| store.list_ahead(&[ObjectKind::Snapshot, ObjectKind::Index]));
            let config = store.get(&ObjectKey::CONFIG);
            let keys = keys.join().unwrap_or_else(|_| Err(StoreError::Permanent("key listing panicked".into())));
            (config, keys)
        });
        let config_bytes = config_bytes.map_err(store_err(ObjectKey::CONFIG))?;
        check_version(Config::stored_version(&config_bytes)?)?;
        if !keys.map_err(Error::Storage)?.iter().any(|k| k.key.id == key_id.0) {
            return Ok(None);
        }
        Ok(Config::open(&master, &config_bytes).ok().map(|config| {
            let master = master.for_version(config.version);
            Repository::assemble(with_lock(store, &config), master, config, key_id, None)
        }))
    }

    /// Finds the key file among `keys` that `password` opens and that opens the config.
    fn unlock(
        config_bytes: &[u8],
        keys: Vec<(crate::repository::store::ObjectInfo, Bytes)>,
        password: &[u8],
    ) -> Result<(MasterKey, Config, KeyId)> {
        let mut last_invalid = None;
        // The first config failure with a key the password unlocked: the config, not the key,
        // is then the likelier damage.
        let mut config_failure = None;
        for (info, data) in keys {
            // A key file is named by the digest of its bytes: if they no longer match, a
            // refused password may be the damage, not the password (host, user and created
            // are not authenticated, so a changed one still unwraps and is used).
            let damaged = Digest::of(&data) != info.key.id;
            let attempt = KeyFile::decode(&data).and_then(|kf| kf.unwrap_key(password));
            match attempt {
                Ok(master) => match Config::open(&master, config_bytes) {
                    Ok(config) => return Ok((master.for_version(config.version), config, KeyId(info.key.id))),
                    // A key for another master key (left by an interrupted `init` that was run
                    // again): try the others.
                    Err(e) => {
                        let reason = match e {
                            Error::Corrupt { reason, .. } => reason,
                            e => e.to_string(),
                        };
                        config_failure.get_or_insert(reason);
                    }
                },
                Err(KeyFileError::WrongPassword) if damaged => {
                    last_invalid = Some(format!("{}: damaged (its content does not match its name)", info.key));
                }
                Err(KeyFileError::WrongPassword) => {}
                Err(e) => last_invalid = Some(format!("{}: {e}", info.key)),
            }
        }
        if let Some(reason) = config_failure {
            return Err(Error::Corrupt {
                object: "config".into(),
                reason: format!(
                    "the password unlocks a key file, but the config does not open with its key ({reason}): \
                     the config is damaged (or that key file belongs to another repository)"
                ),
            });
        }
        match last_invalid {
            // Every key either refused the password or was unreadable; the password is the
            // likelier culprit, but say what was unreadable too.
            Some(detail) => Err(Error::Corrupt {
                object: "key files".into(),
                reason: format!("wrong password or no matching key; also unreadable: {detail}"),
            }),
            None => Err(Error::WrongPassword),
        }
    }

    /// Lists the key files and fetches them, a few side by side.
    fn fetch_keys(store: &dyn Store) -> Result<Vec<(crate::repository::store::ObjectInfo, Bytes)>> {
        let keys = store.list(ObjectKind::Key).map_err(Error::Storage)?;
        let fetched: Mutex<Vec<Option<Result<Bytes>>>> = Mutex::new((0..keys.len()).map(|_| None).collect());
        batch::for_each(
            &keys,
            batch::in_flight(store, 0),
            |info| store.get(&info.key).map_err(store_err(info.key)),
            |n, got| {
                if let Ok(mut all) = fetched.lock() {
                    all[n] = Some(got);
                }
                Flow::Continue
            },
        );
        let fetched = fetched.into_inner().map_err(|_| Error::Internal("key fetch lock poisoned".into()))?;
        keys.into_iter()
            .zip(fetched)
            .map(|(info, got)| Ok((info, got.ok_or_else(|| Error::Internal("a key file was not fetched".into()))??)))
            .collect()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The master key.
    #[must_use]
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Sets where a write-only key keeps its local records of what it wrote (FORMAT.md §5.6):
    /// its last backups, and what `copy` copied into this repository.
    pub fn set_own_records(&mut self, dir: std::path::PathBuf) {
        self.own_records = Some(dir);
    }

    /// Keeps the index in `dir` between runs, as a table mapped at the next open instead of
    /// decoding every index object again (FORMAT.md §11a), once it holds at least `min_blobs`
    /// blobs (the CLI's default: [`INDEX_TABLE_MIN_BLOBS`]). The directory is this
    /// repository's alone (the CLI uses the cache's `index/<repository id>`).
    pub fn set_index_cache(&mut self, dir: std::path::PathBuf, min_blobs: usize) {
        self.index_cache = Some((dir, min_blobs));
    }

    /// Where a write-only key keeps its local records, if set.
    #[must_use]
    pub fn own_records(&self) -> Option<&std::path::Path> {
        self.own_records.as_deref()
    }

    /// Refuses what needs the full key when the repository was opened with a write-only key.
    ///
    /// # Errors
    /// [`Error::WriteOnly`] naming `what`.
    pub fn require_full(&self, what: &str) -> Result<()> {
        if self.master.is_write_only() {
            return Err(Error::WriteOnly(what.to_string()));
        }
        Ok(())
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The key file that opened the repository.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Goes on with `master` (after a key rotation), for this repository's format version.
    pub(crate) fn set_master(&mut self, master: MasterKey) {
        self.master = master.for_version(self.config.version);
    }

    /// Records that the session now goes on with key `id` (after a password change).
    pub(crate) fn set_key_id(&mut self, id: KeyId) {
        self.key_id = id;
    }

    /// Replaces the config with `config` (the one object ever replaced: `cairn migrate`),
    /// and goes on with it.
    pub(crate) fn replace_config(&mut self, config: Config) -> Result<()> {
        let bytes = Bytes::from(config.seal(&self.master));
        self.store.replace(&ObjectKey::CONFIG, bytes).map_err(store_err(ObjectKey::CONFIG))?;
        self.master = self.master.clone().for_version(config.version);
        self.config = config;
        Ok(())
    }

    /// The chunker of this repository.
    ///
    /// # Errors
    /// Never for a config that passed `open`.
    pub fn cutter(&self) -> Result<Cutter> {
        Cutter::new(self.config.chunker_params, self.master.chunker_seed()).map_err(Error::InvalidArgument)
    }

    /// Reads and checks one object's bytes against its name.
    ///
    /// # Errors
    /// Store errors; [`Error::Corrupt`] when the content does not hash to the name.
    pub fn get_verified(&self, key: ObjectKey) -> Result<Bytes> {
        let data = self.store.get(&key).map_err(store_err(key))?;
        if Digest::of(&data) != key.id {
            return Err(Error::corrupt(key, "content does not match its name"));
        }
        Ok(data)
    }
}
