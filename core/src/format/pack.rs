//! Packs: many sealed blobs in one storage object (FORMAT.md §Packs).
//!
//! ```text
//! pack   = salt[16] ‖ blob* ‖ header ‖ [public[32]] ‖ [generation:u8] ‖ (header_len | flags):u32le
//! blob   = nonce[12] ‖ ciphertext ‖ tag[16]          sealed under the pack's key
//! header = nonce[12] ‖ ciphertext ‖ tag[16]          sealed under the pack's key, AAD "cairn pack header v1"
//! ```
//! The pack's key is the subkey of its salt, or, for a pack written with a write-only key, the
//! key agreed with the ephemeral X25519 key `public`, under master key generation
//! `generation` (0 when absent) ([`PackSeal`]). Flag 2^31 says `public` is there, 2^30 that
//! `generation` is.
//! The header lists every blob (kind, codec, id, offset, length, raw length), so the index can be
//! rebuilt from packs alone. A pack's name is the plain BLAKE3 of all its bytes.

use bytes::Bytes;

use crate::format::blob::{BlobKind, SealedBlob};
use crate::foundation::codec::Cursor;
use crate::foundation::compress::Codec;
use crate::foundation::crypto::{CryptoError, MasterKey, PUBLIC_LEN, SALT_LEN, SEAL_OVERHEAD, SealKey};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest, PackId};

/// Version byte at the start of a pack header's plaintext.
pub const PACK_HEADER_VERSION: u8 = 1;
const HEADER_AAD: &[u8] = b"cairn pack header v1";
/// Bytes of one header entry.
pub const ENTRY_LEN: usize = 46;
/// Most entries a header may claim (bounds allocation on decode).
pub const MAX_ENTRIES: u32 = 1 << 20;

/// The flag in a pack's last four bytes that says an ephemeral public key precedes them.
const PUBLIC_FLAG: u32 = 1 << 31;
/// The flag in a pack's last four bytes that says a key generation byte precedes them.
const GENERATION_FLAG: u32 = 1 << 30;

/// A pack's last four bytes: the sealed header's length and which seal fields precede them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Bytes of the sealed header.
    pub header_len: u32,
    /// An ephemeral public key is there.
    pub public: bool,
    /// A generation byte is there.
    pub generation: bool,
}

impl Trailer {
    /// Bytes between the header and the last four.
    #[must_use]
    pub fn extra(&self) -> usize {
        if self.public { PUBLIC_LEN } else { 0 }.saturating_add(usize::from(self.generation))
    }

    /// The seal of a pack whose first bytes are `salt` and whose last bytes are `end` (at least
    /// [`Trailer::extra`] + 4 of them); `None` when `end` is too short.
    #[must_use]
    pub fn seal(&self, salt: [u8; SALT_LEN], end: &[u8]) -> Option<PackSeal> {
        let n = end.len().checked_sub(4)?;
        let mut seal = PackSeal::salted(salt);
        let mut at = n;
        if self.generation {
            at = at.checked_sub(1)?;
            seal.generation = *end.get(at)?;
        }
        if self.public {
            at = at.checked_sub(PUBLIC_LEN)?;
            seal.public = end.get(at..at + PUBLIC_LEN)?.try_into().ok();
        }
        Some(seal)
    }
}

/// What a pack's key comes from (FORMAT.md §5.5): its salt, for a pack sealed to the
/// repository's public key (by a write-only key) the ephemeral public key it was agreed with,
/// and the generation of the master key it was sealed under (`cairn key rotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSeal {
    /// The random salt at the start of the pack.
    pub salt: [u8; SALT_LEN],
    /// The ephemeral X25519 public key of a pack sealed to the repository's public key.
    pub public: Option<[u8; PUBLIC_LEN]>,
    /// The master key generation (0 until the first rotation).
    pub generation: u8,
}

impl PackSeal {
    /// A pack sealed under the subkey of `salt`, of the first generation.
    #[must_use]
    pub fn salted(salt: [u8; SALT_LEN]) -> Self {
        PackSeal { salt, public: None, generation: 0 }
    }

    /// The key the pack's blobs and header are sealed under.
    ///
    /// # Errors
    /// [`CryptoError::WriteOnly`] for a write-only key; [`CryptoError::Authentication`] for
    /// an unusable public key or a generation the key does not have.
    pub fn key(&self, master: &MasterKey) -> Result<SealKey, CryptoError> {
        master.pack_key(&self.salt, self.public.as_ref(), self.generation)
    }

    /// Bytes the public key and the generation add to the end of a pack.
    #[must_use]
    pub fn tail_extra(&self) -> u64 {
        (if self.public.is_some() { PUBLIC_LEN as u64 } else { 0 }) + u64::from(self.generation > 0)
    }

    /// Whether the pack needs index version 2 to be listed (a public key or a generation).
    #[must_use]
    pub fn is_extended(&self) -> bool {
        self.public.is_some() || self.generation > 0
    }
}

/// One blob's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub kind: BlobKind,
    /// How the plaintext was encoded.
    pub codec: Codec,
    /// The blob.
    pub id: BlobId,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

impl PackEntry {
    /// Appends the 46-byte encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.kind.to_byte());
        out.push(self.codec.to_byte());
        out.extend_from_slice(&self.id.0.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    /// Decodes 46 bytes.
    ///
    /// # Errors
    /// A reason when the kind or codec byte is unknown or the slice is short.
    pub fn decode(b: &[u8]) -> Result<Self, &'static str> {
        if b.len() < ENTRY_LEN {
            return Err("truncated entry");
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[2..34]);
        Ok(PackEntry {
            kind: BlobKind::from_byte(b[0]).ok_or("unknown blob kind")?,
            codec: Codec::from_byte(b[1]).ok_or("unknown codec")?,
            id: BlobId(Digest(id)),
            offset: u32_at(34),
            length: u32_at(38),
            raw_len: u32_at(42),
        })
    }
}

/// Encodes a header plaintext.
#[must_use]
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_LEN);
    out.push(PACK_HEADER_VERSION);
    out.extend_from_slice(&u32::try_from(entries.len()).unwrap_or(u32::MAX).to_le_bytes());
    for e in entries {
        e.encode_into(&mut out);
    }
    out
}

/// Decodes a header plaintext, checking entries lie inside `body_len` (the bytes before the
/// header) and do not overlap the salt.
///
/// # Errors
/// A reason for any malformed field.
pub fn decode_header(plain: &[u8], body_len: u64) -> Result<Vec<PackEntry>, &'static str> {
    let mut c = Cursor::new(plain);
    if c.u8()? != PACK_HEADER_VERSION {
        return Err("unknown pack header version");
    }
    let n = c.u32()?;
    if n > MAX_ENTRIES || c.remaining() != n as usize * ENTRY_LEN {
        return Err("entry count does not match header length");
    }
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let e = PackEntry::decode(c.take(ENTRY_LEN)?)?;
        let end = u64::from(e.offset) + u64::from(e.length);
        if u64::from(e.offset) < SALT_LEN as u64 || end > body_len || (e.length as usize) < SEAL_OVERHEAD {
            return Err("entry outside the pack body");
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Assembles one pack from sealed blobs, in the order they were added or in an order drawn at
/// random when it is finished (so the order of blobs in a data pack does not follow the order
/// of a file's chunks).
pub struct PackWriter {
    seal: PackSeal,
    buf: Vec<u8>,
    blobs: Vec<SealedBlob>,
    len: usize,
}

/// A finished pack, ready to upload.
#[derive(Debug)]
pub struct FinishedPack {
    /// BLAKE3 of `bytes`.
    pub id: PackId,
    /// What the key the blobs were sealed under comes from.
    pub seal: PackSeal,
    /// The whole pack.
    pub bytes: Bytes,
    /// Where each blob is.
    pub entries: Vec<PackEntry>,
}

impl PackWriter {
    /// A new pack whose blobs are sealed under the key of `seal`.
    #[must_use]
    pub fn new(seal: PackSeal, capacity: usize) -> Self {
        Self::with_buffer(seal, Vec::with_capacity(capacity + capacity / 8))
    }

    /// The same, writing into `buf` (the bytes of an uploaded pack, say), whose allocation is
    /// reused: a fresh multi-megabyte buffer per pack costs a page fault per 4 KiB.
    #[must_use]
    pub fn with_buffer(seal: PackSeal, mut buf: Vec<u8>) -> Self {
        buf.clear();
        PackWriter { seal, buf, blobs: Vec::new(), len: SALT_LEN }
    }

    /// Lays the pack out in `buf` instead, whose allocation is reused.
    pub fn reuse_buffer(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.buf = buf;
    }

    /// Adds a sealed blob (sealed under the key of the pack's seal).
    pub fn add(&mut self, blob: SealedBlob) {
        self.len += blob.bytes.len();
        self.blobs.push(blob);
    }

    /// Bytes so far (without the header).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// No blobs yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Blobs so far.
    #[must_use]
    pub fn count(&self) -> usize {
        self.blobs.len()
    }

    /// Whether the pack should be closed: it reached `target` bytes or the most entries a
    /// header may hold.
    #[must_use]
    pub fn is_full(&self, target: usize) -> bool {
        self.len >= target || self.blobs.len() >= MAX_ENTRIES as usize
    }

    /// Lays the blobs out (in a random order when `shuffle`), seals the header and names the
    /// pack.
    #[must_use]
    pub fn finish(mut self, key: &SealKey, shuffle: bool) -> FinishedPack {
        use rand::seq::SliceRandom;
        if shuffle {
            self.blobs.shuffle(&mut rand::thread_rng());
        }
        self.buf.reserve(self.len + (tail_len(self.blobs.len()) + self.seal.tail_extra()) as usize);
        self.buf.extend_from_slice(&self.seal.salt);
        let mut entries = Vec::with_capacity(self.blobs.len());
        for blob in self.blobs {
            entries.push(PackEntry {
                kind: blob.kind,
                codec: blob.codec,
                id: blob.id,
                offset: u32::try_from(self.buf.len()).unwrap_or(u32::MAX),
                length: u32::try_from(blob.bytes.len()).unwrap_or(u32::MAX),
                raw_len: blob.raw_len,
            });
            self.buf.extend_from_slice(&blob.bytes);
        }
        let header = key.seal(&encode_header(&entries), HEADER_AAD);
        self.buf.extend_from_slice(&header);
        let mut header_len = u32::try_from(header.len()).unwrap_or(u32::MAX);
        if let Some(public) = &self.seal.public {
            self.buf.extend_from_slice(public);
            header_len |= PUBLIC_FLAG;
        }
        if self.seal.generation > 0 {
            self.buf.push(self.seal.generation);
            header_len |= GENERATION_FLAG;
        }
        self.buf.extend_from_slice(&header_len.to_le_bytes());
        let id = PackId(Digest::of(&self.buf));
        FinishedPack { id, seal: self.seal, bytes: Bytes::from(self.buf), entries }
    }
}

/// A pack's last four bytes: the header's length, and which seal fields lie between the
/// header and them.
#[must_use]
pub fn split_header_len(last: [u8; 4]) -> Trailer {
    let v = u32::from_le_bytes(last);
    Trailer {
        header_len: v & !(PUBLIC_FLAG | GENERATION_FLAG),
        public: v & PUBLIC_FLAG != 0,
        generation: v & GENERATION_FLAG != 0,
    }
}

/// Reads the seal and header of a whole pack.
///
/// # Errors
/// [`Error::Corrupt`] naming the pack for any malformed or unauthenticated part.
pub fn read_header(master: &MasterKey, id: &PackId, pack: &[u8]) -> Result<(PackSeal, Vec<PackEntry>)> {
    let what = || format!("pack {id}");
    let n = pack.len();
    if n < SALT_LEN + 4 {
        return Err(Error::corrupt(what(), "too short"));
    }
    let trailer = split_header_len([pack[n - 4], pack[n - 3], pack[n - 2], pack[n - 1]]);
    let extra = trailer.extra();
    let header_start = (n - 4)
        .checked_sub(trailer.header_len as usize + extra)
        .filter(|&s| s >= SALT_LEN)
        .ok_or_else(|| Error::corrupt(what(), "header length exceeds the pack"))?;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&pack[..SALT_LEN]);
    let seal = trailer.seal(salt, pack).ok_or_else(|| Error::corrupt(what(), "too short"))?;
    let key = seal.key(master).map_err(|e| Error::corrupt(what(), format!("header: {e}")))?;
    let plain = key
        .open(&pack[header_start..n - 4 - extra], HEADER_AAD)
        .map_err(|e| Error::corrupt(what(), format!("header: {e}")))?;
    let entries =
        decode_header(&plain, header_start as u64).map_err(|r| Error::corrupt(what(), format!("header: {r}")))?;
    Ok((seal, entries))
}

/// Bytes at the end of a pack sealed under a salt's subkey that hold a header of `entries`
/// entries and its length field (a pack with a public key has [`PackSeal::tail_extra`] more).
#[must_use]
pub fn tail_len(entries: usize) -> u64 {
    (SEAL_OVERHEAD + 5 + ENTRY_LEN * entries) as u64 + 4
}

/// The number of entries a header of `header_len` sealed bytes holds (the value of a pack's
/// last four bytes, without its flag), rounded down for a malformed length.
#[must_use]
pub fn entries_for_header_len(header_len: u32) -> usize {
    usize::try_from(u64::from(header_len).saturating_sub((SEAL_OVERHEAD + 5) as u64) / ENTRY_LEN as u64).unwrap_or(0)
}

/// Opens a pack's header from its last [`tail_len`] (and [`PackSeal::tail_extra`]) bytes,
/// read on their own: the seal (its salt is the pack's first bytes), the tail and the pack's
/// whole size are given, the entries come back.
///
/// # Errors
/// [`Error::Corrupt`] naming the pack when the tail's length field disagrees with its length, or
/// the header is malformed or fails authentication.
pub fn open_tail(master: &MasterKey, id: &PackId, seal: &PackSeal, tail: &[u8], size: u64) -> Result<Vec<PackEntry>> {
    let what = || format!("pack {id}");
    let n = tail.len();
    let extra = seal.tail_extra() as usize;
    let Some(len_bytes) = n.checked_sub(4).and_then(|at| tail.get(at..)) else {
        return Err(Error::corrupt(what(), "too short for its header"));
    };
    let trailer = split_header_len([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if trailer.header_len as usize + extra + 4 != n || trailer.extra() != extra || size < (n + SALT_LEN) as u64 {
        return Err(Error::corrupt(what(), "header length does not match the index"));
    }
    if trailer.seal(seal.salt, tail) != Some(*seal) {
        return Err(Error::corrupt(what(), "its public key or key generation differs from the index's"));
    }
    let key = seal.key(master).map_err(|e| Error::corrupt(what(), format!("header: {e}")))?;
    let plain =
        key.open(&tail[..n - 4 - extra], HEADER_AAD).map_err(|e| Error::corrupt(what(), format!("header: {e}")))?;
    decode_header(&plain, size - n as u64).map_err(|r| Error::corrupt(what(), format!("header: {r}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob;
    use proptest::prelude::*;

    fn build(m: &MasterKey, blobs: &[Vec<u8>]) -> FinishedPack {
        let (salt, public, generation, key) = m.new_pack_key();
        let mut w = PackWriter::new(PackSeal { salt, public, generation }, 1 << 20);
        for b in blobs {
            w.add(blob::seal(&key, BlobKind::Data, m.blob_id(b), b, 3));
        }
        w.finish(&key, true)
    }

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..500), 0..20), write_only in any::<bool>(), rotated in any::<bool>()) {
            let full = if rotated { MasterKey::generate().rotated().unwrap() } else { MasterKey::generate() };
            let (m, p) = if write_only { (full.clone(), build(&full.write_only(), &blobs)) } else { (full.clone(), build(&full, &blobs)) };
            prop_assert_eq!(p.id, PackId(Digest::of(&p.bytes)));
            let (seal, entries) = read_header(&m, &p.id, &p.bytes).unwrap();
            prop_assert_eq!(seal, p.seal);
            prop_assert_eq!(seal.public.is_some(), write_only);
            prop_assert_eq!(seal.generation, u8::from(rotated));
            prop_assert_eq!(&entries, &p.entries);
            let key = seal.key(&m).unwrap();
            if write_only {
                prop_assert!(read_header(&m.write_only(), &p.id, &p.bytes).is_err(), "a write-only key does not open its own pack");
            }
            let tail_at = p.bytes.len() - (tail_len(entries.len()) + seal.tail_extra()) as usize;
            prop_assert_eq!(open_tail(&m, &p.id, &seal, &p.bytes[tail_at..], p.bytes.len() as u64).unwrap(), entries.clone());
            prop_assert_eq!(entries.len(), blobs.len());
            for b in &blobs {
                let e = entries.iter().find(|e| e.id == m.blob_id(b)).expect("every blob is listed");
                let s = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&blob::open(&m, &key, e.kind, e.id, e.codec, e.raw_len, s).unwrap(), b);
            }
        }

        #[test]
        fn damaged_header_is_detected(pos in any::<usize>(), write_only in any::<bool>()) {
            let m = MasterKey::generate();
            let p = build(&if write_only { m.write_only() } else { m.clone() }, &[b"one".to_vec(), b"two".to_vec()]);
            let mut bytes = p.bytes.to_vec();
            let header_from = p.entries.iter().map(|e| (e.offset + e.length) as usize).max().unwrap_or(16);
            let i = header_from + pos % (bytes.len() - header_from);
            bytes[i] ^= 0x40;
            prop_assert!(read_header(&m, &p.id, &bytes).is_err());
            prop_assert!(read_header(&m, &p.id, &bytes[..bytes.len() / 2]).is_err());
        }
    }

    /// Blobs are laid out in an order drawn at random, back to back after the salt.
    #[test]
    fn blobs_are_shuffled() {
        let m = MasterKey::generate();
        let blobs: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let p = build(&m, &blobs);
        let order: Vec<BlobId> = p.entries.iter().map(|e| e.id).collect();
        let added: Vec<BlobId> = blobs.iter().map(|b| m.blob_id(b)).collect();
        assert_ne!(order, added, "50 blobs kept the order they were added in");
        let mut at = SALT_LEN as u32;
        for e in &p.entries {
            assert_eq!(e.offset, at, "blobs follow each other in the order the header lists");
            at += e.length;
        }
    }

    #[test]
    fn header_decode_rejects_junk() {
        assert!(decode_header(&[], 100).is_err());
        assert!(decode_header(&[1, 255, 255, 255, 255], 100).is_err());
        let e = PackEntry {
            kind: BlobKind::Data,
            codec: Codec::None,
            id: BlobId::default(),
            offset: 16,
            length: 100,
            raw_len: 72,
        };
        let h = encode_header(&[e]);
        assert_eq!(decode_header(&h, 116).unwrap(), vec![e]);
        assert!(decode_header(&h, 115).is_err());
    }
}
