//! A repository: a store, the master key, and the config (FORMAT.md §Config, §Read and write
//! ordering).
//!
//! [`Repository::open`] tries each key file with the password, then reads and checks the config.
//! It also offers the typed reads everything else builds on: the index, snapshots, blobs, trees.

pub mod index;
pub mod keycache;
pub mod keys;
pub mod parity;
mod read;
pub mod records;
pub mod select;
pub mod session;
pub mod store;
pub mod tenant;
pub mod trees;
pub mod writer;

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use crate::format::config::{Config, FORMAT_VERSION, ObjectLock, check_version};
use crate::format::index::{INDEX_AAD, IndexFile, IndexedPack};
use crate::format::keyfile::{KdfParams, KeyFile, KeyFileError, KeyMeta};
use crate::format::pack::{self, PackEntry, PackSeal};
use crate::format::snapshot::{self, Snapshot};
use crate::foundation::chunk::{CHUNKER_FASTCDC_2020_SEEDED, ChunkerParams, Cutter};
use crate::foundation::crypto::MasterKey;
use crate::foundation::crypto::SALT_LEN;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, IndexId, KeyId, PackId, SnapshotId};
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

/// Readable snapshots (oldest first), and the unreadable ones with their errors.
pub type CheckedSnapshots = (Vec<(SnapshotId, Snapshot)>, Vec<(SnapshotId, Error)>);

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
        // The config and the key files are fetched side by side: one round trip fewer to a
        // distant store.
        let (config_bytes, keys) = std::thread::scope(|s| {
            let keys = s.spawn(|| Self::fetch_keys(&*store));
            let config = store.get(&ObjectKey::CONFIG);
            let keys = keys.join().unwrap_or_else(|_| Err(Error::Internal("key fetch panicked".into())));
            (config, keys)
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
        // While the key is derived (a tenth of a second or more, on purpose), a distant store
        // lists the snapshots and the index, which nearly every command reads next.
        std::thread::scope(|s| {
            s.spawn(|| store.list_ahead(&[ObjectKind::Snapshot, ObjectKind::Index]));
            Self::unlock(&config_bytes, keys, password)
        })
        .map(|(master, config, key_id)| Repository::assemble(with_lock(store, &config), master, config, key_id, None))
    }

    /// Opens the repository in `store` with a master key already unwrapped from key file
    /// `key_id` (by [`keycache`]); `None` if that key file is gone or the config does not open
    /// with the key (another repository now at the same place).
    pub(crate) fn open_with_master(store: Arc<dyn Store>, master: MasterKey, key_id: KeyId) -> Result<Option<Self>> {
        let (config_bytes, keys) = std::thread::scope(|s| {
            let keys = s.spawn(|| store.list(ObjectKind::Key));
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

    /// Loads every index object into one in-memory index.
    ///
    /// # Errors
    /// Store errors and damaged index objects.
    pub fn load_index(&self) -> Result<Index> {
        // A concurrent prune deletes the index objects it supersedes right after writing their
        // replacement: an object listed but gone by the time it is read means "list again".
        let mut attempt: u32 = 0;
        loop {
            match self.load_index_once() {
                Err(Error::Store { cause: StoreError::NotFound(_), .. }) if attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    fn load_index_once(&self) -> Result<Index> {
        let infos = self.store.list(ObjectKind::Index).map_err(Error::Storage)?;
        let objects: Vec<(IndexId, u64)> = infos.iter().map(|i| (IndexId(i.key.id), i.size)).collect();
        match &self.index_cache {
            Some((dir, min_blobs)) => {
                Index::load_cached(&dir.join("table"), *min_blobs, &objects, |id| self.index_plaintext(id))
            }
            None => Index::load(&objects, |id| self.index_plaintext(id)),
        }
    }

    /// Fetches, verifies and decrypts one index object. The stored bytes are freed before it
    /// returns, so only the plaintext stays.
    fn index_plaintext(&self, id: &IndexId) -> Result<Vec<u8>> {
        let key = ObjectKey::new(ObjectKind::Index, id.0);
        let data = self.store.get(&key).map_err(store_err(key))?;
        let open = || self.master.open_meta(&data, INDEX_AAD);
        // Hashing and decrypting each read the whole object: for a large one, on two cores.
        let (digest, plain) =
            if data.len() < 1 << 20 { (Digest::of(&data), open()) } else { rayon::join(|| Digest::of(&data), open) };
        if digest != key.id {
            return Err(Error::corrupt(key, "content does not match its name"));
        }
        plain.map_err(|e| Error::corrupt(format!("index {id}"), e.to_string()))
    }

    /// The names of the index objects in the store now.
    ///
    /// # Errors
    /// Store errors listing.
    pub fn index_ids(&self) -> Result<std::collections::HashSet<IndexId>> {
        Ok(self.store.list(ObjectKind::Index).map_err(Error::Storage)?.into_iter().map(|i| IndexId(i.key.id)).collect())
    }

    /// Every index object, decoded.
    ///
    /// # Errors
    /// Store errors and damaged index objects.
    pub fn index_files(&self) -> Result<Vec<(IndexId, IndexFile)>> {
        let mut attempt: u32 = 0;
        'list: loop {
            let infos = self.store.list(ObjectKind::Index).map_err(Error::Storage)?;
            let mut out = Vec::with_capacity(infos.len());
            for info in infos {
                let id = IndexId(info.key.id);
                match self.get_verified(info.key) {
                    Ok(data) => out.push((id, IndexFile::open(&self.master, &id, &data)?)),
                    // Superseded and deleted by a concurrent prune since the listing.
                    Err(Error::Store { cause: StoreError::NotFound(_), .. }) if attempt < 20 => {
                        attempt += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(attempt)));
                        continue 'list;
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok(out);
        }
    }

    /// Stores an index object.
    ///
    /// # Errors
    /// Store errors.
    pub fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        let bytes = file.seal(&self.master);
        let id = IndexId(Digest::of(&bytes));
        let key = ObjectKey::new(ObjectKind::Index, id.0);
        self.store.put(&key, Bytes::from(bytes)).map_err(store_err(key))?;
        Ok(id)
    }

    /// Stores `packs` as index objects of at most `PACKS_PER_INDEX` (4096) packs each, the first
    /// naming `supersedes` (one object with no pack when there are none, so the old objects are
    /// still superseded). Readers take the union of all objects, so an interruption between two
    /// writes leaves duplicates, never a gap.
    ///
    /// # Errors
    /// Store errors writing.
    pub fn save_index_objects(&self, supersedes: &[IndexId], packs: &[IndexedPack]) -> Result<()> {
        let mut supersedes = supersedes.to_vec();
        for chunk in packs.chunks(PACKS_PER_INDEX) {
            self.save_index(&IndexFile { supersedes: std::mem::take(&mut supersedes), packs: chunk.to_vec() })?;
        }
        if packs.is_empty() && !supersedes.is_empty() {
            self.save_index(&IndexFile { supersedes, packs: vec![] })?;
        }
        Ok(())
    }

    /// Reads a pack's seal and header from the store knowing only its size: the trailing
    /// length, then the salt and the header (small ranged requests, no data).
    ///
    /// # Errors
    /// Store errors; [`Error::Corrupt`] naming the pack.
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<(PackSeal, Vec<PackEntry>)> {
        let key = ObjectKey::new(ObjectKind::Pack, id.0);
        if size < (SALT_LEN + 4) as u64 {
            return Err(Error::corrupt(key, "too short"));
        }
        let tail = self.store.get_range(&key, size - 4..size).map_err(Error::store(key))?;
        let len: [u8; 4] = tail.as_ref().try_into().map_err(|_| Error::corrupt(key, "too short"))?;
        let trailer = pack::split_header_len(len);
        self.read_pack_header_tail(id, size, pack::entries_for_header_len(trailer.header_len), trailer.extra())
    }

    /// Reads a pack's seal and header with two small ranged requests, given its size, the
    /// number of entries the index lists for it and the bytes its seal fields take at its end
    /// ([`PackSeal::tail_extra`]).
    ///
    /// # Errors
    /// Store errors; [`Error::Corrupt`] naming the pack.
    pub fn read_pack_header_tail(
        &self,
        id: &PackId,
        size: u64,
        entries: usize,
        extra: usize,
    ) -> Result<(PackSeal, Vec<PackEntry>)> {
        let key = ObjectKey::new(ObjectKind::Pack, id.0);
        let tail_len = pack::tail_len(entries) + extra as u64;
        if size < tail_len + SALT_LEN as u64 {
            return Err(Error::corrupt(key, "too short for its header"));
        }
        let salt_bytes = self.store.get_range(&key, 0..SALT_LEN as u64).map_err(Error::store(key))?;
        let tail = self.store.get_range(&key, size - tail_len..size).map_err(Error::store(key))?;
        let salt: [u8; SALT_LEN] = salt_bytes.as_ref().try_into().map_err(|_| Error::corrupt(key, "too short"))?;
        let last =
            tail.len().checked_sub(4).and_then(|at| tail.get(at..)).ok_or_else(|| Error::corrupt(key, "too short"))?;
        let trailer = pack::split_header_len([last[0], last[1], last[2], last[3]]);
        let seal = trailer.seal(salt, &tail).ok_or_else(|| Error::corrupt(key, "too short"))?;
        Ok((seal, pack::open_tail(&self.master, id, &seal, &tail, size)?))
    }

    /// Makes sure the storage credentials may delete objects, before an operation that
    /// deletes (forget, prune) changes anything: deletes the name of a session marker no one
    /// wrote. Append-only credentials (a backup host's, docs/PERMISSIONS.md) are refused here,
    /// so such an operation fails cleanly instead of half done.
    ///
    /// # Errors
    /// [`Error::Storage`] with [`StoreError::PermissionDenied`] naming the operation, and other
    /// store errors.
    pub fn ensure_can_delete(&self, operation: &str) -> Result<()> {
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let key = ObjectKey::new(ObjectKind::Session, Digest(id));
        match self.store.delete(&key) {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(StoreError::PermissionDenied(why)) => Err(Error::Storage(StoreError::PermissionDenied(format!(
                "{operation} deletes objects, and these storage credentials may not; nothing was changed. \
                 Run it with the operator's credentials (docs/PERMISSIONS.md). The store said: {why}"
            )))),
            Err(cause) => Err(Error::Store { key, cause }),
        }
    }

    /// Deletes `key` unless object lock still retains it: returns `None` once it is deleted,
    /// or the date it is retained until, without trying (FORMAT.md §7 `object_lock`).
    ///
    /// # Errors
    /// Store errors.
    pub fn delete_unless_held(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>> {
        if self.config.object_lock.is_some() && store::lock::is_locked(key.kind) {
            match self.store.retained_until(key) {
                Ok(Some(until)) if until > jiff::Timestamp::now() => return Ok(Some(until)),
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(cause) => return Err(Error::Store { key: *key, cause }),
            }
        }
        self.store.delete(key).map_err(store_err(*key))?;
        Ok(None)
    }

    /// Extends the retention of `keys` that object lock would release within half its period
    /// to a whole period from now, so what kept snapshots need stays locked while they are
    /// kept (prune calls it for everything it keeps). Returns how many were extended.
    ///
    /// # Errors
    /// Store errors.
    pub fn extend_retention(&self, keys: &[ObjectKey]) -> Result<u64> {
        let Some(lock) = self.config.object_lock else { return Ok(0) };
        let now = jiff::Timestamp::now();
        let half = ObjectLock { seconds: lock.seconds / 2, ..lock }.until(now);
        let keys: Vec<ObjectKey> = keys.iter().filter(|k| store::lock::is_locked(k.kind)).copied().collect();
        let extended = batch::try_map(&keys, batch::in_flight(self.store.as_ref(), 0), |key| {
            let extend = || match self.store.retained_until(key)? {
                Some(until) if until > half => Ok(false),
                _ => self.store.retain(key, lock.mode, lock.until(now)).map(|()| true),
            };
            match extend() {
                // Deleted since it was listed: nothing to keep.
                Err(StoreError::NotFound(_)) => Ok(false),
                other => other.map_err(store_err(*key)),
            }
        })?;
        Ok(extended.into_iter().filter(|&e| e).count() as u64)
    }

    /// Loads one snapshot.
    ///
    /// # Errors
    /// Store errors; damaged snapshots.
    pub fn load_snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        Ok(self.load_snapshot_object(id)?.snapshot)
    }

    /// Loads one snapshot object: the snapshot, and, when the object is damaged but one of its
    /// two copies is intact (format version 2), its bytes as written.
    ///
    /// # Errors
    /// Store errors; damaged snapshots.
    pub fn load_snapshot_object(&self, id: SnapshotId) -> Result<snapshot::Opened> {
        let key = ObjectKey::new(ObjectKind::Snapshot, id.0);
        let data = self.store.get(&key).map_err(store_err(key))?;
        snapshot::open_stored(&self.master, &id, &data)
    }

    /// Snapshot objects whose stored bytes are damaged while one of their two copies is
    /// intact, with their bytes as written (for `check` and `repair snapshots`).
    ///
    /// # Errors
    /// Store errors.
    pub fn damaged_snapshot_copies(&self) -> Result<Vec<(SnapshotId, Vec<u8>)>> {
        let mut out = Vec::new();
        for info in self.store.list(ObjectKind::Snapshot).map_err(Error::Storage)? {
            let id = SnapshotId(info.key.id);
            match self.load_snapshot_object(id) {
                Ok(snapshot::Opened { rebuilt: Some(bytes), .. }) => out.push((id, bytes)),
                Err(e) if e.is_storage_trouble() => return Err(e),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Every readable snapshot, oldest first. A damaged snapshot is left out (see
    /// [`Repository::snapshots_checked`]), so one bad object does not block the others.
    ///
    /// # Errors
    /// Store errors listing.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        Ok(self.snapshots_checked()?.0)
    }

    /// Every snapshot that is readable (oldest first), and the ones that are not, with why.
    ///
    /// # Errors
    /// Store errors listing.
    pub fn snapshots_checked(&self) -> Result<CheckedSnapshots> {
        self.require_full("reading snapshots")?;
        let infos = self.store.list(ObjectKind::Snapshot).map_err(Error::Storage)?;
        let loaded: Mutex<Vec<(SnapshotId, Result<Snapshot>)>> = Mutex::new(Vec::with_capacity(infos.len()));
        batch::for_each(
            &infos,
            batch::in_flight(self.store.as_ref(), 0),
            |info| self.load_snapshot(SnapshotId(info.key.id)),
            |n, got| {
                if let Ok(mut all) = loaded.lock() {
                    all.push((SnapshotId(infos[n].key.id), got));
                }
                Flow::Continue
            },
        );
        let mut out = Vec::with_capacity(infos.len());
        let mut damaged = Vec::new();
        for (id, got) in loaded.into_inner().map_err(|_| Error::Internal("snapshot load lock poisoned".into()))? {
            match got {
                Ok(s) => out.push((id, s)),
                // Forgotten by a concurrent `forget` since the listing.
                Err(e) if e.is_missing_object() => {}
                // Not a finding about the snapshot: the store could not be read.
                Err(e) if e.is_storage_trouble() => return Err(e),
                Err(e) => damaged.push((id, e)),
            }
        }
        out.sort_by(|a, b| Snapshot::order((&a.0, &a.1), (&b.0, &b.1)));
        damaged.sort_by_key(|(id, _)| *id);
        Ok((out, damaged))
    }

    /// Every snapshot, failing on the first damaged one: for operations (prune) that must not
    /// act without knowing everything the snapshots reference.
    ///
    /// # Errors
    /// Store errors; damaged snapshots.
    pub fn snapshots_strict(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let (ok, damaged) = self.snapshots_checked()?;
        match damaged.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(ok),
        }
    }
}

/// What unit tests across the crate build on: an in-memory repository with a fast key, and a
/// snapshot of a root tree.
#[cfg(test)]
pub(crate) mod testing {
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::blob::BlobKind;
    use crate::format::keyfile::KdfParams;
    use crate::foundation::compress::Codec;
    use crate::foundation::id::BlobId;
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
        let init =
            InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
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
}
