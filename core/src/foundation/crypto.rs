//! Keys and authenticated encryption (FORMAT.md §Keys and encryption).
//!
//! One random 32-byte [`MasterKey`] per repository. Everything else is derived from it with
//! BLAKE3's key derivation mode, each purpose under its own context string:
//! - [`SealKey`]s: AES-256-GCM keys derived from the master key and a random 16-byte salt stored
//!   with the object: one per index, snapshot and config object, and one per backup run for its
//!   packs (blobs are sealed in parallel before the packer assigns them to packs). A key thus
//!   seals at most one run's blobs: the 2^32-message limit of random 96-bit nonces is about a
//!   petabyte at the default chunk size (FORMAT.md §5.4).
//! - the id key: BLAKE3 keyed hashing of blob plaintexts ([`MasterKey::blob_id`]).
//! - the chunker seed, so chunk boundaries depend on the secret too.
//!
//! The master key itself is stored only wrapped in key files ([`crate::format::keyfile`]).

use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::foundation::id::{BlobId, Digest};

mod seal;
pub use seal::SealKey;

/// Length of the random nonce in front of every ciphertext.
pub const NONCE_LEN: usize = 12;
/// Length of the GCM tag after every ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed message adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of the per-object salt subkeys are derived from.
pub const SALT_LEN: usize = 16;

const CONTEXT_SUBKEY: &str = "cairn 2026-11-23 object subkey v1";
const CONTEXT_ID_KEY: &str = "cairn 2026-11-23 blob id key v1";
const CONTEXT_CHUNKER: &str = "cairn 2026-11-23 chunker seed v1";
const CONTEXT_NOTICE: &str = "cairn 2026-12-04 notice mac v1";
const CONTEXT_WAL_SIV: &str = "cairn 2026-12-04 wal name siv v1";
const CONTEXT_WAL_STREAM: &str = "cairn 2026-12-04 wal name stream v1";
const CONTEXT_TENANT_ID: &str = "cairn 2026-12-04 tenant id v1";

/// Sealing or opening failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The message is shorter than nonce and tag.
    #[error("sealed message too short ({0} bytes)")]
    TooShort(usize),
    /// Authentication failed: wrong key, tampered bytes or wrong associated data.
    #[error("authentication failed (tampered data or wrong key)")]
    Authentication,
    /// The key is write-only ([`MasterKey::write_only`]): it seals what it writes to the
    /// repository's public key and opens nothing sealed under the master key.
    #[error("this key is write-only: it can add backups but not read any")]
    WriteOnly,
}

/// The first bytes of an object sealed to the repository's public key (FORMAT.md §5.5).
pub const PUBLIC_MAGIC: &[u8; 8] = b"CAIRNPK1";
/// Bytes of an X25519 public key.
pub const PUBLIC_LEN: usize = 32;
/// Length of a write-only key's material in a key file (FORMAT.md §6).
pub const WRITE_ONLY_LEN: usize = 1 + 4 * 32;
/// The first byte of a write-only key's material.
const WRITE_ONLY_TAG: u8 = 0x57;
/// The first byte of a rotated full key's material.
const GENERATIONS_TAG: u8 = 0x47;
/// Most generations a key may have (`cairn key rotate` refuses more).
pub const MAX_GENERATIONS: usize = 64;

/// The X25519 public key of the recipient secret derived from `secret`.
fn recipient_public(secret: &[u8; 32]) -> [u8; PUBLIC_LEN] {
    let recipient = x25519_dalek::StaticSecret::from(blake3::derive_key(CONTEXT_RECIPIENT, secret));
    x25519_dalek::PublicKey::from(&recipient).to_bytes()
}

const CONTEXT_META_ROOT: &str = "cairn 2026-12-04 metadata key v1";
const CONTEXT_META_SUBKEY: &str = "cairn 2026-12-04 metadata subkey v1";
const CONTEXT_RECIPIENT: &str = "cairn 2026-12-04 recipient x25519 v1";
const CONTEXT_PUBLIC_SEAL: &str = "cairn 2026-12-04 sealed to recipient v1";
const CONTEXT_RECORD: &str = "cairn 2026-12-04 own backup record v1";
const CONTEXT_RECORD_SEAL: &str = "cairn 2026-12-04 own record seal v1";

/// The repository's master key, or a write-only key derived from it.
///
/// A full key holds the 32-byte secret everything is derived from. A write-only key
/// ([`MasterKey::write_only`]) holds only what a backup needs: the blob id key, the chunker
/// seed, the metadata key (config, index, session markers, garbage lists and run records of a
/// format version 3 repository) and the repository's X25519 public key. What it writes (packs,
/// snapshots) it seals to that public key, which only the secret opens (FORMAT.md §5.5).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    /// The newest generation's secret, what new objects and packs are sealed under.
    secret: Option<[u8; 32]>,
    /// The secrets of the generations before it, oldest first (`cairn key rotate`): what
    /// was sealed before each rotation still opens. The id key, chunker key, metadata key and
    /// the names derived from a secret stay the first generation's, so deduplication and
    /// names outlast rotations.
    previous: Vec<[u8; 32]>,
    /// The generation of `recipient` (a write-only key's; a full key's is its newest).
    #[zeroize(skip)]
    generation: u8,
    id_key: [u8; 32],
    chunker: [u8; 32],
    meta_root: [u8; 32],
    recipient: [u8; PUBLIC_LEN],
    /// Metadata objects are sealed under `meta_root` (format version 3) rather than the secret.
    #[zeroize(skip)]
    meta_sealed: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.secret.is_some() { "MasterKey(..)" } else { "MasterKey(write-only, ..)" })
    }
}

impl MasterKey {
    /// A fresh random master key.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// The master key with the given bytes (from a key file).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(blake3::derive_key(CONTEXT_RECIPIENT, &bytes));
        MasterKey {
            secret: Some(bytes),
            previous: Vec::new(),
            generation: 0,
            id_key: blake3::derive_key(CONTEXT_ID_KEY, &bytes),
            chunker: blake3::derive_key(CONTEXT_CHUNKER, &bytes),
            meta_root: blake3::derive_key(CONTEXT_META_ROOT, &bytes),
            recipient: x25519_dalek::PublicKey::from(&secret).to_bytes(),
            meta_sealed: false,
        }
    }

    /// The key with these generations' secrets (oldest first, at least one, at most
    /// [`MAX_GENERATIONS`]); `None` otherwise.
    #[must_use]
    pub fn from_generations(secrets: &[[u8; 32]]) -> Option<Self> {
        let (newest, previous) = secrets.split_last()?;
        let generation = u8::try_from(previous.len()).ok().filter(|&g| usize::from(g) < MAX_GENERATIONS)?;
        let mut key = Self::from_bytes(*secrets.first()?);
        key.recipient = recipient_public(newest);
        key.secret = Some(*newest);
        key.previous = previous.to_vec();
        key.generation = generation;
        Some(key)
    }

    /// This key with a new generation (`cairn key rotate`): a fresh random secret that new
    /// packs and objects are sealed under, the earlier ones kept for what they sealed.
    ///
    /// # Errors
    /// [`CryptoError::WriteOnly`] for a write-only key; [`CryptoError::Authentication`] past
    /// [`MAX_GENERATIONS`].
    pub fn rotated(&self) -> Result<Self, CryptoError> {
        let mut secrets = self.previous.clone();
        secrets.push(*self.secret()?);
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        secrets.push(fresh);
        let key = Self::from_generations(&secrets).ok_or(CryptoError::Authentication);
        secrets.zeroize();
        fresh.zeroize();
        Ok(key?.for_version(if self.meta_sealed { 3 } else { 2 }))
    }

    /// The generation new objects are sealed under (0 until the first rotation).
    #[must_use]
    pub fn generation(&self) -> u8 {
        self.generation
    }

    /// The secret of generation `generation`.
    fn secret_of(&self, generation: u8) -> Result<&[u8; 32], CryptoError> {
        let newest = self.secret()?;
        match usize::from(generation).cmp(&self.previous.len()) {
            std::cmp::Ordering::Equal => Ok(newest),
            std::cmp::Ordering::Less => Ok(&self.previous[usize::from(generation)]),
            std::cmp::Ordering::Greater => Err(CryptoError::Authentication),
        }
    }

    /// The first generation's secret: what names (WAL files, tenants) and notices are keyed by.
    fn first_secret(&self) -> Result<&[u8; 32], CryptoError> {
        let newest = self.secret()?;
        Ok(self.previous.first().unwrap_or(newest))
    }

    /// Every generation's secret, newest first: the order objects are tried in.
    fn secrets_newest_first(&self) -> Result<Vec<&[u8; 32]>, CryptoError> {
        let mut all = vec![self.secret()?];
        all.extend(self.previous.iter().rev());
        Ok(all)
    }

    /// This key for a repository of format `version`: from version 3 on, metadata objects are
    /// sealed under the metadata key, which write-only keys hold too.
    #[must_use]
    pub fn for_version(mut self, version: u32) -> Self {
        self.meta_sealed = version >= 3;
        self
    }

    /// The write-only key of this key: what a backup needs and nothing that opens what is
    /// stored ([`MasterKey`]).
    #[must_use]
    pub fn write_only(&self) -> Self {
        let mut key = self.clone();
        key.secret.zeroize();
        key.previous.zeroize();
        key
    }

    /// Whether this is a write-only key.
    #[must_use]
    pub fn is_write_only(&self) -> bool {
        self.secret.is_none()
    }

    /// The bytes a key file wraps (FORMAT.md §6): the 32-byte secret of a full key of one
    /// generation; `0x47 ‖ n ‖ n secrets, oldest first` of one rotated n - 1 times; or a
    /// write-only key's `0x57 ‖ id key ‖ chunker key ‖ metadata key ‖ public key`, followed by
    /// the public key's generation when it is not 0.
    #[must_use]
    pub fn to_wrapped(&self) -> zeroize::Zeroizing<Vec<u8>> {
        match &self.secret {
            Some(bytes) if self.previous.is_empty() => zeroize::Zeroizing::new(bytes.to_vec()),
            Some(bytes) => {
                let mut out = Vec::with_capacity(2 + 32 * (self.previous.len() + 1));
                out.push(GENERATIONS_TAG);
                out.push(self.generation + 1);
                for s in self.previous.iter().chain(std::iter::once(bytes)) {
                    out.extend_from_slice(s);
                }
                zeroize::Zeroizing::new(out)
            }
            None => {
                let mut out = Vec::with_capacity(WRITE_ONLY_LEN + 1);
                out.push(WRITE_ONLY_TAG);
                for part in [&self.id_key, &self.chunker, &self.meta_root, &self.recipient] {
                    out.extend_from_slice(part);
                }
                if self.generation > 0 {
                    out.push(self.generation);
                }
                zeroize::Zeroizing::new(out)
            }
        }
    }

    /// The key whose [`MasterKey::to_wrapped`] bytes these are; `None` for any other length or
    /// tag.
    #[must_use]
    pub fn from_wrapped(bytes: &[u8]) -> Option<Self> {
        if let Ok(secret) = <[u8; 32]>::try_from(bytes) {
            return Some(Self::from_bytes(secret));
        }
        if let [GENERATIONS_TAG, n, rest @ ..] = bytes {
            if *n < 2 || rest.len() != 32 * usize::from(*n) {
                return None;
            }
            let secrets: Vec<[u8; 32]> = rest.chunks_exact(32).filter_map(|c| c.try_into().ok()).collect();
            let key = Self::from_generations(&secrets);
            let mut secrets = secrets;
            secrets.zeroize();
            return key;
        }
        let generation = match bytes.len() {
            WRITE_ONLY_LEN => 0,
            n if n == WRITE_ONLY_LEN + 1 => bytes[WRITE_ONLY_LEN],
            _ => return None,
        };
        if bytes[0] != WRITE_ONLY_TAG || usize::from(generation) >= MAX_GENERATIONS {
            return None;
        }
        let part = |i: usize| {
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes[1 + 32 * i..1 + 32 * (i + 1)]);
            k
        };
        Some(MasterKey {
            secret: None,
            previous: Vec::new(),
            generation,
            id_key: part(0),
            chunker: part(1),
            meta_root: part(2),
            recipient: part(3),
            meta_sealed: false,
        })
    }

    /// The raw secret; `None` for a write-only key.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn as_bytes(&self) -> Option<&[u8; 32]> {
        self.secret.as_ref()
    }

    fn secret(&self) -> Result<&[u8; 32], CryptoError> {
        self.secret.as_ref().ok_or(CryptoError::WriteOnly)
    }

    /// The AES-256-GCM key for the object with this salt.
    ///
    /// # Errors
    /// [`CryptoError::WriteOnly`] for a write-only key.
    pub fn subkey(&self, salt: &[u8; SALT_LEN]) -> Result<SealKey, CryptoError> {
        Ok(derive_subkey(CONTEXT_SUBKEY, self.secret()?, salt))
    }

    /// The key a pack of key generation `generation` is sealed under: the subkey of its salt,
    /// or, for a pack sealed to the repository's public key, the key agreed with its ephemeral
    /// public key `public` (FORMAT.md §5.5).
    ///
    /// # Errors
    /// [`CryptoError::WriteOnly`] for a write-only key; [`CryptoError::Authentication`] for a
    /// generation this key does not have or a public key that agrees on no secret.
    pub fn pack_key(
        &self,
        salt: &[u8; SALT_LEN],
        public: Option<&[u8; PUBLIC_LEN]>,
        generation: u8,
    ) -> Result<SealKey, CryptoError> {
        let secret = self.secret_of(generation)?;
        match public {
            None => Ok(derive_subkey(CONTEXT_SUBKEY, secret, salt)),
            Some(public) => Ok(SealKey::new(agree(secret, public)?)),
        }
    }

    /// A new pack's salt, ephemeral public key, key generation and key: the subkey of a fresh
    /// salt for a full key, and for a write-only key a key agreed with the repository's public
    /// key under a fresh ephemeral key, whose public half comes back too (FORMAT.md §5.5).
    #[must_use]
    pub fn new_pack_key(&self) -> ([u8; SALT_LEN], Option<[u8; PUBLIC_LEN]>, u8, SealKey) {
        let salt = random_salt();
        match &self.secret {
            Some(secret) => (salt, None, self.generation, derive_subkey(CONTEXT_SUBKEY, secret, &salt)),
            None => {
                let (public, key) = self.ephemeral();
                (salt, Some(public), self.generation, SealKey::new(key))
            }
        }
    }

    /// A fresh ephemeral X25519 key's public half and the key it agrees with the repository's
    /// public key.
    fn ephemeral(&self) -> ([u8; PUBLIC_LEN], [u8; 32]) {
        let ephemeral = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
        let public = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
        let shared = ephemeral.diffie_hellman(&x25519_dalek::PublicKey::from(self.recipient));
        (public, self.sealing_key(shared.as_bytes(), &public))
    }

    /// `derive_key(context, shared ‖ ephemeral public ‖ recipient public)`.
    fn sealing_key(&self, shared: &[u8; 32], public: &[u8; PUBLIC_LEN]) -> [u8; 32] {
        sealing_key(shared, public, &self.recipient)
    }

    /// The root of the key of a write-only host's local record of its own backups (FORMAT.md
    /// §5.6): derived from what both kinds of key hold, so a full key reads it too.
    #[must_use]
    pub fn record_root(&self) -> [u8; 32] {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.id_key);
        material[32..].copy_from_slice(&self.meta_root);
        let key = blake3::derive_key(CONTEXT_RECORD, &material);
        material.zeroize();
        key
    }

    /// The key a write-only host's local records are sealed under (FORMAT.md §5.6).
    #[must_use]
    pub fn record_key(&self) -> SealKey {
        SealKey::new(blake3::derive_key(CONTEXT_RECORD_SEAL, &self.record_root()))
    }

    /// The repository's X25519 public key.
    #[must_use]
    pub fn recipient(&self) -> &[u8; PUBLIC_LEN] {
        &self.recipient
    }

    /// The keyed BLAKE3 id of a blob's plaintext.
    #[must_use]
    pub fn blob_id(&self, plain: &[u8]) -> BlobId {
        BlobId(Digest(*blake3::keyed_hash(&self.id_key, plain).as_bytes()))
    }

    /// A MAC over a document the repository's key holders can verify and no one else can
    /// forge (an erasure's completion notice): keyed BLAKE3 under a key derived for this
    /// alone.
    ///
    /// # Errors
    /// [`CryptoError::WriteOnly`] for a write-only key.
    pub fn notice_mac(&self, document: &[u8]) -> Result<[u8; 32], CryptoError> {
        let key = blake3::derive_key(CONTEXT_NOTICE, self.first_secret()?);
        Ok(*blake3::keyed_hash(&key, document).as_bytes())
    }

    /// The two keys that hide the names of one cluster's WAL files (FORMAT.md §14c): the key
    /// of the synthetic IV and the key of the stream that encrypts the name under it.
    ///
    /// # Errors
    /// [`CryptoError::WriteOnly`] for a write-only key.
    pub fn wal_name_keys(&self, cluster: &str) -> Result<([u8; 32], [u8; 32]), CryptoError> {
        let mut material = Vec::with_capacity(32 + cluster.len());
        material.extend_from_slice(self.first_secret()?);
        material.extend_from_slice(cluster.as_bytes());
        let keys = (blake3::derive_key(CONTEXT_WAL_SIV, &material), blake3::derive_key(CONTEXT_WAL_STREAM, &material));
        material.zeroize();
        Ok(keys)
    }

    /// The name of tenant `name`'s key object (FORMAT.md §14d): keyed BLAKE3 of the name, so
    /// the store learns neither the tenants' names nor, across repositories, which are whose.
    ///
    /// # Errors
    /// [`CryptoError::WriteOnly`] for a write-only key.
    pub fn tenant_id(&self, name: &str) -> Result<Digest, CryptoError> {
        let key = blake3::derive_key(CONTEXT_TENANT_ID, self.first_secret()?);
        Ok(Digest(*blake3::keyed_hash(&key, name.as_bytes()).as_bytes()))
    }

    /// The secret seed of the content-defined chunker.
    #[must_use]
    pub fn chunker_seed(&self) -> u64 {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&self.chunker[..8]);
        // fastcdc treats 0 as "no seed".
        u64::from_le_bytes(seed) | 1
    }
}

impl MasterKey {
    /// Seals a whole object (snapshot, tenant key, WAL file): `salt ‖ nonce ‖ ciphertext ‖
    /// tag`, under a subkey of a fresh salt, with `aad` naming the object kind. A write-only
    /// key seals to the repository's public key instead ([`MasterKey::seal_public`]).
    #[must_use]
    pub fn seal_object(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        match &self.secret {
            Some(secret) => seal_salted(CONTEXT_SUBKEY, secret, plain, aad),
            None => self.seal_public(plain, aad),
        }
    }

    /// Seals `plain` to the repository's public key: `CAIRNPK1 ‖ ephemeral public[32] ‖ nonce
    /// ‖ ciphertext ‖ tag` (FORMAT.md §5.5). Only the full key opens it.
    #[must_use]
    pub fn seal_public(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let (public, key) = self.ephemeral();
        let mut out = Vec::with_capacity(PUBLIC_MAGIC.len() + PUBLIC_LEN + plain.len() + SEAL_OVERHEAD);
        out.extend_from_slice(PUBLIC_MAGIC);
        out.extend_from_slice(&public);
        SealKey::new(key).seal_into(plain, aad, &mut out);
        out
    }

    /// Opens an object sealed by [`MasterKey::seal_object`], in either form.
    ///
    /// # Errors
    /// [`CryptoError`] for short or unauthenticated input, or a write-only key.
    pub fn open_object(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // Each generation's secret in turn, newest first: an object names no generation, and
        // authentication tells which sealed it.
        let secrets = self.secrets_newest_first()?;
        if let Some(rest) = sealed.strip_prefix(PUBLIC_MAGIC.as_slice())
            && rest.len() >= PUBLIC_LEN + SEAL_OVERHEAD
        {
            let mut public = [0u8; PUBLIC_LEN];
            public.copy_from_slice(&rest[..PUBLIC_LEN]);
            for secret in &secrets {
                let opened = agree(secret, &public).and_then(|key| SealKey::new(key).open(&rest[PUBLIC_LEN..], aad));
                if opened.is_ok() {
                    return opened;
                }
            }
            // A salted object whose random salt starts with the magic (2^-64) opens below.
        }
        let mut last = Err(CryptoError::Authentication);
        for secret in secrets {
            last = open_salted(CONTEXT_SUBKEY, secret, sealed, aad);
            if !matches!(last, Err(CryptoError::Authentication)) {
                return last;
            }
        }
        last
    }

    /// Seals a metadata object (config, index, session marker, garbage list, run record):
    /// like [`MasterKey::seal_object`], under the metadata key in format version 3 (which
    /// write-only keys hold) and the secret before.
    #[must_use]
    pub fn seal_meta(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        match (&self.secret, self.meta_sealed) {
            (Some(secret), false) => seal_salted(CONTEXT_SUBKEY, secret, plain, aad),
            _ => seal_salted(CONTEXT_META_SUBKEY, &self.meta_root, plain, aad),
        }
    }

    /// Opens a metadata object sealed by [`MasterKey::seal_meta`]: a full key tries both keys
    /// (a repository migrated to version 3 keeps the metadata objects sealed before), the
    /// metadata key first from version 3 on.
    ///
    /// # Errors
    /// [`CryptoError`] for short or unauthenticated input.
    pub fn open_meta(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let first = if self.meta_sealed || self.secret.is_none() {
            open_salted(CONTEXT_META_SUBKEY, &self.meta_root, sealed, aad)
        } else {
            self.open_object(sealed, aad)
        };
        match (first, &self.secret) {
            (Ok(plain), _) => Ok(plain),
            (Err(CryptoError::Authentication), Some(_)) if self.meta_sealed => self.open_object(sealed, aad),
            (Err(CryptoError::Authentication), Some(_)) => {
                open_salted(CONTEXT_META_SUBKEY, &self.meta_root, sealed, aad)
            }
            (Err(e), _) => Err(e),
        }
    }
}

/// The key agreed with ephemeral public key `public` by the holder of `secret` (one
/// generation's master secret).
fn agree(secret: &[u8; 32], public: &[u8; PUBLIC_LEN]) -> Result<[u8; 32], CryptoError> {
    let recipient = x25519_dalek::StaticSecret::from(blake3::derive_key(CONTEXT_RECIPIENT, secret));
    let shared = recipient.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(CryptoError::Authentication);
    }
    Ok(sealing_key(shared.as_bytes(), public, &x25519_dalek::PublicKey::from(&recipient).to_bytes()))
}

/// `derive_key(context, shared ‖ ephemeral public ‖ recipient public)`.
fn sealing_key(shared: &[u8; 32], public: &[u8; PUBLIC_LEN], recipient: &[u8; PUBLIC_LEN]) -> [u8; 32] {
    let mut material = [0u8; 32 + 2 * PUBLIC_LEN];
    material[..32].copy_from_slice(shared);
    material[32..64].copy_from_slice(public);
    material[64..].copy_from_slice(recipient);
    let key = blake3::derive_key(CONTEXT_PUBLIC_SEAL, &material);
    material.zeroize();
    key
}

/// `derive_key(context, root ‖ salt)` as an AES-256-GCM key.
fn derive_subkey(context: &str, root: &[u8; 32], salt: &[u8; SALT_LEN]) -> SealKey {
    let mut material = [0u8; 32 + SALT_LEN];
    material[..32].copy_from_slice(root);
    material[32..].copy_from_slice(salt);
    let key = blake3::derive_key(context, &material);
    material.zeroize();
    SealKey::new(key)
}

/// `salt ‖ nonce ‖ ciphertext ‖ tag` under the subkey of a fresh salt.
fn seal_salted(context: &str, root: &[u8; 32], plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let salt = random_salt();
    let mut out = Vec::with_capacity(SALT_LEN + plain.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&salt);
    derive_subkey(context, root, &salt).seal_into(plain, aad, &mut out);
    out
}

fn open_salted(context: &str, root: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < SALT_LEN + SEAL_OVERHEAD {
        return Err(CryptoError::TooShort(sealed.len()));
    }
    let (salt, rest) = sealed.split_at(SALT_LEN);
    let mut s = [0u8; SALT_LEN];
    s.copy_from_slice(salt);
    derive_subkey(context, root, &s).open(rest, aad)
}

/// A random salt for a new object.
#[must_use]
pub fn random_salt() -> [u8; SALT_LEN] {
    let mut s = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

#[cfg(test)]
mod tests;
