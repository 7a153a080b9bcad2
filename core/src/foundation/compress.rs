//! Compression of blob plaintexts (FORMAT.md §Blobs): zstd when it pays, stored as is otherwise.
//!
//! Pipeline stage: after the blob id is known to be new, before sealing. Decompression always
//! takes a hard cap on the output (the length recorded in the index), so a hostile frame cannot
//! make us allocate more than the blob claims.

use std::cell::RefCell;

/// How a blob's plaintext is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    None,
    /// One zstd frame.
    Zstd,
    /// Stored as is, then zero bytes up to [`padded_len`] (format version 2).
    NonePadded,
    /// One zstd frame, then zero bytes up to [`padded_len`] (format version 2).
    ZstdPadded,
}

impl Codec {
    /// The byte stored in pack headers and index entries.
    #[must_use]
    pub fn to_byte(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
            Codec::NonePadded => 2,
            Codec::ZstdPadded => 3,
        }
    }

    /// Parses the stored byte.
    #[must_use]
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Codec::None),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::NonePadded),
            3 => Some(Codec::ZstdPadded),
            _ => None,
        }
    }

    /// Whether the payload is (starts with) a zstd frame.
    #[must_use]
    pub fn is_zstd(self) -> bool {
        matches!(self, Codec::Zstd | Codec::ZstdPadded)
    }

    /// Whether zero bytes follow the payload.
    #[must_use]
    pub fn is_padded(self) -> bool {
        matches!(self, Codec::NonePadded | Codec::ZstdPadded)
    }

    /// The padded variant of this codec.
    #[must_use]
    pub fn padded(self) -> Self {
        if self.is_zstd() { Codec::ZstdPadded } else { Codec::NonePadded }
    }
}

/// The length a payload of `len` bytes is padded to (Padmé, Nikitin et al., "Reducing
/// Metadata Leakage from Encrypted Files and Communication with PURBs", PETS 2019): with
/// `E = ⌊log2 len⌋` and `S = ⌊log2 E⌋ + 1`, the low `E − S` bits are rounded up, so a length
/// leaks O(log log len) bits and the overhead is under 1/2^(S−1) (at most 12 % from 16 bytes
/// up, about 3 % at 256 KiB).
#[must_use]
pub fn padded_len(len: usize) -> usize {
    if len < 2 {
        return len;
    }
    let e = usize::BITS - 1 - len.leading_zeros();
    let s = u32::BITS - e.leading_zeros();
    let low = e.saturating_sub(s);
    let mask = (1usize << low) - 1;
    (len + mask) & !mask
}

/// The payload of a padded blob without its padding, given the plaintext length recorded
/// for it; the padding must be zero bytes.
///
/// # Errors
/// [`CompressError`] when the payload is shorter than it claims, or the padding is not zero.
pub fn unpad(codec: Codec, payload: &[u8], raw_len: usize) -> Result<&[u8], CompressError> {
    let end = match codec {
        Codec::None | Codec::Zstd => return Ok(payload),
        Codec::NonePadded => raw_len,
        Codec::ZstdPadded => zstd::zstd_safe::find_frame_compressed_size(payload)
            .map_err(|_| CompressError("padded payload without a whole zstd frame".into()))?,
    };
    if end > payload.len() {
        return Err(CompressError(format!("payload of {} bytes where {end} were recorded", payload.len())));
    }
    if payload[end..].iter().any(|&b| b != 0) {
        return Err(CompressError("padding that is not zero".into()));
    }
    Ok(&payload[..end])
}

/// Compression failed in zstd, or the frame is damaged.
#[derive(Debug, thiserror::Error)]
#[error("zstd: {0}")]
pub struct CompressError(String);

/// Per-thread zstd contexts: the one at the configured level, and a level-1 one for probes.
struct Contexts {
    level: i32,
    main: zstd::bulk::Compressor<'static>,
    probe: zstd::bulk::Compressor<'static>,
}

thread_local! {
    static CONTEXTS: RefCell<Option<Contexts>> = const { RefCell::new(None) };
    /// Reused by every [`decompress_zstd_into`] on this thread (a context holds no state between frames).
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Blobs at least this long are first probed with a sample: media and encrypted data, which
/// do not compress, then cost one small fast compression instead of a whole one.
const PROBE_FROM: usize = 64 * 1024;
/// The sample: a slice from the middle of the blob.
const PROBE_LEN: usize = 8 * 1024;

/// Compresses `plain` at `level` when that saves at least 1/32 of its size; otherwise returns
/// `None` and the blob is stored uncompressed. Level 0 disables compression.
#[must_use]
pub fn compress(plain: &[u8], level: i32) -> Option<Vec<u8>> {
    if level == 0 || plain.len() < 64 {
        return None;
    }
    CONTEXTS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|c| c.level != level) {
            let main = zstd::bulk::Compressor::new(level).ok()?;
            let probe = zstd::bulk::Compressor::new(1).ok()?;
            *cell = Some(Contexts { level, main, probe });
        }
        let ctx = cell.as_mut()?;
        if plain.len() >= PROBE_FROM {
            let mid = plain.len() / 2;
            let sample = &plain[mid - PROBE_LEN / 2..mid + PROBE_LEN / 2];
            let probe = ctx.probe.compress(sample).ok()?;
            if probe.len() + PROBE_LEN / 32 >= PROBE_LEN {
                return None;
            }
        }
        let out = ctx.main.compress(plain).ok()?;
        (out.len() + plain.len() / 32 < plain.len()).then_some(out)
    })
}

/// Decompresses `data` stored with `codec`, refusing output longer than `expected_len` and
/// checking the length matches exactly.
///
/// # Errors
/// [`CompressError`] for damaged frames or a length other than `expected_len`.
pub fn decompress(codec: Codec, data: Vec<u8>, expected_len: usize) -> Result<Vec<u8>, CompressError> {
    if codec == Codec::None && data.len() == expected_len {
        return Ok(data);
    }
    let payload = unpad(codec, &data, expected_len)?;
    if codec.is_zstd() {
        let mut out = Vec::new();
        decompress_zstd_into(payload, expected_len, &mut out)?;
        Ok(out)
    } else if payload.len() == expected_len {
        Ok(payload.to_vec())
    } else {
        Err(CompressError(format!("length {} where {} was recorded", payload.len(), expected_len)))
    }
}

/// [`decompress`] of a zstd payload into `out` (replacing what it held, reusing its
/// allocation), with the same checks.
///
/// # Errors
/// As [`decompress`].
pub fn decompress_zstd_into(data: &[u8], expected_len: usize, out: &mut Vec<u8>) -> Result<(), CompressError> {
    // zstd decodes an empty input as zero bytes, but every zstd payload Cairn writes is a whole
    // frame (9 bytes at least): an empty one is damage, e.g. a flipped codec byte on an empty
    // blob (fuzz target blob_tamper).
    if data.is_empty() {
        return Err(CompressError("empty zstd payload".into()));
    }
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n == expected_len as u64 => {}
        Ok(Some(n)) => {
            return Err(CompressError(format!("frame holds {n} bytes where {expected_len} were recorded")));
        }
        Ok(None) | Err(_) => return Err(CompressError("frame without a valid content size".into())),
    }
    out.clear();
    out.reserve(expected_len);
    // One decompression context per thread: creating one per blob cost 7 % of a restore's CPU
    // (`ZSTD_createDCtx` in `perf record`).
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new().map_err(|e| CompressError(e.to_string()))?);
        }
        let d = cell.as_mut().ok_or_else(|| CompressError("no decompression context".into()))?;
        d.decompress_to_buffer(data, out).map_err(|e| CompressError(e.to_string()))
    })?;
    if out.len() != expected_len {
        return Err(CompressError(format!("length {} where {} was recorded", out.len(), expected_len)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(plain in proptest::collection::vec(0u8..4, 0..10_000)) {
            match compress(&plain, 3) {
                Some(c) => prop_assert_eq!(decompress(Codec::Zstd, c, plain.len()).unwrap(), plain),
                None => prop_assert_eq!(decompress(Codec::None, plain.clone(), plain.len()).unwrap(), plain),
            }
        }
    }

    #[test]
    fn cap_is_enforced() {
        let plain = vec![7u8; 100_000];
        let c = compress(&plain, 3).unwrap();
        assert!(decompress(Codec::Zstd, c.clone(), 1000).is_err());
        assert!(decompress(Codec::Zstd, c, 200_000).is_err());
        assert!(compress(&[1, 2, 3], 3).is_none());
        assert!(decompress(Codec::Zstd, vec![1, 2, 3, 4], 10).is_err());
    }

    /// Padmé's bound and a few exact values; padding round-trips and must be zero.
    #[test]
    fn padding() {
        assert_eq!((0..9).map(padded_len).collect::<Vec<_>>(), (0..9).collect::<Vec<_>>());
        assert_eq!(padded_len(9), 10);
        assert_eq!(padded_len(17), 18);
        assert_eq!(padded_len(1000), 1024);
        assert_eq!(padded_len(256 << 10), 256 << 10);
        assert_eq!(padded_len((256 << 10) + 1), (256 << 10) + 8192);
        for len in (1..2_000_000).step_by(997) {
            let p = padded_len(len);
            assert!(p >= len && (p - len) * 8 <= len, "{len} -> {p}");
        }
        let plain = vec![5u8; 10_000];
        let frame = compress(&plain, 3).unwrap();
        let mut padded = frame.clone();
        padded.resize(padded_len(frame.len()) + 7, 0);
        assert_eq!(decompress(Codec::ZstdPadded, padded.clone(), plain.len()).unwrap(), plain);
        *padded.last_mut().unwrap() = 1;
        assert!(decompress(Codec::ZstdPadded, padded, plain.len()).is_err());
        let mut raw = b"hello".to_vec();
        raw.resize(9, 0);
        assert_eq!(decompress(Codec::NonePadded, raw.clone(), 5).unwrap(), b"hello");
        assert!(decompress(Codec::NonePadded, raw.clone(), 10).is_err());
        raw[7] = 9;
        assert!(decompress(Codec::NonePadded, raw, 5).is_err());
    }

    #[test]
    fn incompressible_is_stored() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let plain: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert!(compress(&plain, 3).is_none());
    }
}
