//! Key files: the master key wrapped under a password (FORMAT.md §Key files).
//!
//! The password is stretched with argon2id (parameters and salt stored in the file) into a
//! 32-byte key-encryption key, which seals the master key with AES-256-GCM. Several key files may
//! wrap the same master key: one per person or tenant, each removable on its own.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::foundation::crypto::{CryptoError, MasterKey, SealKey, random_salt};

/// Version of the key file layout.
pub const KEYFILE_VERSION: u32 = 1;
const AAD: &[u8] = b"cairn key file v1";

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
    /// 64 MiB, 3 passes, 1 lane: about a quarter second on a current core.
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 }
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
    /// Layout version, [`KEYFILE_VERSION`].
    pub version: u32,
    /// Always `"argon2id"`.
    pub kdf: String,
    /// argon2id costs.
    pub params: KdfParams,
    /// argon2id salt, hex.
    pub salt: String,
    /// The master key sealed under the derived key, hex of `nonce ‖ ciphertext ‖ tag`.
    pub wrapped: String,
    /// Who created it (informational).
    pub host: String,
    /// Who created it (informational).
    pub user: String,
    /// When (RFC 3339).
    pub created: String,
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

impl KeyFile {
    /// Wraps `master` under `password`.
    ///
    /// # Errors
    /// [`KeyFileError::Invalid`] for unusable argon2 parameters.
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        host: &str,
        user: &str,
        created: &str,
    ) -> Result<Self, KeyFileError> {
        let salt = random_salt();
        let kek = derive_kek(password, &salt, params)?;
        let wrapped = kek.seal(master.as_bytes(), AAD);
        Ok(KeyFile {
            version: KEYFILE_VERSION,
            kdf: "argon2id".into(),
            params,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped),
            host: host.into(),
            user: user.into(),
            created: created.into(),
        })
    }

    /// Unwraps the master key.
    ///
    /// # Errors
    /// [`KeyFileError::WrongPassword`] when authentication fails, other variants when the file is
    /// malformed.
    pub fn unwrap_key(&self, password: &[u8]) -> Result<MasterKey, KeyFileError> {
        if self.version != KEYFILE_VERSION {
            return Err(KeyFileError::Version(self.version));
        }
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
            CryptoError::Authentication => KeyFileError::WrongPassword,
            CryptoError::TooShort(_) => KeyFileError::Invalid("wrapped key too short".into()),
        })?);
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KeyFileError::Invalid("wrapped key has the wrong length".into()))?;
        Ok(MasterKey::from_bytes(bytes))
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

    #[test]
    fn wrap_unwrap() {
        let m = MasterKey::generate();
        let kf = KeyFile::wrap(&m, b"secret", FAST, "h", "u", "t").unwrap();
        let back = KeyFile::decode(&kf.encode()).unwrap().unwrap_key(b"secret").unwrap();
        assert_eq!(back.as_bytes(), m.as_bytes());
        assert!(matches!(kf.unwrap_key(b"wrong"), Err(KeyFileError::WrongPassword)));
    }

    #[test]
    fn hostile_params_rejected() {
        let m = MasterKey::generate();
        let mut kf = KeyFile::wrap(&m, b"pw", FAST, "h", "u", "t").unwrap();
        kf.params.memory_kib = u32::MAX;
        assert!(matches!(kf.unwrap_key(b"pw"), Err(KeyFileError::Invalid(_))));
    }
}
