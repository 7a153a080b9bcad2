//! Blobs: the unit of deduplication (FORMAT.md §Blobs).
//!
//! A blob is a chunk of file content ([`BlobKind::Data`]) or an encoded directory
//! ([`BlobKind::Tree`]). Its id is the keyed BLAKE3 of its plaintext. It is stored compressed
//! (when that pays) and sealed, with associated data binding the ciphertext to its kind and id,
//! so a pack cannot pass off one blob as another.

use crate::foundation::compress::{self, Codec};
use crate::foundation::crypto::{MasterKey, SEAL_OVERHEAD, SealKey};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::BlobId;

/// What a blob holds. Data and tree blobs go to separate packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// An encoded directory.
    Tree,
}

impl BlobKind {
    /// The byte stored in headers and index entries.
    #[must_use]
    pub fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    /// Parses the stored byte.
    #[must_use]
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Largest plaintext a blob may claim: data blobs are at most the chunker's maximum (16 MiB at
/// most), tree blobs may be larger for huge directories.
pub const MAX_BLOB_LEN: u32 = 256 << 20;

/// A blob compressed and sealed, ready for a pack.
#[derive(Debug)]
pub struct SealedBlob {
    /// Data or tree.
    pub kind: BlobKind,
    /// Keyed hash of the plaintext.
    pub id: BlobId,
    /// How the plaintext was encoded before sealing.
    pub codec: Codec,
    /// Length of the plaintext.
    pub raw_len: u32,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub bytes: Vec<u8>,
}

fn aad(kind: BlobKind, id: &BlobId) -> [u8; 46] {
    let mut a = [0u8; 46];
    a[..13].copy_from_slice(b"cairn blob v1");
    a[13] = kind.to_byte();
    a[14..].copy_from_slice(&id.0.0);
    a
}

/// A blob compressed (when that pays) and ready to seal: its sealed length is known before
/// the key it is sealed under is chosen (the writer picks the pack, and so the key, by it).
#[derive(Debug)]
pub struct Prepared<'a> {
    codec: Codec,
    payload: std::borrow::Cow<'a, [u8]>,
    raw_len: u32,
    padded_len: usize,
}

impl Prepared<'_> {
    /// Bytes of the sealed blob: the (padded) payload and the seal's overhead.
    #[must_use]
    pub fn sealed_len(&self) -> usize {
        self.padded_len + SEAL_OVERHEAD
    }
}

/// Compresses `plain` at `level` when that pays; with `pad`, the payload will be padded to
/// [`compress::padded_len`] (format version 2's padded codecs).
#[must_use]
pub fn prepare(plain: &[u8], level: i32, pad: bool) -> Prepared<'_> {
    let (codec, payload) = match compress::compress(plain, level) {
        Some(c) => (Codec::Zstd, std::borrow::Cow::Owned(c)),
        None => (Codec::None, std::borrow::Cow::Borrowed(plain)),
    };
    let raw_len = u32::try_from(plain.len()).unwrap_or(u32::MAX);
    if pad {
        let padded_len = compress::padded_len(payload.len());
        Prepared { codec: codec.padded(), payload, raw_len, padded_len }
    } else {
        Prepared { codec, padded_len: payload.len(), payload, raw_len }
    }
}

/// Seals a prepared blob under `key`.
#[must_use]
pub fn seal_prepared(key: &SealKey, kind: BlobKind, id: BlobId, prepared: &Prepared<'_>) -> SealedBlob {
    SealedBlob {
        kind,
        id,
        codec: prepared.codec,
        raw_len: prepared.raw_len,
        bytes: key.seal_padded(&prepared.payload, prepared.padded_len, &aad(kind, &id)),
    }
}

/// Compresses (when it pays) and seals one blob, unpadded.
#[must_use]
pub fn seal(key: &SealKey, kind: BlobKind, id: BlobId, plain: &[u8], level: i32) -> SealedBlob {
    seal_prepared(key, kind, id, &prepare(plain, level, false))
}

/// Opens a sealed blob: authenticates, decompresses under the recorded length, and checks the
/// plaintext hashes to `id`. The checks are [`open_in_place`]'s, on a copy of `sealed`.
///
/// # Errors
/// [`Error::Corrupt`] naming the blob when any step fails.
pub fn open(
    master: &MasterKey,
    key: &SealKey,
    kind: BlobKind,
    id: BlobId,
    codec: Codec,
    raw_len: u32,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let mut buf = sealed.to_vec();
    let mut scratch = Vec::new();
    Ok(open_in_place(master, key, kind, id, codec, raw_len, &mut buf, &mut scratch)?.to_vec())
}

/// [`open`] without allocating: decrypts `sealed` where it lies and, for a compressed blob,
/// decompresses into `scratch` (reused from blob to blob). Returns the plaintext, a part of
/// `sealed` or of `scratch`; the same checks as [`open`].
///
/// # Errors
/// As [`open`].
#[allow(clippy::too_many_arguments)]
pub fn open_in_place<'a>(
    master: &MasterKey,
    key: &SealKey,
    kind: BlobKind,
    id: BlobId,
    codec: Codec,
    raw_len: u32,
    sealed: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8]> {
    let what = || format!("{kind:?} blob {id}");
    if raw_len > MAX_BLOB_LEN {
        return Err(Error::corrupt(what(), "recorded length too large"));
    }
    let payload = key.open_in_place(sealed, &aad(kind, &id)).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    let payload =
        compress::unpad(codec, payload, raw_len as usize).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    let plain: &[u8] = if codec.is_zstd() {
        compress::decompress_zstd_into(payload, raw_len as usize, scratch)
            .map_err(|e| Error::corrupt(what(), e.to_string()))?;
        scratch
    } else {
        payload
    };
    if plain.len() != raw_len as usize {
        return Err(Error::corrupt(what(), format!("length {} where {raw_len} was recorded", plain.len())));
    }
    if master.blob_id(plain) != id {
        return Err(Error::corrupt(what(), "content does not match its id"));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::crypto::random_salt;

    #[test]
    fn seal_open() {
        let m = MasterKey::generate();
        let k = m.subkey(&random_salt()).unwrap();
        for plain in [vec![], vec![1u8; 10_000], (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect()] {
            let id = m.blob_id(&plain);
            let s = seal(&k, BlobKind::Data, id, &plain, 3);
            assert_eq!(open(&m, &k, BlobKind::Data, id, s.codec, s.raw_len, &s.bytes).unwrap(), plain);
            // Kind and id are bound to the ciphertext.
            assert!(open(&m, &k, BlobKind::Tree, id, s.codec, s.raw_len, &s.bytes).is_err());
            let other = m.blob_id(b"other");
            assert!(open(&m, &k, BlobKind::Data, other, s.codec, s.raw_len, &s.bytes).is_err());
        }
    }

    /// `open_in_place` gives what `open` gives, and refuses what it refuses.
    #[test]
    fn open_in_place_matches_open() {
        let m = MasterKey::generate();
        let k = m.subkey(&random_salt()).unwrap();
        let mut scratch = Vec::new();
        for plain in [vec![], vec![1u8; 10_000], (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect()] {
            let id = m.blob_id(&plain);
            let s = seal(&k, BlobKind::Data, id, &plain, 3);
            let mut bytes = s.bytes.clone();
            let got = open_in_place(&m, &k, BlobKind::Data, id, s.codec, s.raw_len, &mut bytes, &mut scratch).unwrap();
            assert_eq!(got, plain.as_slice());
            let mut bytes = s.bytes.clone();
            assert!(open_in_place(&m, &k, BlobKind::Tree, id, s.codec, s.raw_len, &mut bytes, &mut scratch).is_err());
            let mut bytes = s.bytes.clone();
            let wrong_len = s.raw_len + 1;
            assert!(open_in_place(&m, &k, BlobKind::Data, id, s.codec, wrong_len, &mut bytes, &mut scratch).is_err());
            let mut bytes = s.bytes.clone();
            if let Some(b) = bytes.last_mut() {
                *b ^= 1;
            }
            assert!(open_in_place(&m, &k, BlobKind::Data, id, s.codec, s.raw_len, &mut bytes, &mut scratch).is_err());
        }
    }

    /// Padded blobs open to their plaintext, in both codecs, and the padding is bound.
    #[test]
    fn padded_blobs_open() {
        let m = MasterKey::generate();
        let k = m.subkey(&random_salt()).unwrap();
        for plain in [vec![], vec![1u8; 10_000], (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect()] {
            let id = m.blob_id(&plain);
            let p = prepare(&plain, 3, true);
            let s = seal_prepared(&k, BlobKind::Data, id, &p);
            assert!(s.codec.is_padded());
            assert_eq!(s.bytes.len(), p.sealed_len());
            assert_eq!(open(&m, &k, BlobKind::Data, id, s.codec, s.raw_len, &s.bytes).unwrap(), plain);
        }
        // Padding is under the seal and must be zero bytes.
        let id = m.blob_id(b"hello");
        let sealed = |tail: &[u8]| k.seal(&[&b"hello"[..], tail].concat(), &aad(BlobKind::Data, &id));
        assert_eq!(open(&m, &k, BlobKind::Data, id, Codec::NonePadded, 5, &sealed(&[0, 0, 0])).unwrap(), b"hello");
        assert!(open(&m, &k, BlobKind::Data, id, Codec::NonePadded, 5, &sealed(&[0, 1, 0])).is_err());
        assert!(open(&m, &k, BlobKind::Data, id, Codec::None, 5, &sealed(&[0, 0, 0])).is_err());
    }

    /// Found by fuzz target blob_tamper: the codec byte is not in the associated data, and an
    /// empty payload stored as `None` "decompressed" as zstd to the same empty plaintext.
    #[test]
    fn fuzz_blob_tamper_codec_flip_on_empty_blob() {
        let m = MasterKey::generate();
        let k = m.subkey(&random_salt()).unwrap();
        let id = m.blob_id(b"");
        let s = seal(&k, BlobKind::Tree, id, b"", 3);
        assert_eq!(s.codec, Codec::None);
        assert!(open(&m, &k, BlobKind::Tree, id, s.codec, s.raw_len, &s.bytes).unwrap().is_empty());
        assert!(open(&m, &k, BlobKind::Tree, id, Codec::Zstd, s.raw_len, &s.bytes).is_err());
    }

    /// Found by fuzz target blob_open: the recorded length is not in the associated data either,
    /// and a genuine 76-byte zstd blob claiming 100 MB made `open` allocate 100 MB (the claim is
    /// trusted up to `MAX_BLOB_LEN`) before zstd rejected the frame. It must fail, not panic.
    #[test]
    fn fuzz_blob_open_unauthenticated_raw_len() {
        let m = MasterKey::generate();
        let k = m.subkey(&random_salt()).unwrap();
        let plain = b"cairn keeps what you give it; ".repeat(60);
        let id = m.blob_id(&plain);
        let s = seal(&k, BlobKind::Data, id, &plain, 3);
        assert_eq!(s.codec, Codec::Zstd);
        assert_eq!(open(&m, &k, BlobKind::Data, id, s.codec, s.raw_len, &s.bytes).unwrap(), plain);
        for raw_len in [0, s.raw_len - 1, s.raw_len + 1, 100_664_109, MAX_BLOB_LEN, MAX_BLOB_LEN + 1, u32::MAX] {
            assert!(open(&m, &k, BlobKind::Data, id, s.codec, raw_len, &s.bytes).is_err(), "raw_len {raw_len}");
        }
        assert!(open(&m, &k, BlobKind::Data, id, Codec::None, s.raw_len, &s.bytes).is_err());
    }
}
