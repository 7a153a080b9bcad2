//! Concurrency (issue 6, item 6): backups, forget and prune running at the same time, each in a
//! process of its own, against one repository; afterwards `check --read-data` is clean and every
//! snapshot a backup reported as saved restores exactly.
//!
//! Built as `cairn-cli`'s `concurrency` test (cli/Cargo.toml), the package that owns the binary
//! and so gets `CARGO_BIN_EXE_cairn`. Run with `cargo test -p cairn-cli --test concurrency`.
//! The S3 test needs the SeaweedFS server `scripts/test.sh` starts (`source scripts/s3.sh;
//! start_s3` in a shell, then cargo in that shell); without it the test fails and says so.
//!
//! - `race`: the loop. Backup workers (each backing up a private source tree it mutates between
//!   backups, so the content of every snapshot is known) run beside a `forget --keep-last N
//!   --prune --grace 2s` worker and a `prune --grace 2s` worker, on a local and on an S3
//!   repository. A backup may fail with the "was removed while this backup ran" error; any other
//!   failure, a saved snapshot that does not restore exactly, or one that vanished without
//!   forget removing it, fails the test.
//! - `interleavings`: the races that matter, made deterministic by holding a backup (reading a
//!   command's output) at a chosen point: prune marking and sweeping the pack the backup is about
//!   to deduplicate against, and prune running while a long backup has written an index checkpoint
//!   but not yet its snapshot.
//! - `harness`: running `cairn` with a time limit, the mutating trees, manifests.

mod harness;
mod interleavings;
mod race;
