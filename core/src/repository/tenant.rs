//! Tenants (FORMAT.md §14d): each tenant's backups live in a repository of its own, nested in
//! the repository under `tenants/<id>/`, with its own master key. That key is kept in one place
//! only, the tenant key object, sealed under the repository's master key.
//!
//! So a tenant's data is sealed under its own keys and deduplicated only within the tenant: its
//! blob ids and chunk boundaries are keyed by its own master key, and no chunk is shared with
//! another tenant. Shredding a tenant ([`Repository::shred_tenant`]) deletes its key object
//! first. Nothing sealed under that key can be opened after that, by any key. Then every object
//! of its repository is deleted wherever the storage allows.

use bytes::Bytes;
use serde::Serialize;

use crate::format::config::Config;
use crate::format::config::check_version;
use crate::format::tenant::{self, TENANT_VERSION, TenantKey};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, KeyId, ObjectKey, ObjectKind};
use crate::repository::Repository;
use crate::repository::store::StoreError;

/// The folder the tenants' repositories are nested in.
pub const TENANTS_DIR: &str = "tenants";

/// Every kind of object a tenant's repository may hold, besides its config.
const TENANT_KINDS: [ObjectKind; 9] = [
    ObjectKind::Snapshot,
    ObjectKind::Index,
    ObjectKind::Pack,
    ObjectKind::Parity,
    ObjectKind::Garbage,
    ObjectKind::Session,
    ObjectKind::Record,
    ObjectKind::Wal,
    ObjectKind::Key,
];

/// A tenant, as `tenant list` shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantInfo {
    /// Its name.
    pub name: String,
    /// The name of its key object and of its folder under `tenants/`.
    pub id: Digest,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// What shredding a tenant did in one repository.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Shredded {
    /// The tenant's name.
    pub tenant: String,
    /// Its key object was there and is now gone: nothing of the tenant can be opened.
    pub key_destroyed: bool,
    /// When the key was destroyed.
    pub key_destroyed_at: Option<jiff::Timestamp>,
    /// Objects of the tenant's repository deleted, and their bytes.
    pub objects_deleted: u64,
    /// Bytes of those objects.
    pub bytes_deleted: u64,
    /// Objects the storage refused to delete (kept, unreadable), with why.
    pub held: Vec<(String, String)>,
    /// When the last object was deleted; `None` while some are held.
    pub bytes_deleted_at: Option<jiff::Timestamp>,
}

impl Repository {
    /// The tenant this repository belongs to, for a tenant's repository.
    #[must_use]
    pub fn tenant_name(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Opens tenant `name`'s repository.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a tenant never made here (or shredded); [`Error::Corrupt`] for a
    /// damaged key or config; store errors.
    pub fn open_tenant(&self, name: &str) -> Result<Repository> {
        let key = self.tenant_key_object(name)?;
        match self.read_tenant_key(&key)? {
            Some(t) => self.nested(&t, false),
            None => Err(Error::NotFound(format!(
                "tenant `{name}` in {} (never made there, or shredded; make one with `cairn tenant add`)",
                self.store.describe()
            ))),
        }
    }

    /// Opens tenant `name`'s repository, making it first if it does not exist yet: a new key,
    /// and a config with this repository's settings. Two hosts making one tenant at once end
    /// up with the same one.
    ///
    /// # Errors
    /// As [`Repository::open_tenant`]; an invalid name.
    pub fn add_tenant(&self, name: &str) -> Result<Repository> {
        let key = self.tenant_key_object(name)?;
        if let Some(t) = self.read_tenant_key(&key)? {
            return self.nested(&t, true);
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let fresh = TenantKey {
            version: TENANT_VERSION,
            name: name.to_string(),
            key: bytes,
            created: jiff::Timestamp::now().to_string(),
        };
        match self.store.put(&key, Bytes::from(fresh.seal_stored(&self.master))) {
            Ok(()) => self.nested(&fresh, true),
            // Another host made it first: use theirs.
            Err(StoreError::AlreadyExists) => match self.read_tenant_key(&key)? {
                Some(t) => self.nested(&t, true),
                None => Err(Error::corrupt(key, "was made and deleted while being made here")),
            },
            Err(e) => Err(Error::store(key)(e)),
        }
    }

    /// Every tenant whose key opens, by name.
    ///
    /// # Errors
    /// Store errors listing; a damaged key object.
    pub fn tenants(&self) -> Result<Vec<TenantInfo>> {
        let mut out = Vec::new();
        for info in self.store.list(ObjectKind::Tenant).map_err(Error::Storage)? {
            if let Some(t) = self.read_tenant_key(&info.key)? {
                out.push(TenantInfo { name: t.name.clone(), id: info.key.id, created: t.created.clone() });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Crypto-shreds tenant `name`: deletes its key, checks that it is gone, then deletes every
    /// object of its repository the storage lets it delete. Running it again finishes what an
    /// interrupted run left: the folder is found from the name, not from the key.
    ///
    /// # Errors
    /// The key cannot be deleted, or is still there after deletion (nothing is shredded then);
    /// store errors listing.
    pub fn shred_tenant(&self, name: &str) -> Result<Shredded> {
        let key = self.tenant_key_object(name)?;
        let mut out = Shredded { tenant: name.to_string(), ..Shredded::default() };
        let existed = match self.store.get(&key) {
            Ok(_) => true,
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(Error::store(key)(e)),
        };
        if existed {
            self.store.delete(&key).map_err(Error::store(key))?;
            match self.store.get(&key) {
                Err(StoreError::NotFound(_)) => {}
                Ok(_) => return Err(Error::corrupt(key, "is still there after it was deleted: nothing was shredded")),
                Err(e) => return Err(Error::store(key)(e)),
            }
            out.key_destroyed = true;
            out.key_destroyed_at = Some(jiff::Timestamp::now());
        }
        let store = self.store.nested(&nested_dir(&key.id)).map_err(Error::Storage)?;
        let mut objects: Vec<_> = Vec::new();
        for kind in TENANT_KINDS {
            objects.extend(store.list(kind).map_err(Error::Storage)?);
        }
        for info in objects {
            match store.delete(&info.key) {
                Ok(()) => {
                    out.objects_deleted += 1;
                    out.bytes_deleted += info.size;
                }
                Err(e) => out.held.push((info.key.to_string(), e.to_string())),
            }
        }
        match store.get(&ObjectKey::CONFIG) {
            Ok(data) => match store.delete(&ObjectKey::CONFIG) {
                Ok(()) => {
                    out.objects_deleted += 1;
                    out.bytes_deleted += data.len() as u64;
                }
                Err(e) => out.held.push(("config".into(), e.to_string())),
            },
            Err(StoreError::NotFound(_)) => {}
            Err(e) => out.held.push(("config".into(), e.to_string())),
        }
        if out.held.is_empty() {
            if let Some(root) = store.local_root() {
                remove_empty_dirs(root);
            }
            out.bytes_deleted_at = Some(jiff::Timestamp::now());
        }
        Ok(out)
    }

    fn tenant_key_object(&self, name: &str) -> Result<ObjectKey> {
        if self.tenant.is_some() {
            return Err(Error::InvalidArgument("a tenant's repository holds no tenants of its own".into()));
        }
        tenant::check_name(name).map_err(Error::InvalidArgument)?;
        let id = self.master.tenant_id(name).map_err(|e| Error::crypto(format!("tenant `{name}`"), e))?;
        Ok(ObjectKey::new(ObjectKind::Tenant, id))
    }

    fn read_tenant_key(&self, key: &ObjectKey) -> Result<Option<TenantKey>> {
        Ok(self.read_tenant_key_checked(key)?.map(|(t, _)| t))
    }

    /// A tenant key and whether one of its two copies is damaged; `None` when there is none.
    fn read_tenant_key_checked(&self, key: &ObjectKey) -> Result<Option<(TenantKey, bool)>> {
        match self.store.get(key) {
            Ok(data) => TenantKey::open_stored(&self.master, key, &data).map(Some),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(Error::store(*key)(e)),
        }
    }

    /// Checks every tenant key (for `check`): the ones that do not open, with why (every
    /// backup of that tenant is lost), and the ones with a damaged copy (nothing is lost; `cairn
    /// tenant repair` writes it whole again).
    ///
    /// # Errors
    /// Store errors listing or reading.
    pub fn check_tenant_keys(&self) -> Result<Vec<(ObjectKey, String)>> {
        let mut problems = Vec::new();
        for info in self.store.list(ObjectKind::Tenant).map_err(Error::Storage)? {
            match self.read_tenant_key_checked(&info.key) {
                Ok(Some((t, true))) => problems.push((
                    info.key,
                    format!(
                        "one of its two copies is damaged, the other is intact: no backup of tenant `{}` is lost (run `cairn tenant repair`)",
                        t.name
                    ),
                )),
                Ok(_) => {}
                Err(e) if e.is_storage_trouble() => return Err(e),
                Err(e) => problems.push((info.key, format!("{e}: every backup of this tenant is lost"))),
            }
        }
        Ok(problems)
    }

    /// Writes every tenant key with a damaged copy whole again, from its intact copy. Returns
    /// the names of the tenants repaired.
    ///
    /// # Errors
    /// Store errors.
    pub fn repair_tenant_keys(&self) -> Result<Vec<String>> {
        let mut repaired = Vec::new();
        for info in self.store.list(ObjectKind::Tenant).map_err(Error::Storage)? {
            if let Ok(Some((t, true))) = self.read_tenant_key_checked(&info.key) {
                self.store
                    .replace(&info.key, Bytes::from(t.seal_stored(&self.master)))
                    .map_err(Error::store(info.key))?;
                repaired.push(t.name.clone());
            }
        }
        Ok(repaired)
    }

    /// The tenant repository `t` holds the key of; its config is written first when `create`.
    fn nested(&self, t: &TenantKey, create: bool) -> Result<Repository> {
        let id = self.master.tenant_id(&t.name).map_err(|e| Error::crypto(format!("tenant `{}`", t.name), e))?;
        let store = self.store.nested(&nested_dir(&id)).map_err(Error::Storage)?;
        let master = t.master();
        let config = match store.get(&ObjectKey::CONFIG) {
            Ok(bytes) => Some(bytes),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(Error::store(ObjectKey::CONFIG)(e)),
        };
        let config = match config {
            Some(bytes) => {
                check_version(Config::stored_version(&bytes)?)?;
                Config::open(&master, &bytes)?
            }
            None if create => {
                let mut fresh = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
                let config = Config { id: Digest(fresh), ..self.config.clone() };
                match store.put(&ObjectKey::CONFIG, Bytes::from(config.seal(&master))) {
                    Ok(()) => config,
                    Err(StoreError::AlreadyExists) => {
                        Config::open(&master, &store.get(&ObjectKey::CONFIG).map_err(Error::store(ObjectKey::CONFIG))?)?
                    }
                    Err(e) => return Err(Error::store(ObjectKey::CONFIG)(e)),
                }
            }
            None => {
                return Err(Error::NotFound(format!(
                    "the repository of tenant `{}` (its key is there, its config is not: run `cairn tenant add {}`)",
                    t.name, t.name
                )));
            }
        };
        let master = master.for_version(config.version);
        Ok(Repository::assemble(store, master, config, KeyId(id), Some(t.name.clone())))
    }
}

/// Where tenant `id`'s repository is nested.
fn nested_dir(id: &Digest) -> String {
    format!("{TENANTS_DIR}/{}", id.to_hex())
}

/// Removes the empty directories under `root`, and `root` if it ends up empty.
fn remove_empty_dirs(root: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(root);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::keyfile::KdfParams;
    use crate::repository::InitOptions;

    fn local() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("repo");
        let options =
            InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..InitOptions::default() };
        let repo = Repository::init_url(url.to_str().unwrap(), b"pw", &options).unwrap();
        (dir, repo)
    }

    #[test]
    fn a_tenant_is_made_once_and_opened_by_name() {
        let (_dir, repo) = local();
        assert!(matches!(repo.open_tenant("acme"), Err(Error::NotFound(_))));
        let a = repo.add_tenant("acme").unwrap();
        let again = repo.add_tenant("acme").unwrap();
        let opened = repo.open_tenant("acme").unwrap();
        assert_eq!(a.config().id, again.config().id);
        assert_eq!(a.config().id, opened.config().id);
        assert_ne!(a.config().id, repo.config().id);
        assert_eq!(opened.tenant_name(), Some("acme"));
        // Its own keys: nothing of the parent's opens its objects, and ids differ.
        assert_ne!(a.master().blob_id(b"x"), repo.master().blob_id(b"x"));
        assert_ne!(a.master().chunker_seed(), repo.master().chunker_seed());
        let names: Vec<String> = repo.tenants().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["acme"]);
        assert!(a.add_tenant("nested").is_err(), "a tenant holds no tenants");
    }

    #[test]
    fn shredding_destroys_the_key_then_the_objects_and_can_be_run_again() {
        let (dir, repo) = local();
        let a = repo.add_tenant("acme").unwrap();
        let b = repo.add_tenant("globex").unwrap();
        let id = ObjectKey::new(ObjectKind::Record, Digest::of(b"r"));
        a.store().put(&id, Bytes::from_static(b"sealed under acme's key")).unwrap();
        let s = repo.shred_tenant("acme").unwrap();
        assert!(s.key_destroyed);
        assert_eq!(s.objects_deleted, 2, "the record and the config");
        assert!(s.held.is_empty() && s.bytes_deleted_at.is_some());
        assert!(matches!(repo.open_tenant("acme"), Err(Error::NotFound(_))));
        let acme_dir = dir.path().join("repo").join(nested_dir(&repo.master().tenant_id("acme").unwrap()));
        assert!(!acme_dir.exists(), "{} is left", acme_dir.display());
        // The other tenant is untouched.
        assert_eq!(repo.open_tenant("globex").unwrap().config().id, b.config().id);
        let again = repo.shred_tenant("acme").unwrap();
        assert!(!again.key_destroyed && again.objects_deleted == 0);
    }

    /// A store that refuses to delete packs, as object lock or delete-denied credentials do.
    struct Locked(std::sync::Arc<dyn crate::repository::store::Store>);

    impl crate::repository::store::Store for Locked {
        fn put_with(
            &self,
            key: &ObjectKey,
            data: Bytes,
            hints: crate::repository::store::PutHints<'_>,
        ) -> std::result::Result<(), StoreError> {
            self.0.put_with(key, data, hints)
        }
        fn replace(&self, key: &ObjectKey, data: Bytes) -> std::result::Result<(), StoreError> {
            self.0.replace(key, data)
        }
        fn get(&self, key: &ObjectKey) -> std::result::Result<Bytes, StoreError> {
            self.0.get(key)
        }
        fn get_range(&self, key: &ObjectKey, range: std::ops::Range<u64>) -> std::result::Result<Bytes, StoreError> {
            self.0.get_range(key, range)
        }
        fn list(&self, kind: ObjectKind) -> std::result::Result<Vec<crate::repository::store::ObjectInfo>, StoreError> {
            self.0.list(kind)
        }
        fn delete(&self, key: &ObjectKey) -> std::result::Result<(), StoreError> {
            if key.kind == ObjectKind::Pack {
                return Err(StoreError::Permanent("retained by object lock until 2027-01-01".into()));
            }
            self.0.delete(key)
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn nested(
            &self,
            dir: &str,
        ) -> std::result::Result<std::sync::Arc<dyn crate::repository::store::Store>, StoreError> {
            Ok(std::sync::Arc::new(Locked(self.0.nested(dir)?)))
        }
    }

    #[test]
    fn objects_the_storage_keeps_are_named_as_held_and_the_tenant_is_shredded_all_the_same() {
        let mem = crate::repository::store::open("memory://tenant-locked", &Default::default()).unwrap();
        let options =
            InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..InitOptions::default() };
        let repo = Repository::init(std::sync::Arc::new(Locked(mem)), b"pw", &options).unwrap();
        let t = repo.add_tenant("acme").unwrap();
        let pack = ObjectKey::new(ObjectKind::Pack, Digest::of(b"p"));
        t.store().put(&pack, Bytes::from_static(b"sealed under acme's key")).unwrap();
        let s = repo.shred_tenant("acme").unwrap();
        assert!(s.key_destroyed);
        assert_eq!(s.held.len(), 1, "{:?}", s.held);
        assert!(s.held[0].1.contains("object lock"), "{:?}", s.held);
        assert_eq!(s.bytes_deleted_at, None, "bytes are held, so not all deleted");
        assert!(matches!(repo.open_tenant("acme"), Err(Error::NotFound(_))), "the key is gone all the same");
    }
}
