//! Content-defined chunking (FastCDC 2020) with a secret seed (FORMAT.md §Chunking).
//!
//! Pipeline stage: the first after reading. One stream is chunked sequentially; different files
//! are chunked on different threads. Boundaries come from `fastcdc`'s gear hash whose table is
//! mixed with a seed derived from the master key, so chunk sizes do not reveal content to a
//! party without the key. The buffering here is our own: it reads into one large buffer and hands
//! out each chunk as an owned `Vec`, with no per-chunk shifting of the buffer.

use std::io::Read;

use fastcdc::v2020::{MASKS, Normalization, cut_gear, get_gear_with_seed, logarithm2};
use serde::{Deserialize, Serialize};

/// Identifies the chunking algorithm in the repository config, so a different chunker can be
/// introduced later without a format break.
pub const CHUNKER_FASTCDC_2020_SEEDED: &str = "fastcdc2020-gear-xor-seed-v1";

/// Chunk size bounds, stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk (but a stream's last) is shorter.
    pub min_size: u32,
    /// The size boundaries aim for.
    pub avg_size: u32,
    /// No chunk is longer.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams { min_size: 64 * 1024, avg_size: 256 * 1024, max_size: 1024 * 1024 }
    }
}

impl ChunkerParams {
    /// Checks the bounds fastcdc accepts (it would panic otherwise).
    ///
    /// # Errors
    /// A message naming the bad bound.
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
        if !(MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            || !(AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            || !(MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            || self.min_size > self.avg_size
            || self.avg_size > self.max_size
        {
            return Err(format!(
                "chunk sizes min {} avg {} max {} are out of range (need {MINIMUM_MIN}..={MINIMUM_MAX} ≤ {AVERAGE_MIN}..={AVERAGE_MAX} ≤ {MAXIMUM_MIN}..={MAXIMUM_MAX})",
                self.min_size, self.avg_size, self.max_size
            ));
        }
        Ok(())
    }
}

/// The cut-point finder: gear tables and masks for one parameter set and seed.
#[derive(Clone)]
pub struct Cutter {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl Cutter {
    /// A cutter for validated `params` and `seed`.
    ///
    /// # Errors
    /// When `params` are out of range.
    pub fn new(params: ChunkerParams, seed: u64) -> Result<Self, String> {
        params.validate()?;
        let bits = logarithm2(params.avg_size);
        let level = Normalization::Level1.bits();
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Ok(Cutter {
            params,
            mask_s: MASKS[(bits + level) as usize],
            mask_l: MASKS[(bits - level) as usize],
            gear,
            gear_ls,
        })
    }

    /// The parameters.
    #[must_use]
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the next chunk at the start of `data` (all of `data` if it is shorter than the
    /// minimum or no cut point is found before the maximum).
    #[must_use]
    pub fn cut(&self, data: &[u8]) -> usize {
        let (_, n) = cut_gear(
            data,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n.clamp(1, data.len().max(1)).min(data.len())
    }

    /// Splits an in-memory (e.g. memory-mapped) buffer; yields `(offset, len)` pairs.
    pub fn split<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= data.len() {
                return None;
            }
            let n = self.cut(&data[pos..]);
            let item = (pos, n);
            pos += n;
            Some(item)
        })
    }
}

/// Chunks a byte stream, reading it into one buffer several chunks long.
pub struct StreamChunker<R> {
    cutter: Cutter,
    source: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> StreamChunker<R> {
    /// Chunks `source` with `cutter`.
    pub fn new(cutter: Cutter, source: R) -> Self {
        Self::with_size_hint(cutter, source, None)
    }

    /// Chunks `source`, expected to be `size` bytes long: a small file gets a small buffer
    /// rather than several megabytes to allocate and clear. (If the file grows while it is read,
    /// cuts near the end may differ from a full-size buffer's; the bytes are the same.)
    pub fn with_size_hint(cutter: Cutter, source: R, size: Option<u64>) -> Self {
        let full = (cutter.params.max_size as usize * 4).max(4 << 20);
        let cap = match size {
            Some(n) => usize::try_from(n).map_or(full, |n| n.saturating_add(1).clamp(4096, full)),
            None => full,
        };
        StreamChunker { cutter, source, buf: vec![0; cap], start: 0, end: 0, eof: false }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let max = self.cutter.params.max_size as usize;
        if self.start > 0 && self.buf.len() - self.start < max {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end - self.start < max {
            if self.end == self.buf.len() {
                if self.buf.len() >= max {
                    break;
                }
                // A file larger than its size hint: grow to the full buffer.
                self.buf.resize((max * 4).max(4 << 20), 0);
            }
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<R: Read> Iterator for StreamChunker<R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            return Some(Err(e));
        }
        if self.start == self.end {
            return None;
        }
        let n = self.cutter.cut(&self.buf[self.start..self.end]);
        let chunk = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        Some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 }
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    proptest! {
        #[test]
        fn stream_concatenates_and_respects_bounds(len in 0usize..60_000, seed in any::<u64>()) {
            let input = data(len, seed);
            let cutter = Cutter::new(small(), 42).unwrap();
            let chunks: Vec<Vec<u8>> = StreamChunker::new(cutter.clone(), &input[..]).map(|c| c.unwrap()).collect();
            let n = chunks.len();
            for (i, c) in chunks.iter().enumerate() {
                prop_assert!(c.len() <= 4096);
                if i + 1 < n { prop_assert!(c.len() >= 256); }
            }
            prop_assert_eq!(chunks.concat(), input.clone());
            // The in-memory splitter finds the same boundaries.
            let lens: Vec<usize> = cutter.split(&input).map(|(_, l)| l).collect();
            prop_assert_eq!(lens, chunks.iter().map(Vec::len).collect::<Vec<_>>());
            // A size hint (right, or wrong either way) never changes the bytes.
            for hint in [0, len as u64 / 2, len as u64, len as u64 * 3] {
                let hinted: Vec<Vec<u8>> = StreamChunker::with_size_hint(cutter.clone(), &input[..], Some(hint)).map(|c| c.unwrap()).collect();
                prop_assert_eq!(hinted.concat(), input.clone());
                prop_assert!(hinted.iter().all(|c| c.len() <= 4096));
            }
        }
    }

    #[test]
    fn boundaries_resync_after_insert() {
        let base = data(200_000, 7);
        let mut shifted = b"a few inserted bytes".to_vec();
        shifted.extend_from_slice(&base);
        let cutter = Cutter::new(small(), 9).unwrap();
        let a: std::collections::HashSet<Vec<u8>> =
            StreamChunker::new(cutter.clone(), &base[..]).map(|c| c.unwrap()).collect();
        let b: Vec<Vec<u8>> = StreamChunker::new(cutter, &shifted[..]).map(|c| c.unwrap()).collect();
        let shared = b.iter().filter(|c| a.contains(*c)).count();
        assert!(shared * 10 >= b.len() * 9, "{shared} of {} chunks shared", b.len());
    }

    #[test]
    fn seed_changes_boundaries() {
        let input = data(100_000, 3);
        let a: Vec<_> = Cutter::new(small(), 1).unwrap().split(&input).collect();
        let b: Vec<_> = Cutter::new(small(), 2).unwrap().split(&input).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(Cutter::new(ChunkerParams { min_size: 1, avg_size: 2, max_size: 3 }, 1).is_err());
        assert!(Cutter::new(ChunkerParams { min_size: 8192, avg_size: 4096, max_size: 65536 }, 1).is_err());
    }
}
