//! Key files: the master key wrapped under a password (FORMAT.md §Key files).
//!
//! The password is stretched with argon2id (parameters and salt stored in the file) into a
//! 32-byte key-encryption key, which seals the master key with AES-256-GCM. Several key files may
//! wrap the same master key: one per person or tenant, each removable on its own.
//!
//! Version 2 key files keep who made the key and when (host, user, time) sealed under the
//! master key, bound to the key file's wrapped key, instead of in clear (FORMAT.md §6).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::foundation::crypto::{CryptoError, MasterKey, SealKey, random_salt};

/// Version of the key file layout written in format version 2 repositories (version 1 ones
/// get layout 1).
pub const KEYFILE_VERSION: u32 = 2;
/// The associated data of the wrapped master key, in both layouts (so a version 1 key file
/// becomes a version 2 one without its password).
const AAD: &[u8] = b"cairn key file v1";
/// The associated data of the sealed `meta` of a version 2 key file, followed by the BLAKE3
/// of the wrapped key's bytes.
const META_AAD: &[u8] = b"cairn key meta v2";

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended setting (§4, for when 2 GiB
    /// is too much). The lanes are filled side by side on a thread per core: opening a
    /// repository took 0.15 s with one lane and 0.08-0.09 s with four on two cores. An
    /// attacker's cost per guess does not depend on the lanes.
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 4 }
    }
}

impl KdfParams {
    /// Bounds on parameters read from a key file, so a hostile file cannot make us allocate
    /// terabytes or spin for hours.
    fn check(&self) -> Result<(), KeyFileError> {
        if !(8..=4 * 1024 * 1024).contains(&self.memory_kib)
            || !(1..=64).contains(&self.iterations)
            || !(1..=64).contains(&self.parallelism)
        {
            return Err(KeyFileError::Invalid("argon2 parameters out of range".into()));
        }
        Ok(())
    }
}

/// A key file as stored (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Layout version: 1, or [`KEYFILE_VERSION`].
    pub version: u32,
    /// Always `"argon2id"`.
    pub kdf: String,
    /// argon2id costs.
    pub params: KdfParams,
    /// argon2id salt, hex.
    pub salt: String,
    /// The master key sealed under the derived key, hex of `nonce ‖ ciphertext ‖ tag`.
    pub wrapped: String,
    /// Layout 1: who created it (in clear, informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Layout 1: who created it (in clear, informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Layout 1: when (RFC 3339, in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Layout 2: hex of [`KeyMeta`] as a sealed object under the master key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
}

/// Who made a key file, where and when, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyMeta {
    /// The host it was made on.
    pub host: String,
    /// The user who made it.
    pub user: String,
    /// When (RFC 3339).
    pub created: String,
    /// It wraps a write-only key (FORMAT.md §6); absent for a full key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write_only: bool,
}

/// A key file could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The password does not unwrap this key file.
    #[error("wrong password")]
    WrongPassword,
    /// The file is malformed.
    #[error("invalid key file: {0}")]
    Invalid(String),
    /// A newer layout.
    #[error("key file version {0} is not supported")]
    Version(u32),
}

fn derive_kek(password: &[u8], salt: &[u8], params: KdfParams) -> Result<SealKey, KeyFileError> {
    params.check()?;
    let p = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
        .map_err(|e| KeyFileError::Invalid(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut kek = Zeroizing::new([0u8; 32]);
    argon.hash_password_into(password, salt, kek.as_mut()).map_err(|e| KeyFileError::Invalid(e.to_string()))?;
    Ok(SealKey::new(*kek))
}

fn meta_aad(wrapped_hex: &str) -> Vec<u8> {
    let mut aad = META_AAD.to_vec();
    aad.extend_from_slice(blake3::hash(wrapped_hex.as_bytes()).as_bytes());
    aad
}

impl KeyFile {
    /// Wraps `master` under `password`, as layout 2 (`meta` sealed) when `sealed_meta`, else
    /// as layout 1 (host, user and time in clear, for a version 1 repository).
    ///
    /// # Errors
    /// [`KeyFileError::Invalid`] for unusable argon2 parameters.
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        meta: &KeyMeta,
        sealed_meta: bool,
    ) -> Result<Self, KeyFileError> {
        let salt = random_salt();
        let kek = derive_kek(password, &salt, params)?;
        let wrapped = kek.seal(&master.to_wrapped(), AAD);
        let v1 = KeyFile {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped),
            host: Some(meta.host.clone()),
            user: Some(meta.user.clone()),
            created: Some(meta.created.clone()),
            meta: None,
        };
        Ok(if sealed_meta { v1.upgrade(master, meta) } else { v1 })
    }

    /// This key file as layout 2: the same wrapped key (no password needed), with `meta`
    /// sealed under `master` instead of in clear.
    #[must_use]
    pub fn upgrade(&self, master: &MasterKey, meta: &KeyMeta) -> Self {
        let mut plain = Vec::new();
        let _ = ciborium::into_writer(meta, &mut plain);
        KeyFile {
            version: KEYFILE_VERSION,
            host: None,
            user: None,
            created: None,
            meta: Some(hex::encode(master.seal_object(&plain, &meta_aad(&self.wrapped)))),
            ..self.clone()
        }
    }

    /// Who made the key and when: in clear in layout 1, opened with `master` in layout 2.
    ///
    /// # Errors
    /// [`KeyFileError::Invalid`] when the fields are missing or the sealed ones do not open
    /// (another repository's key, or damage).
    pub fn meta(&self, master: &MasterKey) -> Result<KeyMeta, KeyFileError> {
        self.check_layout()?;
        if let (Some(host), Some(user), Some(created)) = (&self.host, &self.user, &self.created) {
            return Ok(KeyMeta { host: host.clone(), user: user.clone(), created: created.clone(), write_only: false });
        }
        let sealed = hex::decode(self.meta.as_deref().unwrap_or_default())
            .map_err(|e| KeyFileError::Invalid(format!("meta: {e}")))?;
        let plain = master
            .open_object(&sealed, &meta_aad(&self.wrapped))
            .map_err(|e| KeyFileError::Invalid(format!("meta: {e}")))?;
        ciborium::from_reader(plain.as_slice()).map_err(|e| KeyFileError::Invalid(format!("meta: {e}")))
    }

    /// The fields of its layout are there: host, user and created in layout 1, meta in 2.
    fn check_layout(&self) -> Result<(), KeyFileError> {
        let clear = self.host.is_some() && self.user.is_some() && self.created.is_some();
        match self.version {
            1 if clear && self.meta.is_none() => Ok(()),
            2 if self.meta.is_some() && self.host.is_none() && self.user.is_none() && self.created.is_none() => Ok(()),
            1 | 2 => Err(KeyFileError::Invalid(format!("fields missing or misplaced for layout {}", self.version))),
            v => Err(KeyFileError::Version(v)),
        }
    }

    /// Unwraps the master key.
    ///
    /// # Errors
    /// [`KeyFileError::WrongPassword`] when authentication fails, other variants when the file is
    /// malformed.
    pub fn unwrap_key(&self, password: &[u8]) -> Result<MasterKey, KeyFileError> {
        self.check_layout()?;
        if self.kdf != "argon2id" {
            return Err(KeyFileError::Invalid(format!("unknown kdf `{}`", self.kdf)));
        }
        let salt = hex::decode(&self.salt).map_err(|e| KeyFileError::Invalid(e.to_string()))?;
        if salt.len() < 8 {
            return Err(KeyFileError::Invalid("salt too short".into()));
        }
        let wrapped = hex::decode(&self.wrapped).map_err(|e| KeyFileError::Invalid(e.to_string()))?;
        let kek = derive_kek(password, &salt, self.params)?;
        let plain = Zeroizing::new(kek.open(&wrapped, AAD).map_err(|e| match e {
            CryptoError::Authentication | CryptoError::WriteOnly => KeyFileError::WrongPassword,
            CryptoError::TooShort(_) => KeyFileError::Invalid("wrapped key too short".into()),
        })?);
        MasterKey::from_wrapped(&plain).ok_or_else(|| KeyFileError::Invalid("wrapped key has the wrong length".into()))
    }

    /// Serialises to the stored JSON bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses stored bytes.
    ///
    /// # Errors
    /// [`KeyFileError::Invalid`] on malformed JSON.
    pub fn decode(data: &[u8]) -> Result<Self, KeyFileError> {
        serde_json::from_slice(data).map_err(|e| KeyFileError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    fn meta() -> KeyMeta {
        KeyMeta { host: "h".into(), user: "u".into(), created: "t".into(), write_only: false }
    }

    #[test]
    fn wrap_unwrap() {
        let m = MasterKey::generate();
        for sealed in [false, true] {
            let kf = KeyFile::wrap(&m, b"secret", FAST, &meta(), sealed).unwrap();
            let decoded = KeyFile::decode(&kf.encode()).unwrap();
            assert_eq!(decoded.version, if sealed { 2 } else { 1 });
            let back = decoded.unwrap_key(b"secret").unwrap();
            assert_eq!(back.as_bytes(), m.as_bytes());
            assert!(!back.is_write_only());
            assert_eq!(decoded.meta(&m).unwrap(), meta());
            assert!(matches!(kf.unwrap_key(b"wrong"), Err(KeyFileError::WrongPassword)));
        }
    }

    /// Layout 2 keeps host, user and time out of the clear, bound to its wrapped key; a layout
    /// 1 file upgrades without its password and still opens with it.
    #[test]
    fn sealed_meta() {
        let m = MasterKey::generate();
        let v1 = KeyFile::wrap(&m, b"pw", FAST, &meta(), false).unwrap();
        let v2 = v1.upgrade(&m, &meta());
        let text = String::from_utf8(v2.encode()).unwrap();
        assert!(!text.contains("\"host\"") && !text.contains("\"created\""), "{text}");
        assert_eq!(v2.unwrap_key(b"pw").unwrap().as_bytes(), m.as_bytes());
        assert_eq!(v2.meta(&m).unwrap(), meta());
        assert!(v2.meta(&MasterKey::generate()).is_err(), "another master key does not open it");
        let other = KeyFile::wrap(&m, b"pw2", FAST, &meta(), true).unwrap();
        let swapped = KeyFile { meta: other.meta.clone(), ..v2.clone() };
        assert!(swapped.meta(&m).is_err(), "meta moved to another key file does not open");
        let mixed = KeyFile { host: Some("h".into()), ..v2 };
        assert!(matches!(mixed.unwrap_key(b"pw"), Err(KeyFileError::Invalid(_))));
    }

    #[test]
    fn hostile_params_rejected() {
        let m = MasterKey::generate();
        let mut kf = KeyFile::wrap(&m, b"pw", FAST, &meta(), true).unwrap();
        kf.params.memory_kib = u32::MAX;
        assert!(matches!(kf.unwrap_key(b"pw"), Err(KeyFileError::Invalid(_))));
    }
}
