//! Key files (FORMAT.md §Key files): several passwords open one repository, each through its
//! own key file wrapping the one master key, so a person or tenant can be added or revoked on
//! their own.

use serde::Serialize;

use crate::format::keyfile::{KdfParams, KeyFile};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{KeyId, ObjectKey, ObjectKind};
use crate::repository::Repository;

/// A key file, as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Its id (the BLAKE3 of its bytes).
    pub id: KeyId,
    /// Whether it is the key this session opened the repository with.
    pub current: bool,
    /// `full` or `write-only`.
    pub kind: &'static str,
    /// The host it was made on (in clear in a version 1 key file, sealed in version 2).
    pub host: String,
    /// The user who made it (informational).
    pub user: String,
    /// When it was made (RFC 3339, informational).
    pub created: String,
}

impl Repository {
    /// Adds a key file for another password.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for unusable argon2 parameters; store errors.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        self.require_full("adding a key")?;
        Self::write_key(self.store().as_ref(), self.master(), self.config().version, password, kdf)
    }

    /// Adds a write-only key for `password` (FORMAT.md §5.5, §6): with it a host backs up and
    /// deduplicates against the repository, and opens none of its data, trees or snapshots.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] before format version 3 (whose index objects a write-only key
    /// reads: run `cairn migrate`) or for unusable argon2 parameters; store errors.
    pub fn add_write_only_key(&self, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        self.require_full("adding a key")?;
        if self.config().version < 3 {
            return Err(Error::InvalidArgument(format!(
                "write-only keys need format version 3 (this repository is version {}): run `cairn migrate` first",
                self.config().version
            )));
        }
        Self::write_key(self.store().as_ref(), &self.master().write_only(), self.config().version, password, kdf)
    }

    /// Every readable key file (unreadable ones are left out: `check` names them).
    ///
    /// # Errors
    /// Store errors listing.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        self.require_full("listing keys")?;
        let mut out = Vec::new();
        for info in self.store().list(ObjectKind::Key).map_err(Error::Storage)? {
            let Ok(data) = self.get_verified(info.key) else { continue };
            let Ok(kf) = KeyFile::decode(&data) else { continue };
            let Ok(meta) = kf.meta(self.master()) else { continue };
            let id = KeyId(info.key.id);
            out.push(KeyInfo {
                id,
                current: id == self.key_id(),
                kind: if meta.write_only { "write-only" } else { "full" },
                host: meta.host,
                user: meta.user,
                created: meta.created,
            });
        }
        Ok(out)
    }

    /// The key whose id starts with `prefix`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when none does, [`Error::InvalidArgument`] when several do.
    pub fn find_key(&self, prefix: &str) -> Result<KeyId> {
        let prefix = prefix.to_ascii_lowercase();
        let keys = self.store().list(ObjectKind::Key).map_err(Error::Storage)?;
        let matches: Vec<KeyId> =
            keys.iter().map(|i| KeyId(i.key.id)).filter(|id| id.to_string().starts_with(&prefix)).collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!("key `{prefix}`"))),
            _ => Err(Error::InvalidArgument(format!("key id prefix `{prefix}` matches {} keys", matches.len()))),
        }
    }

    /// Removes a key file; the one that opened this session and the last one are refused.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for the refused cases; [`Error::NotFound`] for an unknown key;
    /// store errors.
    pub fn remove_key(&self, id: KeyId) -> Result<()> {
        self.require_full("removing a key")?;
        if id == self.key_id() {
            return Err(Error::InvalidArgument(
                "refusing to remove the key this session opened the repository with".into(),
            ));
        }
        let keys = self.store().list(ObjectKind::Key).map_err(Error::Storage)?;
        if !keys.iter().any(|k| k.key.id == id.0) {
            return Err(Error::NotFound(format!("key {id}")));
        }
        if keys.len() < 2 {
            return Err(Error::InvalidArgument("refusing to remove the last key".into()));
        }
        let key = ObjectKey::new(ObjectKind::Key, id.0);
        self.store().delete(&key).map_err(Error::store(key))
    }

    /// Rotates the master key (FORMAT.md §5.7): a new generation seals what is written from now
    /// on, and every earlier generation stays to open what was written before. Keeps one key
    /// file, for `password`, holding every generation, and removes every other one: an old key
    /// file holds only old generations, so whoever still has one (or a copy of its key) opens
    /// nothing written after this. Returns the new key's id and the ids removed; the session
    /// goes on with the new key.
    ///
    /// # Errors
    /// [`Error::WriteOnly`]; [`Error::InvalidArgument`] before format version 3 or past
    /// [`crate::foundation::crypto::MAX_GENERATIONS`]; [`Error::Corrupt`] when the new key file
    /// does not open (nothing is removed then); store errors.
    pub fn rotate_key(&mut self, password: &[u8], kdf: KdfParams) -> Result<(KeyId, Vec<KeyId>)> {
        self.require_full("rotating the key")?;
        if self.config().version < 3 {
            return Err(Error::InvalidArgument(format!(
                "key rotation needs format version 3 (this repository is version {}): run `cairn migrate` first",
                self.config().version
            )));
        }
        let rotated = self.master().rotated().map_err(|_| {
            Error::InvalidArgument(format!(
                "a key has at most {} generations",
                crate::foundation::crypto::MAX_GENERATIONS
            ))
        })?;
        let new = Self::write_key(self.store().as_ref(), &rotated, self.config().version, password, kdf)?;
        let key = ObjectKey::new(ObjectKind::Key, new.0);
        let opened = KeyFile::decode(&self.get_verified(key)?).and_then(|kf| kf.unwrap_key(password));
        match opened {
            Ok(master) if *master.to_wrapped() == *rotated.to_wrapped() => {}
            _ => return Err(Error::corrupt(key, "the new key file does not open; nothing was removed")),
        }
        let mut removed = Vec::new();
        for info in self.store().list(ObjectKind::Key).map_err(Error::Storage)? {
            if info.key.id != new.0 {
                self.store().delete(&info.key).map_err(Error::store(info.key))?;
                removed.push(KeyId(info.key.id));
            }
        }
        self.set_master(rotated);
        self.set_key_id(new);
        Ok((new, removed))
    }

    /// Changes the password of the key this session opened the repository with: writes a key
    /// file for `password`, checks that it opens, then removes the old one. Returns the new
    /// key's id; the session goes on with it.
    ///
    /// # Errors
    /// As [`Repository::add_key`]; [`Error::Corrupt`] when the new key file does not open
    /// (the old one is then kept); store errors.
    pub fn change_password(&mut self, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        let new = self.add_key(password, kdf)?;
        let key = ObjectKey::new(ObjectKind::Key, new.0);
        let opened = KeyFile::decode(&self.get_verified(key)?).and_then(|kf| kf.unwrap_key(password));
        match opened {
            Ok(master) if *master.to_wrapped() == *self.master().to_wrapped() => {}
            _ => return Err(Error::corrupt(key, "the new key file does not open; the old password still works")),
        }
        let old = ObjectKey::new(ObjectKind::Key, self.key_id().0);
        self.store().delete(&old).map_err(Error::store(old))?;
        self.set_key_id(new);
        Ok(new)
    }
}
