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
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::foundation::id::{BlobId, Digest};

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
}

/// The repository's master key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    bytes: [u8; 32],
    id_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
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
        let id_key = blake3::derive_key(CONTEXT_ID_KEY, &bytes);
        MasterKey { bytes, id_key }
    }

    /// The raw bytes, for wrapping into a key file.
    #[must_use]
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The AES-256-GCM key for the object with this salt.
    #[must_use]
    pub fn subkey(&self, salt: &[u8; SALT_LEN]) -> SealKey {
        let mut material = [0u8; 32 + SALT_LEN];
        material[..32].copy_from_slice(&self.bytes);
        material[32..].copy_from_slice(salt);
        let key = blake3::derive_key(CONTEXT_SUBKEY, &material);
        material.zeroize();
        SealKey::new(key)
    }

    /// The keyed BLAKE3 id of a blob's plaintext.
    #[must_use]
    pub fn blob_id(&self, plain: &[u8]) -> BlobId {
        BlobId(Digest(*blake3::keyed_hash(&self.id_key, plain).as_bytes()))
    }

    /// A MAC over a document the repository's key holders can verify and no one else can
    /// forge (an erasure's completion notice): keyed BLAKE3 under a key derived for this
    /// alone.
    #[must_use]
    pub fn notice_mac(&self, document: &[u8]) -> [u8; 32] {
        let key = blake3::derive_key(CONTEXT_NOTICE, &self.bytes);
        *blake3::keyed_hash(&key, document).as_bytes()
    }

    /// The two keys that hide the names of one cluster's WAL files (FORMAT.md §14c): the key
    /// of the synthetic IV and the key of the stream that encrypts the name under it.
    #[must_use]
    pub fn wal_name_keys(&self, cluster: &str) -> ([u8; 32], [u8; 32]) {
        let mut material = Vec::with_capacity(32 + cluster.len());
        material.extend_from_slice(&self.bytes);
        material.extend_from_slice(cluster.as_bytes());
        let keys = (blake3::derive_key(CONTEXT_WAL_SIV, &material), blake3::derive_key(CONTEXT_WAL_STREAM, &material));
        material.zeroize();
        keys
    }

    /// The name of tenant `name`'s key object (FORMAT.md §14d): keyed BLAKE3 of the name, so
    /// the store learns neither the tenants' names nor, across repositories, which are whose.
    #[must_use]
    pub fn tenant_id(&self, name: &str) -> Digest {
        let key = blake3::derive_key(CONTEXT_TENANT_ID, &self.bytes);
        Digest(*blake3::keyed_hash(&key, name.as_bytes()).as_bytes())
    }

    /// The secret seed of the content-defined chunker.
    #[must_use]
    pub fn chunker_seed(&self) -> u64 {
        let d = blake3::derive_key(CONTEXT_CHUNKER, &self.bytes);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&d[..8]);
        // fastcdc treats 0 as "no seed".
        u64::from_le_bytes(seed) | 1
    }
}

impl MasterKey {
    /// Seals a whole object (config, index, snapshot): `salt ‖ nonce ‖ ciphertext ‖ tag`, under
    /// a subkey of a fresh salt, with `aad` naming the object kind.
    #[must_use]
    pub fn seal_object(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let salt = random_salt();
        let mut out = Vec::with_capacity(SALT_LEN + plain.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&salt);
        self.subkey(&salt).seal_into(plain, aad, &mut out);
        out
    }

    /// Opens an object sealed by [`MasterKey::seal_object`].
    ///
    /// # Errors
    /// [`CryptoError`] for short or unauthenticated input.
    pub fn open_object(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SALT_LEN + SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let (salt, rest) = sealed.split_at(SALT_LEN);
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        self.subkey(&s).open(rest, aad)
    }
}

/// A random salt for a new object.
#[must_use]
pub fn random_salt() -> [u8; SALT_LEN] {
    let mut s = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// An AES-256-GCM key.
///
/// Backed by `ring`'s AES-256-GCM, which picks its fastest code path at run time (on x86-64:
/// VAES with VPCLMULQDQ over AVX2 registers, else AES-NI with PCLMULQDQ; on ARMv8 the crypto
/// extensions), so the release build needs no CPU-specific flags. The bytes are the standard AES-256-GCM of
/// FORMAT.md §5.3, identical to what the `aes-gcm` crate produced before (see the tests).
pub struct SealKey {
    cipher: LessSafeKey,
}

impl SealKey {
    /// The key with these bytes; the bytes are wiped afterwards.
    #[must_use]
    pub fn new(mut key: [u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, &key);
        key.zeroize();
        match unbound {
            Ok(k) => SealKey { cipher: LessSafeKey::new(k) },
            // `ring` rejects only a key of the wrong length, and ours is 32 bytes by type.
            Err(_) => unreachable!("AES-256-GCM takes any 32-byte key"),
        }
    }

    /// Encrypts and authenticates `plain` with `aad`, appending `nonce ‖ ciphertext ‖ tag` to `out`.
    pub fn seal_into(&self, plain: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.seal_with_nonce(nonce, plain, aad, out);
    }

    /// [`SealKey::seal_into`] with a given nonce: only for the random one above and for tests.
    fn seal_with_nonce(&self, nonce: [u8; NONCE_LEN], plain: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        self.seal_padded_with_nonce(nonce, plain, plain.len(), aad, out);
    }

    /// Seals `plain` followed by zero bytes up to `padded_len` bytes (no padding when
    /// `padded_len` is not more than its length): `nonce ‖ ciphertext ‖ tag`.
    #[must_use]
    pub fn seal_padded(&self, plain: &[u8], padded_len: usize, aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(padded_len.max(plain.len()) + SEAL_OVERHEAD);
        self.seal_padded_with_nonce(nonce, plain, padded_len, aad, &mut out);
        out
    }

    fn seal_padded_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plain: &[u8],
        padded_len: usize,
        aad: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.reserve(padded_len.max(plain.len()) + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        out.resize(start + padded_len.max(plain.len()), 0);
        let tag = self.cipher.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[start..],
        );
        match tag {
            Ok(tag) => out.extend_from_slice(tag.as_ref()),
            // Only fails for plaintexts over 64 GiB, which no object comes near.
            Err(_) => out.truncate(start - NONCE_LEN),
        }
    }

    /// Encrypts `plain`; returns `nonce ‖ ciphertext ‖ tag`.
    #[must_use]
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        self.seal_into(plain, aad, &mut out);
        out
    }

    /// Checks and decrypts `nonce ‖ ciphertext ‖ tag`.
    ///
    /// # Errors
    /// [`CryptoError`] when the message is too short or fails authentication.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| CryptoError::Authentication)?;
        let tag = <[u8; TAG_LEN]>::try_from(tag).map_err(|_| CryptoError::Authentication)?;
        let mut plain = ciphertext.to_vec();
        // On failure `ring` leaves the buffer overwritten; it is dropped with the error.
        self.cipher
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                Tag::from(tag),
                &mut plain,
                0..,
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(plain)
    }

    /// [`SealKey::open`] without a copy: decrypts `sealed` (`nonce ‖ ciphertext ‖ tag`) where
    /// it lies and returns the plaintext, a part of it. On failure `sealed` is left overwritten.
    ///
    /// # Errors
    /// As [`SealKey::open`].
    pub fn open_in_place<'a>(&self, sealed: &'a mut [u8], aad: &[u8]) -> Result<&'a [u8], CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let body = rest.len() - TAG_LEN;
        let (ciphertext, tag) = rest.split_at_mut(body);
        let nonce = <[u8; NONCE_LEN]>::try_from(&*nonce).map_err(|_| CryptoError::Authentication)?;
        let tag = <[u8; TAG_LEN]>::try_from(&*tag).map_err(|_| CryptoError::Authentication)?;
        let plain = self
            .cipher
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                Tag::from(tag),
                ciphertext,
                0..,
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_open_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..2048), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = MasterKey::generate().subkey(&random_salt());
            let sealed = key.seal(&plain, &aad);
            prop_assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
            prop_assert_eq!(key.open(&sealed, &aad).unwrap(), plain);
        }

        #[test]
        fn any_flipped_bit_fails(plain in proptest::collection::vec(any::<u8>(), 0..256), pos in any::<usize>(), bit in 0u8..8) {
            let key = MasterKey::generate().subkey(&random_salt());
            let mut sealed = key.seal(&plain, b"aad");
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert_eq!(key.open(&sealed, b"aad"), Err(CryptoError::Authentication));
        }
    }

    #[test]
    fn wrong_aad_and_wrong_key_fail() {
        let master = MasterKey::generate();
        let salt = random_salt();
        let sealed = master.subkey(&salt).seal(b"hello", b"a");
        assert!(master.subkey(&salt).open(&sealed, b"b").is_err());
        assert!(master.subkey(&random_salt()).open(&sealed, b"a").is_err());
        assert!(MasterKey::generate().subkey(&salt).open(&sealed, b"a").is_err());
        assert_eq!(master.subkey(&salt).open(&sealed[..10], b"a"), Err(CryptoError::TooShort(10)));
    }

    /// Fixed key, nonce, AAD and plaintexts with the ciphertexts and tags that the `aes-gcm` 0.10
    /// crate (the backend before `ring`) produced for them: the byte format must never change.
    #[test]
    fn known_answer_vectors_from_the_previous_backend() {
        let key = SealKey::new(core::array::from_fn(|i| i as u8));
        let nonce: [u8; NONCE_LEN] = core::array::from_fn(|i| 0xa0 + i as u8);
        let aad = b"cairn kat";
        let plain = |len: usize| (0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>();

        let mut out = Vec::new();
        key.seal_with_nonce(nonce, &plain(100), aad, &mut out);
        let expected = "a0a1a2a3a4a5a6a7a8a9aaab\
            e5126d355aed2f8b5927ce835024a5b203d6d8981d21dfc837bc9f46b865a0dd319cb60750245e2944be2d\
            f83e44c6b5144127200da667facacc92fe03de300c777654b7ef4309140fe0f60898d0e996fe31eaec8a97\
            c41e8507471a3614d8082c2e9a13\
            2661fcde158994701c91b235a7d2541e";
        assert_eq!(hex::encode(&out), expected);
        assert_eq!(key.open(&out, aad).unwrap(), plain(100));

        // Long enough for the wide (many blocks at once) code paths, with a partial last block.
        let len = 65536 + 13;
        let mut out = Vec::new();
        key.seal_with_nonce(nonce, &plain(len), aad, &mut out);
        assert_eq!(out.len(), len + SEAL_OVERHEAD);
        let ciphertext = &out[NONCE_LEN..NONCE_LEN + len];
        assert_eq!(
            blake3::hash(ciphertext).to_hex().as_str(),
            "29ccfa2afa09c48315e6b672f934e58fa1deb545b6f6c537395eda777e82a5ae"
        );
        assert_eq!(hex::encode(&out[NONCE_LEN + len..]), "37eb857730efd064ce9676c1bf35db59");
        assert_eq!(key.open(&out, aad).unwrap(), plain(len));
    }

    /// Seals with [`SealKey`] and opens with the `aes-gcm` crate, and the reverse, over many sizes.
    #[test]
    fn interoperates_with_the_aes_gcm_crate() {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        use aes_gcm::{Aes256Gcm, Nonce};
        let mut rng = rand::rngs::OsRng;
        let sizes = (0..=600).chain([4095, 4096, 4097, 65_536, 300_001, 1 << 20]);
        for len in sizes {
            let mut raw = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rng, &mut raw);
            let other = Aes256Gcm::new((&raw).into());
            let key = SealKey::new(raw);
            let mut plain = vec![0u8; len];
            rand::RngCore::fill_bytes(&mut rng, &mut plain);
            let aad = &plain[..len.min(40)];

            let sealed = key.seal(&plain, aad);
            let (nonce, rest) = sealed.split_at(NONCE_LEN);
            let opened = other.decrypt(Nonce::from_slice(nonce), Payload { msg: rest, aad });
            assert_eq!(opened.as_deref(), Ok(&plain[..]), "len {len}");

            let mut theirs = vec![0xa5; NONCE_LEN];
            let ct = other.encrypt(Nonce::from_slice(&theirs), Payload { msg: &plain, aad });
            theirs.extend_from_slice(&ct.unwrap());
            assert_eq!(theirs, {
                let mut ours = Vec::new();
                key.seal_with_nonce([0xa5; NONCE_LEN], &plain, aad, &mut ours);
                ours
            });
            assert_eq!(key.open(&theirs, aad).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x").0, Digest::of(b"x"));
    }
}
