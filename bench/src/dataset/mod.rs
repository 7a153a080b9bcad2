//! Deterministic datasets: every generator takes a seed and a size and writes the same bytes on
//! every machine (see [`crate::rng`]).
//!
//! - [`sql`]: a `pg_dump` of a shop database, and the daily series of it.
//! - [`media`]: incompressible media files (photos and videos).
//! - [`pgbench`]: real `pg_dump` output of a pgbench database, made on a PostgreSQL server
//!   (blank filler as pgbench writes it, or row-specific text); the one dataset not generated
//!   here, so not the same bytes everywhere.
//! - [`tree`]: tens of thousands of small and medium files, and a mutated second version.
//! - [`random_stream`]: an endless incompressible stream, for memory-flatness runs.

pub mod media;
pub mod pgbench;
pub mod sql;
pub mod tree;

use std::io::{self, Write};

use crate::rng::Rng;

pub(crate) fn sql_words() -> &'static [&'static str] {
    sql::vocabulary::WORDS
}

/// Writes `bytes` incompressible bytes from `seed` to `out` (several GB/s on one core).
///
/// # Errors
/// Errors of `out`.
pub fn random_stream<W: Write>(seed: u64, bytes: u64, out: &mut W) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}
