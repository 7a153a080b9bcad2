//! An independent reader of the format, written from the text of FORMAT.md with only `blake3`,
//! `aes-gcm`, `argon2`, `zstd`, `ciborium` and fastcdc's gear table: what the engine's decoders are
//! checked against.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

pub const CONTEXT_SUBKEY: &str = "cairn 2026-11-23 object subkey v1";
pub const CONTEXT_ID_KEY: &str = "cairn 2026-11-23 blob id key v1";
pub const CONTEXT_CHUNKER: &str = "cairn 2026-11-23 chunker seed v1";
pub const AAD_KEYFILE: &[u8] = b"cairn key file v1";
pub const AAD_CONFIG: &[u8] = b"cairn config v1";
pub const AAD_PACK_HEADER: &[u8] = b"cairn pack header v1";
pub const AAD_INDEX: &[u8] = b"cairn index v1";
pub const AAD_SNAPSHOT: &[u8] = b"cairn snapshot v1";

pub fn blob_aad(kind: u8, id: &[u8; 32]) -> Vec<u8> {
    [b"cairn blob v1".as_slice(), &[kind], id].concat()
}

/// `derive_key("… object subkey v1", master ‖ salt)`.
pub fn subkey(master: &[u8; 32], salt: &[u8]) -> [u8; 32] {
    blake3::derive_key(CONTEXT_SUBKEY, &[master.as_slice(), salt].concat())
}

pub fn blob_id(master: &[u8; 32], plain: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(&blake3::derive_key(CONTEXT_ID_KEY, master), plain).as_bytes()
}

pub fn chunker_seed(master: &[u8; 32]) -> u64 {
    let d = blake3::derive_key(CONTEXT_CHUNKER, master);
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) | 1
}

/// Opens `nonce[12] ‖ ciphertext ‖ tag[16]`.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 28 {
        return None;
    }
    let cipher = Aes256Gcm::new(key.into());
    cipher.decrypt(Nonce::from_slice(&sealed[..12]), Payload { msg: &sealed[12..], aad }).ok()
}

/// Opens `salt[16] ‖ nonce[12] ‖ ciphertext ‖ tag[16]` (config body, index, snapshot).
pub fn open_object(master: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 44 {
        return None;
    }
    open(&subkey(master, &sealed[..16]), &sealed[16..], aad)
}

pub fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// One 46-byte pack header / index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: u8,
    pub codec: u8,
    pub id: [u8; 32],
    pub offset: u32,
    pub length: u32,
    pub raw_len: u32,
}

pub fn entry(b: &[u8]) -> Entry {
    Entry {
        kind: b[0],
        codec: b[1],
        id: b[2..34].try_into().expect("32 bytes"),
        offset: u32le(b, 34),
        length: u32le(b, 38),
        raw_len: u32le(b, 42),
    }
}

/// What [`read_pack`] finds in a pack.
pub struct Pack {
    pub salt: [u8; 16],
    pub entries: Vec<Entry>,
    /// Each blob's plaintext, in entry order.
    pub plains: Vec<Vec<u8>>,
}

/// A pack: its salt, its header entries, and each blob's plaintext.
pub fn read_pack(master: &[u8; 32], pack: &[u8]) -> Option<Pack> {
    let n = pack.len();
    let header_len = u32le(pack, n - 4) as usize;
    let header_start = n - 4 - header_len;
    let salt: [u8; 16] = pack[..16].try_into().ok()?;
    let key = subkey(master, &salt);
    let header = open(&key, &pack[header_start..n - 4], AAD_PACK_HEADER)?;
    if header[0] != 1 || header.len() != 5 + 46 * u32le(&header, 1) as usize {
        return None;
    }
    let entries: Vec<Entry> = header[5..].chunks(46).map(entry).collect();
    let mut plains = Vec::new();
    for e in &entries {
        let sealed = &pack[e.offset as usize..(e.offset + e.length) as usize];
        let payload = open(&key, sealed, &blob_aad(e.kind, &e.id))?;
        let plain = match e.codec {
            0 => payload,
            1 => zstd::bulk::decompress(&payload, e.raw_len as usize).ok()?,
            _ => return None,
        };
        if plain.len() != e.raw_len as usize || blob_id(master, &plain) != e.id {
            return None;
        }
        plains.push(plain);
    }
    Some(Pack { salt, entries, plains })
}

/// The GEAR table of FastCDC 2020 as fastcdc 3.2.1 ships it (`get_gear_with_seed(0)`),
/// checked to be its left-shifted twin too.
pub fn gear() -> [u64; 256] {
    let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
    for i in 0..256 {
        assert_eq!(gear_ls[i], gear[i] << 1, "GEAR_LS is GEAR shifted left by one");
    }
    *gear
}

/// FastCDC 2020 with normalization level 1, as FORMAT.md §Chunking writes it out.
pub fn chunk_lengths(data: &[u8], min: usize, avg: usize, max: usize, seed: u64) -> Vec<usize> {
    let gear: Vec<u64> = gear().iter().map(|g| g ^ seed).collect();
    let gear_ls: Vec<u64> = gear.iter().map(|g| g << 1).collect();
    let bits = (avg as f64).log2().round() as usize;
    let masks = fastcdc::v2020::MASKS;
    let (mask_s, mask_l) = (masks[bits + 1], masks[bits - 1]);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let src = &data[pos..];
        let cut = 'cut: {
            if src.len() <= min {
                break 'cut src.len();
            }
            let remaining = src.len().min(max);
            let center = if src.len() < avg { src.len() } else { avg };
            let mut hash: u64 = 0;
            let mut i = min / 2;
            while i < remaining / 2 {
                let (ms, m) = if i < center / 2 { (mask_s << 1, mask_s) } else { (mask_l << 1, mask_l) };
                let a = 2 * i;
                hash = (hash << 2).wrapping_add(gear_ls[src[a] as usize]);
                if hash & ms == 0 {
                    break 'cut a;
                }
                hash = hash.wrapping_add(gear[src[a + 1] as usize]);
                if hash & m == 0 {
                    break 'cut a + 1;
                }
                i += 1;
            }
            remaining
        };
        out.push(cut);
        pos += cut;
    }
    out
}
