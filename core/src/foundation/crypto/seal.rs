//! [`SealKey`]: AES-256-GCM through `ring`, sealing `nonce ‖ ciphertext ‖ tag` (FORMAT.md
//! §5.3) in a buffer of its own or in place.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroize;

use super::*;

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
    pub(super) fn seal_with_nonce(&self, nonce: [u8; NONCE_LEN], plain: &[u8], aad: &[u8], out: &mut Vec<u8>) {
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
