//! The key cache: a repository opened once with its password opens again without deriving the
//! key (Argon2id, a tenth of a second or more on purpose), for commands run once per small
//! unit of work: `archive_command` runs `cairn pg wal-push` once per WAL segment.
//!
//! The cache is a directory on a memory file system (`$XDG_RUNTIME_DIR/cairn-keys`, else
//! `/dev/shm/cairn-keys-<uid>`), private to its owner and refused if it is not: it is gone at
//! reboot and never on a disk. It holds a random 32-byte secret and, per repository and
//! password, an entry: the id of the key file the password opened and the master key sealed
//! (AES-256-GCM) under `keyed_blake3(secret, password ‖ location ‖ key id)`. An entry opens
//! only with the same password; it is used only while its key file is still in the repository
//! (removing a key, or changing the password, ends it); and the config must still open with
//! the master key it gives.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::foundation::crypto::{MasterKey, SealKey};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, KeyId};
use crate::foundation::private;
use crate::repository::Repository;
use crate::repository::store::Store;

const SECRET: &str = "secret";
const ENTRY_AAD: &[u8] = b"cairn key cache entry v1";

/// A key cache directory.
#[derive(Debug, Clone)]
pub struct KeyCache {
    dir: PathBuf,
}

impl KeyCache {
    /// The default place: `$XDG_RUNTIME_DIR/cairn-keys`, else `/dev/shm/cairn-keys-<uid>`;
    /// `None` where neither memory file system exists.
    #[must_use]
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(run).join("cairn-keys"));
        }
        let shm = Path::new("/dev/shm");
        shm.is_dir().then(|| shm.join(format!("cairn-keys-{}", euid())))
    }

    /// The cache in `dir`, created private to this user if missing.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be made, or if it exists but another user owns it, others
    /// may read it, or it is a symbolic link.
    pub fn open(dir: &Path) -> Result<Self> {
        let io = |e: std::io::Error| Error::Io { path: dir.to_path_buf(), cause: e };
        // Made if missing, never loosened or tightened if present: a cache others could open
        // may have been read, and is refused.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(io)?;
        let meta = std::fs::symlink_metadata(dir).map_err(io)?;
        let me = euid();
        if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the key cache must be a directory this user owns and no one else can open (mode 0700)",
            )));
        }
        Ok(KeyCache { dir: dir.to_path_buf() })
    }

    fn secret(&self) -> Result<[u8; 32]> {
        let path = self.dir.join(SECRET);
        let io = |e: std::io::Error| Error::Io { path: path.clone(), cause: e };
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&bytes);
                return Ok(s);
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
        private::write_file(&path, &fresh, 0o600).map_err(io)?;
        // Two processes may have raced: whichever secret landed is the one.
        let bytes = std::fs::read(&path).map_err(io)?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| io(std::io::Error::other("the key cache secret is damaged")))
    }

    fn entry(&self, secret: &[u8; 32], location: &str, password: &[u8]) -> PathBuf {
        let mut h = blake3::Hasher::new_keyed(secret);
        h.update(b"entry name\0");
        h.update(location.as_bytes());
        h.update(b"\0");
        h.update(password);
        self.dir.join(hex::encode(&h.finalize().as_bytes()[..16]))
    }

    fn seal_key(secret: &[u8; 32], location: &str, password: &[u8], key_id: &KeyId) -> SealKey {
        let mut h = blake3::Hasher::new_keyed(secret);
        h.update(b"entry key\0");
        h.update(password);
        h.update(b"\0");
        h.update(location.as_bytes());
        h.update(&key_id.0.0);
        SealKey::new(*h.finalize().as_bytes())
    }
}

/// This process's user (the owner of its `/proc/self`).
fn euid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

impl Repository {
    /// Opens the repository in `store` with `password` as [`Repository::open`] does, but
    /// through `cache`: the key is derived only when the cache has no entry for this
    /// repository and password (and one is left for the next time).
    ///
    /// # Errors
    /// As [`Repository::open`]; [`Error::Io`] if the cache cannot be read or written.
    pub fn open_cached(store: Arc<dyn Store>, password: &[u8], cache: &KeyCache) -> Result<Self> {
        let location = store.describe();
        let secret = cache.secret()?;
        let path = cache.entry(&secret, &location, password);
        if let Ok(bytes) = std::fs::read(&path)
            && bytes.len() > 32
        {
            let key_id = KeyId(Digest(bytes[..32].try_into().unwrap_or([0; 32])));
            let opened = KeyCache::seal_key(&secret, &location, password, &key_id).open(&bytes[32..], ENTRY_AAD);
            if let Ok(mut plain) = opened
                && let Some(master) = MasterKey::from_wrapped(&plain)
            {
                zeroize::Zeroize::zeroize(&mut plain);
                if let Some(repo) = Self::open_with_master(Arc::clone(&store), master, key_id)? {
                    return Ok(repo);
                }
            }
            // Stale (its key file is gone) or unreadable: derive again, and replace it.
            let _ = std::fs::remove_file(&path);
        }
        let repo = Self::open(store, password)?;
        let key_id = repo.key_id();
        let mut entry = key_id.0.0.to_vec();
        entry.extend_from_slice(
            &KeyCache::seal_key(&secret, &location, password, &key_id).seal(&repo.master().to_wrapped(), ENTRY_AAD),
        );
        private::write_file(&path, &entry, 0o600).map_err(|e| Error::Io { path, cause: e })?;
        Ok(repo)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::foundation::id::{ObjectKey, ObjectKind};
    use crate::repository::testing::memory_repo;

    fn damage_key_files(store: &dyn Store) {
        for info in store.list(ObjectKind::Key).unwrap() {
            store.delete(&info.key).unwrap();
            store.put(&info.key, Bytes::from_static(b"not a key file")).unwrap();
        }
    }

    #[test]
    fn a_cached_key_opens_without_the_key_file_and_only_with_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KeyCache::open(&dir.path().join("keys")).unwrap();
        let repo = memory_repo("keycache-a");
        let store = Arc::clone(repo.store());
        let first = Repository::open_cached(Arc::clone(&store), b"password", &cache).unwrap();
        // With its key file unreadable, only the cache can open the repository now: the second
        // open proves the key was not derived again.
        damage_key_files(&*store);
        assert!(Repository::open(Arc::clone(&store), b"password").is_err());
        let second = Repository::open_cached(Arc::clone(&store), b"password", &cache).unwrap();
        assert_eq!(second.master().as_bytes(), first.master().as_bytes());
        assert!(matches!(
            Repository::open_cached(Arc::clone(&store), b"wrong", &cache).err(),
            Some(Error::WrongPassword | Error::Corrupt { .. })
        ));
    }

    #[test]
    fn an_entry_ends_with_its_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KeyCache::open(&dir.path().join("keys")).unwrap();
        let repo = memory_repo("keycache-b");
        let store = Arc::clone(repo.store());
        Repository::open_cached(Arc::clone(&store), b"password", &cache).unwrap();
        let key = ObjectKey::new(ObjectKind::Key, repo.key_id().0);
        store.delete(&key).unwrap();
        let e = Repository::open_cached(Arc::clone(&store), b"password", &cache).err().unwrap();
        assert!(matches!(e, Error::NotFound(_) | Error::WrongPassword), "{e}");
    }

    #[test]
    fn a_cache_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        KeyCache::open(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = KeyCache::open(&path).unwrap_err();
        assert!(e.to_string().contains("0700"), "{e}");
        assert_eq!(std::fs::metadata(path.join(SECRET)).map(|m| m.mode() & 0o777).ok(), None, "no secret yet");
    }
}
