//! Cairn's benchmark suite.
//!
//! - [`dataset`]: deterministic, seeded generators for the data a backup tool meets: a
//!   `pg_dump` and its daily series, incompressible media, a tree of tens of thousands of files
//!   and its mutated next version. Sizes are arguments; the same seed gives the same bytes.
//!   Beside them, real `pg_dump` output of pgbench databases, made on a PostgreSQL server.
//! - [`stages`]: each pipeline stage (chunk, hash, compress, seal, pack) timed alone through
//!   `cairn-core`, and the pipeline limit they imply on this machine. The criterion benches in
//!   `benches/stages.rs` measure the same functions.
//! - [`harness`]: the end-to-end run of the `cairn` binary and, when installed, restic, borg,
//!   rustic and bupstash on the same data: initial, unchanged and changed backups and a
//!   restore, with wall time, CPU time, peak RSS and repository size ([`measure`]), each step
//!   after a `sync`; then cairn's own figures: backup and restore with 20 ms added to every
//!   store request (issue 5), the restore file system's write rate, the rate at which the disk
//!   under the repositories takes synced pack-sized files (the backup's limit there), memory
//!   flatness and index opening.
//! - [`s3`]: the same tools against a real S3 server on this machine (SeaweedFS), directly and
//!   through a TCP proxy that adds 20 or 80 ms round trips ([`proxy`]), and one large file.
//! - [`report`]: `docs/BENCHMARKS.md`, with issue 4's targets marked met or not met.
//!
//! ```text
//! cargo build --release -p cairn-cli --features testing
//! cargo run --release -p cairn-bench -- run --size 1GiB --out docs/BENCHMARKS.md
//! cargo bench -p cairn-bench && cargo run --release -p cairn-bench -- limit --criterion target/criterion
//! scripts/bench.sh            # the whole suite on tiny inputs, in seconds (no timing asserted)
//! ```

pub mod dataset;
pub mod harness;
pub mod index_bench;
pub mod machine;
pub mod measure;
pub mod object_storage;
pub mod proxy;
pub mod report;
pub mod rng;
pub mod s3;
pub mod scratch;
pub mod stages;
pub mod tools;
