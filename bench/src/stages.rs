//! Per-stage throughput of the backup pipeline, and the pipeline limit it implies.
//!
//! Each stage is run over the same sample (a slice of the SQL dump, or incompressible bytes)
//! exactly as the engine runs it, through `cairn-core`'s own types:
//!
//! | stage | call |
//! |---|---|
//! | chunk | [`StreamBatcher`] over the sample (reading into its buffer, and the boundaries) |
//! | hash | [`MasterKey::blob_id`] of every chunk |
//! | compress | [`compress::compress`] of every chunk at the repository's level |
//! | seal | [`SealKey::seal`] of every payload (compressed when that paid, raw otherwise) |
//! | pack | [`PackWriter::add`] of every sealed blob, [`PackWriter::finish`] per pack |
//!
//! Every stage's time is for the whole sample, so times add: one core running all stages in
//! turn moves `sample / Σ tᵢ` bytes per second (the per-core limit, `1 / Σ (1 / rateᵢ)`), and
//! `cores` such cores move `cores ×` that. That is the most any pipeline made of these stages
//! can do on this machine, however it is scheduled. (The chunker cuts a large batch of one stream
//! on several threads, so one stream is not capped by one core's chunking.)
//!
//! The engine also hashes every file as a whole (a second BLAKE3 pass over the content, for
//! `restore --verify`); it is measured too, as `file-hash`, and shown apart because it is not one
//! of the design's stages.

use std::time::{Duration, Instant};

use cairn_core::advanced::chunk::{ChunkerParams, Cutter, StreamBatcher};
use cairn_core::advanced::compress::{self, Codec};
use cairn_core::advanced::crypto::{MasterKey, SealKey};
use cairn_core::format::blob::{BlobKind, SealedBlob};
use cairn_core::format::pack::{PackSeal, PackWriter};

use crate::dataset::sql::Database;

/// Sample length the criterion benches and `cairn-bench limit` use.
pub const SAMPLE_BYTES: usize = 16 << 20;
/// zstd level of `cairn init`'s default.
pub const LEVEL: i32 = 1;
/// Pack size of `cairn init`'s default.
pub const PACK_SIZE: usize = 16 << 20;

/// The kind of data a sample holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// A slice of the SQL dump: compresses about 4–6×.
    Text,
    /// Incompressible bytes, like media files.
    Random,
}

impl DataKind {
    /// Short name used in bench ids and tables.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Text => "text",
            DataKind::Random => "random",
        }
    }
}

/// The stages, in pipeline order.
pub const STAGES: [&str; 5] = ["chunk", "hash", "compress", "seal", "pack"];

/// A sample prepared for every stage: its chunks, their payloads and sealed forms are computed
/// once, so each stage can be timed alone.
pub struct Prepared {
    /// The sample.
    pub data: Vec<u8>,
    /// The data kind.
    pub kind: DataKind,
    cutter: Cutter,
    master: MasterKey,
    key: SealKey,
    chunks: Vec<(usize, usize)>,
    payloads: Vec<(Codec, Vec<u8>)>,
    sealed: Vec<SealedBlob>,
    /// The chunker's buffers, kept from run to run as an engine worker keeps them from file
    /// to file: the stage is measured in its steady state, not allocating.
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
    /// One thread: the chunker cuts a large batch on all of its pool's threads, and a stage is
    /// measured on one core.
    one_core: rayon::ThreadPool,
}

/// `len` bytes of `kind` data, the same on every machine.
#[must_use]
pub fn sample(kind: DataKind, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + (1 << 20));
    match kind {
        DataKind::Text => {
            // Skip the schema preamble: the sample is rows, as almost all of a dump is.
            let db = Database::new(11, len as u64 * 11 / 10);
            let _ = db.write_dump(&mut out);
            let start = out.windows(5).position(|w| w == b"COPY ").unwrap_or(0);
            out.drain(..start);
            out.truncate(len);
        }
        DataKind::Random => {
            let _ = crate::dataset::random_stream(12, len as u64, &mut out);
        }
    }
    out
}

impl Prepared {
    /// Prepares `len` bytes of `kind` with the engine's default parameters.
    #[must_use]
    pub fn new(kind: DataKind, len: usize) -> Self {
        let data = sample(kind, len);
        let master = MasterKey::from_bytes([7; 32]);
        let cutter = Cutter::new(ChunkerParams::default(), master.chunker_seed()).unwrap_or_else(|e| panic!("{e}"));
        let key = master.subkey(&[9; 16]).expect("a full key");
        let chunks: Vec<(usize, usize)> = cutter.split(&data).collect();
        let payloads: Vec<(Codec, Vec<u8>)> = chunks
            .iter()
            .map(|&(o, l)| match compress::compress(&data[o..o + l], LEVEL) {
                Some(c) => (Codec::Zstd, c),
                None => (Codec::None, data[o..o + l].to_vec()),
            })
            .collect();
        let sealed = chunks
            .iter()
            .zip(&payloads)
            .map(|(&(o, l), (codec, p))| SealedBlob {
                kind: BlobKind::Data,
                id: master.blob_id(&data[o..o + l]),
                codec: *codec,
                raw_len: l as u32,
                bytes: key.seal(p, b"blob"),
            })
            .collect();
        let one_core = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
        Prepared {
            data,
            kind,
            cutter,
            master,
            key,
            chunks,
            payloads,
            sealed,
            buffers: std::sync::Mutex::default(),
            one_core,
        }
    }

    /// Stored bytes per input byte after compression (1.0 for incompressible data).
    #[must_use]
    pub fn compression_ratio(&self) -> f64 {
        self.payloads.iter().map(|(_, p)| p.len()).sum::<usize>() as f64 / self.data.len().max(1) as f64
    }

    /// Chunks the sample as a stream; returns the number of chunks.
    #[must_use]
    pub fn chunk(&self) -> usize {
        let mut buffers = self.buffers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batcher =
            StreamBatcher::with_buffers(self.cutter.clone(), &self.data[..], None, std::mem::take(&mut *buffers));
        let mut chunks = 0;
        self.one_core.install(|| {
            while let Ok(Some(batch)) = batcher.next_batch(8 << 20) {
                chunks += batch.len();
                batcher.recycle(batch);
            }
        });
        *buffers = batcher.into_buffers();
        chunks
    }

    /// Keyed BLAKE3 of every chunk; returns a byte of the last id (so nothing is optimised away).
    #[must_use]
    pub fn hash(&self) -> u8 {
        self.chunks.iter().fold(0, |acc, &(o, l)| acc ^ self.master.blob_id(&self.data[o..o + l]).0.0[0])
    }

    /// Compresses every chunk; returns the bytes kept.
    #[must_use]
    pub fn compress(&self) -> usize {
        self.chunks.iter().map(|&(o, l)| compress::compress(&self.data[o..o + l], LEVEL).map_or(l, |c| c.len())).sum()
    }

    /// Seals every payload; returns the sealed bytes.
    #[must_use]
    pub fn seal(&self) -> usize {
        self.payloads.iter().map(|(_, p)| self.key.seal(p, b"blob").len()).sum()
    }

    /// Copies of the sealed blobs, for [`Prepared::pack`] (which consumes them, as the packer does).
    #[must_use]
    pub fn sealed_blobs(&self) -> Vec<SealedBlob> {
        self.sealed
            .iter()
            .map(|s| SealedBlob { kind: s.kind, id: s.id, codec: s.codec, raw_len: s.raw_len, bytes: s.bytes.clone() })
            .collect()
    }

    /// Assembles the sealed blobs into packs of the default size; returns the bytes packed.
    #[must_use]
    pub fn pack(&self, blobs: Vec<SealedBlob>) -> usize {
        let mut total = 0;
        let mut writer = PackWriter::new(PackSeal::salted([1; 16]), PACK_SIZE);
        // As the engine's packer does: each pack is written into the buffer of the last one.
        let mut finish = |w: PackWriter| {
            let bytes = w.finish(&self.key, true).bytes;
            total += bytes.len();
            bytes.try_into_mut().map(Vec::from).unwrap_or_default()
        };
        for b in blobs {
            writer.add(b);
            if writer.len() >= PACK_SIZE {
                let full = std::mem::replace(&mut writer, PackWriter::new(PackSeal::salted([1; 16]), 0));
                writer = PackWriter::with_buffer(PackSeal::salted([1; 16]), finish(full));
            }
        }
        if !writer.is_empty() {
            finish(writer);
        }
        total
    }

    /// The engine's whole-file BLAKE3 pass.
    #[must_use]
    pub fn file_hash(&self) -> u8 {
        blake3::hash(&self.data).as_bytes()[0]
    }
}

/// Seconds each stage takes for one sample.
#[derive(Debug, Clone)]
pub struct StageTimes {
    /// What was measured.
    pub kind: DataKind,
    /// Sample length in bytes.
    pub bytes: usize,
    /// Stored bytes per input byte.
    pub compression_ratio: f64,
    /// `(stage, seconds per sample)` in pipeline order; [`STAGES`] then `file-hash`.
    pub times: Vec<(&'static str, f64)>,
}

impl StageTimes {
    /// Throughput of one stage in bytes of input per second.
    #[must_use]
    pub fn rate(&self, stage: &str) -> f64 {
        self.times.iter().find(|(s, _)| *s == stage).map_or(0.0, |(_, t)| self.bytes as f64 / t)
    }

    /// What one core running every design stage in turn achieves, in bytes per second.
    #[must_use]
    pub fn per_core_limit(&self) -> f64 {
        let total: f64 = self.times.iter().filter(|(s, _)| STAGES.contains(s)).map(|(_, t)| t).sum();
        self.bytes as f64 / total
    }

    /// The same including the engine's extra whole-file hash.
    #[must_use]
    pub fn per_core_engine(&self) -> f64 {
        let total: f64 = self.times.iter().map(|(_, t)| t).sum();
        self.bytes as f64 / total
    }

    /// The pipeline limit on `cores` cores.
    #[must_use]
    pub fn limit(&self, cores: usize) -> f64 {
        self.per_core_limit() * cores as f64
    }
}

fn best_of(min_time: Duration, mut f: impl FnMut() -> Duration) -> f64 {
    let started = Instant::now();
    let mut best = f64::MAX;
    let mut runs = 0;
    while runs < 3 || started.elapsed() < min_time {
        best = best.min(f().as_secs_f64());
        runs += 1;
    }
    best
}

fn timed<T>(f: impl FnOnce() -> T) -> Duration {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed()
}

/// Measures every stage on one core, keeping each stage's best of several runs over at least
/// `min_time` (the best, not the mean: other work on a shared machine only ever slows a run).
#[must_use]
pub fn measure(kind: DataKind, len: usize, min_time: Duration) -> StageTimes {
    let p = Prepared::new(kind, len);
    let times = vec![
        ("chunk", best_of(min_time, || timed(|| p.chunk()))),
        ("hash", best_of(min_time, || timed(|| p.hash()))),
        ("compress", best_of(min_time, || timed(|| p.compress()))),
        ("seal", best_of(min_time, || timed(|| p.seal()))),
        (
            "pack",
            best_of(min_time, || {
                let blobs = p.sealed_blobs();
                timed(|| p.pack(blobs))
            }),
        ),
        ("file-hash", best_of(min_time, || timed(|| p.file_hash()))),
    ];
    StageTimes { kind, bytes: p.data.len(), compression_ratio: p.compression_ratio(), times }
}

/// Reads criterion's estimates for the `stages` bench (`target/criterion/<kind>/<stage>`), if a
/// `cargo bench -p cairn-bench` has run.
#[must_use]
pub fn from_criterion(dir: &std::path::Path, kind: DataKind) -> Option<StageTimes> {
    let mut times = Vec::new();
    for stage in STAGES.iter().copied().chain(["file-hash"]) {
        let path = dir.join(kind.name()).join(stage).join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let ns = v.get("mean")?.get("point_estimate")?.as_f64()?;
        times.push((stage, ns / 1e9));
    }
    let ratio = Prepared::new(kind, 1 << 20).compression_ratio();
    Some(StageTimes { kind, bytes: SAMPLE_BYTES, compression_ratio: ratio, times })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_run_and_add_up() {
        let p = Prepared::new(DataKind::Text, 2 << 20);
        assert_eq!(p.data.len(), 2 << 20);
        assert!(p.chunk() >= 2);
        assert!(p.compression_ratio() < 0.5, "{}", p.compression_ratio());
        assert!(p.compress() < p.data.len());
        assert!(p.seal() > 0);
        assert!(p.pack(p.sealed_blobs()) > 0);
        let r = Prepared::new(DataKind::Random, 1 << 20);
        assert!(r.compression_ratio() > 0.99);
        let t = measure(DataKind::Random, 1 << 20, Duration::ZERO);
        assert!(t.per_core_limit() > 0.0 && t.limit(2) > t.per_core_limit());
        assert!(t.per_core_engine() < t.per_core_limit());
    }
}
