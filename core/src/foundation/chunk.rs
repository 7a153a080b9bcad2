//! Content-defined chunking (FastCDC 2020) with a secret seed (FORMAT.md §Chunking).
//!
//! Pipeline stage: the first after reading. Different files are chunked on different threads,
//! and a large batch of one stream is cut on several threads with the same boundaries one
//! thread would find ([`Cutter::cut_batch`]). Boundaries come from `fastcdc`'s gear hash whose table is
//! mixed with a seed derived from the master key, so chunk sizes do not reveal content to a
//! party without the key. The buffering here is our own: [`StreamBatcher`] reads into a buffer it
//! reuses and hands out batches of chunks as slices of it, so no chunk is copied or allocated.

use std::io::Read;
use std::ops::Range;

use fastcdc::v2020::{MASKS, Normalization, cut_gear, get_gear_with_seed, logarithm2};
use rayon::prelude::*;
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

    /// Segments of fewer maximal chunks than this are not worth a thread of their own in
    /// [`Self::cut_batch`].
    pub const SEGMENT: usize = 4;
    /// How many average chunks a segment's chain runs on into the next segment, to meet it.
    pub const OVERLAP: usize = 4;

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

    /// The chunks at the start of `data` that are final: each starts before `target` and has a
    /// whole maximal chunk after its start (or `data` ends the stream, `eof`), so more input
    /// could not move its end.
    ///
    /// The result is exactly what cutting one chunk after another from offset 0 gives, but a
    /// large buffer is cut on several threads (the current rayon pool's). Each segment but the
    /// first is cut from its own start, which is not a boundary of the sequential chain in
    /// general; the chains meet at the first offset where both cut, and from there on they
    /// agree, because a cut depends only on the bytes from its start. So each segment's chain
    /// runs on past the next segment's start by [`Self::OVERLAP`] chunks' worth, the stitching
    /// looks for the first offset both chains cut at, and cuts on alone in the rare case that
    /// there is none.
    #[must_use]
    pub fn cut_batch(&self, data: &[u8], eof: bool, target: usize) -> Vec<Range<usize>> {
        let max = self.params.max_size as usize;
        let len = data.len();
        // Whether a chunk starting at `pos` is final.
        let open = |pos: usize| pos < len && pos < target && (eof || len - pos >= max);
        let chain = |start: usize, until: usize| {
            let mut out = Vec::with_capacity((until - start) / self.params.avg_size as usize + 2);
            let mut pos = start;
            while pos < until && open(pos) {
                let n = self.cut(&data[pos..]);
                out.push(pos..pos + n);
                pos += n;
            }
            out
        };
        let span = len.min(target.saturating_add(max));
        let segments = span / (Self::SEGMENT * max);
        if segments < 2 {
            return chain(0, len);
        }
        let step = span / segments;
        let overlap = Self::OVERLAP * self.params.avg_size as usize;
        let mut chains = (0..segments)
            .into_par_iter()
            .map(|i| {
                let until = if i + 1 == segments { len } else { (i + 1) * step + overlap };
                chain(i * step, until)
            })
            .collect::<Vec<_>>()
            .into_iter();
        // The first chain starts at offset 0, so it is the sequential one.
        let mut out = chains.next().unwrap_or_default();
        let starts_at = |c: &[Range<usize>], pos: usize| c.binary_search_by_key(&pos, |r| r.start).ok();
        for next in chains {
            let Some(first) = next.first().map(|r| r.start) else { continue };
            // The first offset past `next`'s start where both chains cut.
            let from = out.partition_point(|r| r.end < first);
            if let Some((j, k)) = (from..out.len()).find_map(|j| starts_at(&next, out[j].end).map(|k| (j, k))) {
                out.truncate(j + 1);
                out.extend_from_slice(&next[k..]);
                continue;
            }
            // None yet: cut on alone until the chains meet or `next` is behind.
            let last = next.last().map_or(0, |r| r.start);
            let mut pos = out.last().map_or(0, |r| r.end);
            while open(pos) && pos <= last {
                if let Some(k) = starts_at(&next, pos) {
                    out.extend_from_slice(&next[k..]);
                    break;
                }
                let n = self.cut(&data[pos..]);
                out.push(pos..pos + n);
                pos += n;
            }
        }
        // A chain that never met the next one stopped early; finish alone.
        out.extend(chain(out.last().map_or(0, |r| r.end), len));
        out
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

/// Consecutive chunks of one input, cut inside one buffer: the chunker's unit of work. Chunks
/// are handed on as slices of the buffer, never copied out one by one, and the buffer goes back
/// to the chunker once the batch is stored.
pub struct Batch {
    buf: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

impl Batch {
    /// The chunks, in input order.
    pub fn chunks(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.ranges.iter().map(|r| &self.buf[r.clone()])
    }

    /// Each chunk's range in [`Batch::bytes`].
    #[must_use]
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// All the batch's bytes, the chunks concatenated.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.ranges.last().map_or(0, |r| r.end)]
    }

    /// Number of chunks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the batch holds no chunk.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// Cuts a byte stream into batches of chunks. It reads straight into buffers it reuses, so a
/// long stream costs two buffers of `batch + max_size` bytes whatever its length: one being
/// stored while the next is read and cut.
pub struct StreamBatcher<R> {
    cutter: Cutter,
    source: R,
    /// Bytes the source still has, when known (a file's size): sizes the first buffer, so a
    /// small file never costs a whole batch buffer.
    remaining_hint: Option<u64>,
    /// The uncut tail of the last batch (less than a maximal chunk), which starts the next.
    carry: Vec<u8>,
    /// Buffers of stored batches, for reuse.
    spare: Vec<Vec<u8>>,
    eof: bool,
}

impl<R: Read> StreamBatcher<R> {
    /// A batcher over `source`; `size`, when known, is how many bytes it is expected to hold.
    pub fn new(cutter: Cutter, source: R, size: Option<u64>) -> Self {
        Self::with_buffers(cutter, source, size, Vec::new())
    }

    /// The same, reusing buffers of an earlier batcher ([`StreamBatcher::into_buffers`]).
    pub fn with_buffers(cutter: Cutter, source: R, size: Option<u64>, buffers: Vec<Vec<u8>>) -> Self {
        StreamBatcher { cutter, source, remaining_hint: size, carry: Vec::new(), spare: buffers, eof: false }
    }

    /// The buffers, for the next batcher of the same thread.
    #[must_use]
    pub fn into_buffers(mut self) -> Vec<Vec<u8>> {
        self.spare.truncate(2);
        self.spare
    }

    /// Gives a stored batch's buffer back for reuse.
    pub fn recycle(&mut self, batch: Batch) {
        if self.spare.len() < 2 {
            self.spare.push(batch.buf);
        }
    }

    /// Reads and cuts the next batch of at least `target` bytes (fewer only at the end of the
    /// stream); `None` once the stream is exhausted.
    ///
    /// # Errors
    /// The source's read errors.
    pub fn next_batch(&mut self, target: usize) -> std::io::Result<Option<Batch>> {
        let max = self.cutter.params.max_size as usize;
        let target = target.max(1);
        let want = target + max;
        let mut buf = self.spare.pop().unwrap_or_default();
        let mut len = self.carry.len();
        // Size the buffer: a whole batch, or what the source is expected to hold (plus one
        // byte, to see its end in the same read). Growth zeroes only the new part, once per
        // buffer's life.
        let expected = self
            .remaining_hint
            .map_or(want, |h| usize::try_from(h).map_or(want, |h| h.saturating_add(len).saturating_add(1).min(want)));
        if buf.len() < expected.max(len) {
            buf.resize(expected.max(len), 0);
        }
        buf[..len].copy_from_slice(&self.carry);
        self.carry.clear();
        while !self.eof && len < want {
            if len == buf.len() {
                // The source holds more than it was expected to.
                buf.resize(want, 0);
            }
            match self.source.read(&mut buf[len..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    len += n;
                    if let Some(h) = &mut self.remaining_hint {
                        *h = h.saturating_sub(n as u64);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.carry.extend_from_slice(&buf[..len]);
                    self.spare.push(buf);
                    return Err(e);
                }
            }
        }
        let ranges = self.cutter.cut_batch(&buf[..len], self.eof, target);
        let pos = ranges.last().map_or(0, |r| r.end);
        self.carry.extend_from_slice(&buf[pos..len]);
        if ranges.is_empty() {
            self.spare.push(buf);
            return Ok(None);
        }
        Ok(Some(Batch { buf, ranges }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 }
    }

    /// `len` bytes of xorshift noise from `seed`: incompressible, and the same on every run.
    pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
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

    /// Every chunk a batcher cuts, batch by batch of `target` bytes.
    fn all_chunks(cutter: &Cutter, input: impl Read, size: Option<u64>, target: usize) -> Vec<Vec<u8>> {
        let mut b = StreamBatcher::new(cutter.clone(), input, size);
        let mut out = Vec::new();
        while let Some(batch) = b.next_batch(target).unwrap() {
            assert_eq!(batch.bytes().len(), batch.ranges().iter().map(|r| r.len()).sum::<usize>());
            out.extend(batch.chunks().map(<[u8]>::to_vec));
            b.recycle(batch);
        }
        out
    }

    /// A reader that hands out at most `step` bytes per call and is interrupted now and then.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(7) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn stream_concatenates_and_respects_bounds(len in 0usize..60_000, seed in any::<u64>(), target in 1usize..20_000, step in 1usize..9000) {
            let input = data(len, seed);
            let cutter = Cutter::new(small(), 42).unwrap();
            let chunks = all_chunks(&cutter, &input[..], None, target);
            let n = chunks.len();
            for (i, c) in chunks.iter().enumerate() {
                prop_assert!(c.len() <= 4096);
                if i + 1 < n { prop_assert!(c.len() >= 256); }
            }
            prop_assert_eq!(chunks.concat(), input.clone());
            // Boundaries depend on the content only: not on batch sizes, read sizes or hints.
            let lens: Vec<usize> = cutter.split(&input).map(|(_, l)| l).collect();
            prop_assert_eq!(&lens, &chunks.iter().map(Vec::len).collect::<Vec<_>>());
            let trickled = all_chunks(&cutter, Trickle { data: &input, step, calls: 0 }, None, target);
            prop_assert_eq!(&lens, &trickled.iter().map(Vec::len).collect::<Vec<_>>());
            for hint in [0, len as u64 / 2, len as u64, len as u64 * 3] {
                let hinted = all_chunks(&cutter, &input[..], Some(hint), target);
                prop_assert_eq!(&lens, &hinted.iter().map(Vec::len).collect::<Vec<_>>());
            }
        }
    }

    /// Cuts one chunk after another from offset 0, with [`Cutter::cut_batch`]'s rule for
    /// which cuts are final.
    fn sequential(cutter: &Cutter, data: &[u8], eof: bool, target: usize) -> Vec<Range<usize>> {
        let max = cutter.params().max_size as usize;
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() && pos < target && (eof || data.len() - pos >= max) {
            let n = cutter.cut(&data[pos..]);
            out.push(pos..pos + n);
            pos += n;
        }
        out
    }

    proptest! {
        #[test]
        fn batch_cut_on_threads_is_the_sequential_chain(
            len in 0usize..200_000,
            seed in any::<u64>(),
            target in 1usize..250_000,
            eof in any::<bool>(),
            repeat in 0usize..4,
        ) {
            let mut input = data(len, seed);
            // Repeated content makes chains meet late or cut at the maximum size.
            if repeat > 0 && len > 0 {
                let block = input[..len.min(5000 * repeat)].to_vec();
                for (i, b) in input.iter_mut().enumerate() { if (i / 7000) % 2 == 1 { *b = block[i % block.len()]; } }
            }
            if repeat == 3 { input.iter_mut().skip(len / 3).for_each(|b| *b = 0); }
            let cutter = Cutter::new(small(), seed).unwrap();
            prop_assert_eq!(cutter.cut_batch(&input, eof, target), sequential(&cutter, &input, eof, target));
        }
    }

    #[test]
    fn a_default_batch_is_cut_on_threads_as_in_sequence() {
        let cutter = Cutter::new(ChunkerParams::default(), 5).unwrap();
        let input = data(9 << 20, 11);
        assert!(input.len() >= 2 * Cutter::SEGMENT * cutter.params().max_size as usize);
        for (eof, target) in [(false, 8 << 20), (true, 8 << 20), (true, usize::MAX)] {
            assert_eq!(cutter.cut_batch(&input, eof, target), sequential(&cutter, &input, eof, target));
        }
    }

    #[test]
    fn boundaries_resync_after_insert() {
        let base = data(200_000, 7);
        let mut shifted = b"a few inserted bytes".to_vec();
        shifted.extend_from_slice(&base);
        let cutter = Cutter::new(small(), 9).unwrap();
        let a: std::collections::HashSet<Vec<u8>> = all_chunks(&cutter, &base[..], None, 50_000).into_iter().collect();
        let b = all_chunks(&cutter, &shifted[..], None, 50_000);
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
