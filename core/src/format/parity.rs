//! Pack parity (FORMAT.md §10a): Reed–Solomon recovery shards over a pack's stored bytes, kept
//! in an object of its own beside the pack, so a damaged or cut-short byte range of the pack
//! can be rebuilt exactly.
//!
//! ```text
//! parity = "CAIRNPAR" ‖ version:u8 ‖ percent:u8 ‖ shard_len:u32le ‖ pack_len:u64le
//!          ‖ k:u32le ‖ m:u32le ‖ hash[32]·(k+m) ‖ header_hash[32] ‖ recovery shard·m
//! ```
//!
//! The pack is cut into `k` shards of `shard_len` bytes (the last padded with zeros); `m`
//! recovery shards are computed over them. Every shard's BLAKE3 hash tells which are intact, so
//! any `m` damaged shards, of the pack or of the parity itself, are repaired. The parity is
//! computed over ciphertext and holds nothing a pack does not already show, so it is stored in
//! clear; what it rebuilds is checked against the pack's name by the caller.

use crate::foundation::error::{Error, Result};
use crate::foundation::id::Digest;

/// The first bytes of a parity object.
pub const PARITY_MAGIC: &[u8; 8] = b"CAIRNPAR";
/// The parity encoding version written and read.
pub const PARITY_VERSION: u8 = 1;
/// Fixed part of the header before the shard hashes.
const FIXED_LEN: usize = 8 + 1 + 1 + 4 + 8 + 4 + 4;
/// Shards are at most this long unless a pack needs more than [`MAX_SHARDS`] of them.
const SHARD_LEN: usize = 64 * 1024;
/// Most original shards a pack is cut into (the codec takes up to 32 768 of each kind).
const MAX_SHARDS: usize = 16 * 1024;
/// Fewest original shards a pack is cut into: a small pack gets short shards, so its parity
/// stays near the asked percentage.
const MIN_SHARDS: usize = 16;

/// The shard length for a pack of `pack_len` bytes: even (as the codec needs), about
/// [`SHARD_LEN`], shorter for small packs, longer for packs over 1 GiB.
fn shard_len_for(pack_len: usize) -> usize {
    let small = pack_len.div_ceil(MIN_SHARDS).min(SHARD_LEN);
    let large = pack_len.div_ceil(MAX_SHARDS);
    small.max(large).max(2).next_multiple_of(64)
}

/// Recovery shards for `k` original shards at `percent` (at least one).
fn recovery_count(k: usize, percent: u8) -> usize {
    (k * usize::from(percent)).div_ceil(100).max(1)
}

thread_local! {
    static ENCODER: std::cell::RefCell<Option<reed_solomon_simd::ReedSolomonEncoder>> =
        const { std::cell::RefCell::new(None) };
}

fn codec_error(e: reed_solomon_simd::Error) -> Error {
    Error::corrupt("parity", e.to_string())
}

/// Computes the parity object of `pack` with `percent` (1..=100) recovery shards per 100
/// original ones.
///
/// # Errors
/// [`Error::InvalidArgument`] for a percentage out of range or an empty pack.
pub fn encode(pack: &[u8], percent: u8) -> Result<Vec<u8>> {
    if !(1..=100).contains(&percent) || pack.is_empty() {
        return Err(Error::InvalidArgument(format!("parity of {percent}% over {} bytes", pack.len())));
    }
    let s = shard_len_for(pack.len());
    let k = pack.len().div_ceil(s);
    let m = recovery_count(k, percent);
    let originals: Vec<std::borrow::Cow<'_, [u8]>> = pack.chunks(s).map(|c| padded(c, s)).collect();
    // The encoder's work space is about twice the pack: kept per thread, so a backup's packs
    // after the first cost no fresh pages. The recovery shards are copied once, into the object.
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let encoder = match slot.as_mut() {
            Some(e) => {
                e.reset(k, m, s).map_err(codec_error)?;
                e
            }
            None => slot.insert(reed_solomon_simd::ReedSolomonEncoder::new(k, m, s).map_err(codec_error)?),
        };
        for shard in &originals {
            encoder.add_original_shard(shard).map_err(codec_error)?;
        }
        let result = encoder.encode().map_err(codec_error)?;
        let mut out = Vec::with_capacity(FIXED_LEN + 32 * (k + m + 1) + m * s);
        out.extend_from_slice(PARITY_MAGIC);
        out.push(PARITY_VERSION);
        out.push(percent);
        out.extend_from_slice(&(s as u32).to_le_bytes());
        out.extend_from_slice(&(pack.len() as u64).to_le_bytes());
        out.extend_from_slice(&(k as u32).to_le_bytes());
        out.extend_from_slice(&(m as u32).to_le_bytes());
        for shard in originals.iter().map(AsRef::as_ref).chain(result.recovery_iter()) {
            out.extend_from_slice(&Digest::of(shard).0);
        }
        let header_hash = Digest::of(&out);
        out.extend_from_slice(&header_hash.0);
        for shard in result.recovery_iter() {
            out.extend_from_slice(shard);
        }
        Ok(out)
    })
}

/// `chunk` padded with zeros to `len` bytes.
fn padded(chunk: &[u8], len: usize) -> std::borrow::Cow<'_, [u8]> {
    if chunk.len() == len {
        return std::borrow::Cow::Borrowed(chunk);
    }
    let mut v = chunk.to_vec();
    v.resize(len, 0);
    std::borrow::Cow::Owned(v)
}

/// A parity object's header, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Recovery shards per 100 original ones, as asked when written.
    pub percent: u8,
    /// Bytes per shard.
    pub shard_len: usize,
    /// Bytes of the pack protected.
    pub pack_len: u64,
    /// Original shards.
    pub k: usize,
    /// Recovery shards.
    pub m: usize,
    /// BLAKE3 of each original shard (padded), then of each recovery shard.
    pub hashes: Vec<[u8; 32]>,
}

impl Header {
    /// Where the recovery shards start in the object.
    #[must_use]
    pub fn body_offset(&self) -> usize {
        FIXED_LEN + 32 * (self.k + self.m + 1)
    }

    /// The object's whole length.
    #[must_use]
    pub fn object_len(&self) -> u64 {
        self.body_offset() as u64 + (self.m as u64) * self.shard_len as u64
    }
}

/// Reads and checks a parity object's header (its own hash included).
///
/// # Errors
/// [`Error::Corrupt`] for anything malformed or damaged in the header.
pub fn decode_header(data: &[u8]) -> Result<Header> {
    let bad = |why: &str| Error::corrupt("parity", why.to_string());
    let fixed = data.get(..FIXED_LEN).ok_or_else(|| bad("shorter than its header"))?;
    if &fixed[..8] != PARITY_MAGIC {
        return Err(bad("not a parity object"));
    }
    if fixed[8] != PARITY_VERSION {
        return Err(Error::UnsupportedVersion {
            object: "parity".into(),
            found: u32::from(fixed[8]),
            supported: u32::from(PARITY_VERSION),
        });
    }
    let u32_at = |at: usize| u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]) as usize;
    let percent = fixed[9];
    let shard_len = u32_at(10);
    let mut pack_len_bytes = [0u8; 8];
    pack_len_bytes.copy_from_slice(&fixed[14..22]);
    let pack_len = u64::from_le_bytes(pack_len_bytes);
    let (k, m) = (u32_at(22), u32_at(26));
    if !(1..=100).contains(&percent) {
        return Err(bad("percentage out of range"));
    }
    if shard_len == 0 || shard_len % 64 != 0 || shard_len > 1 << 30 {
        return Err(bad("shard length out of range"));
    }
    if !(1..=32_768).contains(&k) || !(1..=32_768).contains(&m) || pack_len == 0 || pack_len > 1 << 40 {
        return Err(bad("shard counts out of range"));
    }
    if pack_len.div_ceil(shard_len as u64) != k as u64 {
        return Err(bad("shard count does not fit the pack length"));
    }
    let hashes_end = FIXED_LEN + 32 * (k + m);
    let header = data.get(..hashes_end + 32).ok_or_else(|| bad("header cut short"))?;
    if Digest::of(&header[..hashes_end]).0[..] != header[hashes_end..] {
        return Err(bad("header damaged"));
    }
    let hashes = header[FIXED_LEN..hashes_end]
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect();
    Ok(Header { percent, shard_len, pack_len, k, m, hashes })
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The pack's bytes, rebuilt.
    pub pack: Vec<u8>,
    /// Original shards that were damaged or missing and were rebuilt.
    pub shards_rebuilt: usize,
}

/// Rebuilds a pack from what is left of it (`damaged`: its stored bytes, possibly changed, cut
/// short or longer; empty when missing) and its parity object.
///
/// # Errors
/// [`Error::Corrupt`] when the parity is unreadable, or more shards are damaged than it
/// covers.
pub fn repair(parity: &[u8], damaged: &[u8]) -> Result<Repaired> {
    let h = decode_header(parity)?;
    let s = h.shard_len;
    let pack_len = usize::try_from(h.pack_len).map_err(|_| Error::corrupt("parity", "pack too long"))?;
    // Each pack shard whose bytes still hash as recorded; `None` where damaged or missing.
    let mut shards: Vec<Option<std::borrow::Cow<'_, [u8]>>> = (0..h.k)
        .map(|i| {
            let chunk = damaged.get(i * s..((i + 1) * s).min(pack_len))?;
            let shard = padded(chunk, s);
            (Digest::of(&shard).0 == h.hashes[i]).then_some(shard)
        })
        .collect();
    let missing = shards.iter().filter(|x| x.is_none()).count();
    if missing > 0 {
        let body = h.body_offset();
        let recovery: Vec<(usize, &[u8])> = (0..h.m)
            .filter_map(|j| {
                let shard = parity.get(body + j * s..body + (j + 1) * s)?;
                (Digest::of(shard).0 == h.hashes[h.k + j]).then_some((j, shard))
            })
            .collect();
        if recovery.len() < missing {
            return Err(Error::corrupt(
                "parity",
                format!(
                    "{missing} of the pack's {} shards are damaged and {} of {} recovery shards are intact: too few to rebuild it",
                    h.k,
                    recovery.len(),
                    h.m
                ),
            ));
        }
        let originals = shards.iter().enumerate().filter_map(|(i, x)| Some((i, x.as_deref()?)));
        let restored = reed_solomon_simd::decode(h.k, h.m, originals, recovery).map_err(codec_error)?;
        for (i, shard) in restored {
            if let Some(slot) = shards.get_mut(i) {
                *slot = Some(std::borrow::Cow::Owned(shard));
            }
        }
    }
    let mut pack = Vec::with_capacity(h.k * s);
    for shard in shards {
        pack.extend_from_slice(&shard.ok_or_else(|| Error::corrupt("parity", "a shard was not rebuilt"))?);
    }
    pack.truncate(pack_len);
    Ok(Repaired { pack, shards_rebuilt: missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn an_intact_pack_comes_back_as_it_is() {
        let p = pack(300_001);
        let parity = encode(&p, 10).unwrap();
        let got = repair(&parity, &p).unwrap();
        assert_eq!(got.pack, p);
        assert_eq!(got.shards_rebuilt, 0);
    }

    #[test]
    fn damaged_ranges_within_the_parity_are_rebuilt() {
        let p = pack(16 << 20);
        let parity = encode(&p, 10).unwrap();
        let h = decode_header(&parity).unwrap();
        assert_eq!((h.k, h.m, h.shard_len), (256, 26, 64 * 1024));
        // One flipped byte, a 1 MiB range cut out and overwritten, and a truncated tail.
        let mut d = p.clone();
        d[12_345] ^= 1;
        for b in &mut d[5 << 20..6 << 20] {
            *b = 0xAA;
        }
        d.truncate(d.len() - 100);
        let got = repair(&parity, &d).unwrap();
        assert_eq!(got.pack, p);
        assert_eq!(got.shards_rebuilt, 1 + 16 + 1);
    }

    #[test]
    fn a_missing_pack_needs_full_parity() {
        let p = pack(10_000);
        assert!(repair(&encode(&p, 10).unwrap(), &[]).is_err());
        assert_eq!(repair(&encode(&p, 100).unwrap(), &[]).unwrap().pack, p);
    }

    #[test]
    fn damage_beyond_the_parity_is_an_error_not_wrong_bytes() {
        let p = pack(1 << 20);
        let parity = encode(&p, 5).unwrap();
        let h = decode_header(&parity).unwrap();
        let mut d = p.clone();
        for i in 0..=h.m {
            d[i * h.shard_len] ^= 0xFF;
        }
        let err = repair(&parity, &d).unwrap_err().to_string();
        assert!(err.contains("too few to rebuild"), "{err}");
    }

    #[test]
    fn damaged_recovery_shards_are_skipped_and_a_damaged_header_refused() {
        let p = pack(1 << 20);
        let mut parity = encode(&p, 10).unwrap();
        let h = decode_header(&parity).unwrap();
        let mut d = p.clone();
        d[0] ^= 1;
        // The first recovery shard damaged: another one stands in.
        let body = h.body_offset();
        parity[body + 3] ^= 1;
        assert_eq!(repair(&parity, &d).unwrap().pack, p);
        parity[FIXED_LEN + 5] ^= 1;
        assert!(decode_header(&parity).unwrap_err().to_string().contains("header damaged"));
    }

    #[test]
    fn sizes_follow_the_percentage() {
        for (len, percent) in [(1usize, 1u8), (63, 50), (5000, 10), (16 << 20, 5), (16 << 20, 100)] {
            let p = pack(len);
            let parity = encode(&p, percent).unwrap();
            let h = decode_header(&parity).unwrap();
            assert_eq!(h.object_len(), parity.len() as u64);
            assert!(h.k <= MAX_SHARDS && h.m >= 1);
            assert!(h.m * 100 >= h.k * usize::from(percent));
        }
        assert!(encode(b"x", 0).is_err());
        assert!(encode(b"x", 101).is_err());
        assert!(encode(b"", 10).is_err());
    }
}
