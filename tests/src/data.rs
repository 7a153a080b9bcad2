//! Deterministic test data: the same seed gives the same bytes on every machine and run, so a
//! failing test reproduces exactly.
//!
//! [`Rng`] is SplitMix64 (Steele, Lea and Flood 2014): tiny, fast and fully specified, unlike a
//! library generator whose output may change between versions.

use std::io::Write;
use std::path::Path;

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0; the tiny modulo bias does not matter for test data).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` incompressible bytes.
#[must_use]
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    Rng::new(seed).fill(&mut v);
    v
}

const WORDS: [&str; 24] = [
    "backup", "restore", "chunk", "pack", "index", "snapshot", "tree", "blob", "cairn", "hash", "seal", "zstd", "the",
    "of", "and", "a", "to", "in", "is", "data", "file", "dump", "row", "id",
];

/// `len` bytes of compressible text: lines of words from a small vocabulary, like a log or a dump.
#[must_use]
pub fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 64);
    let mut line = 0u64;
    while out.len() < len {
        let _ = write!(out, "{line:08} ");
        for _ in 0..4 + rng.below(8) {
            out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
            out.push(b' ');
        }
        out.push(b'\n');
        line += 1;
    }
    out.truncate(len);
    out
}

/// Writes `bytes` to `path`, creating or replacing it.
///
/// # Panics
/// If the file cannot be written.
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Waits until what was written so far is settled: the next backup trusts the timestamps it
/// records only of files that last changed at least 100 ms before it began (a change within
/// the same tick of the file system's clock would not show), and reads the others again the
/// time after. Tests that count what a later backup does not read call this between writing
/// their files and the backup the later one compares against.
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(150));
}

/// Writes `len` random bytes from `seed` to `path`; returns them, for tests that compare.
pub fn write_random(path: &Path, seed: u64, len: usize) -> Vec<u8> {
    let bytes = random_bytes(seed, len);
    write(path, &bytes);
    bytes
}

/// The bytes of every regular file below `dir`, summed (a repository's stored size).
///
/// # Panics
/// If `dir` cannot be read.
#[must_use]
pub fn size_of_tree(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).flatten() {
        let meta = e.metadata().unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
        total += if meta.is_dir() { size_of_tree(&e.path()) } else { meta.len() };
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(random_bytes(7, 1000), random_bytes(7, 1000));
        assert_ne!(random_bytes(7, 1000), random_bytes(8, 1000));
        assert_eq!(random_bytes(7, 13), random_bytes(7, 1000)[..13]);
        assert_eq!(text_bytes(1, 5000).len(), 5000);
        assert!(text_bytes(1, 5000).iter().all(|b| b.is_ascii()));
    }

    #[test]
    fn splitmix_reference_value() {
        // First output of SplitMix64 seeded with 0 (reference implementation).
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
