//! End-to-end tests of the `cairn` binary: real repositories in temporary directories, real
//! source trees, and the results judged by bytes and metadata (see `cairn_tests::compare`).
//!
//! Built as `cairn-cli`'s `e2e` test (cli/Cargo.toml), the one place where cargo tells a test
//! where the binary is. Run with `cargo test -p cairn-cli --test e2e`. The suite runs as root,
//! as CI does: it chowns files, mounts a small tmpfs and drops to `nobody` for one backup.
//! The PostgreSQL tests need the server `scripts/test.sh` starts; without it they fail and say so.
//!
//! - `backup_restore`: the edge-case tree, subpaths, include/exclude, `ls`, `dump`, `snapshots`.
//! - `change_detection`: unchanged files are not read again.
//! - `unreadable`: a file the backup cannot read is named, left out, and gives exit code 3.
//! - `dumps`: `--stdin` and `--stdin-from-command`, failing producers, real `pg_dump`.
//! - `errors`: wrong password, unknown format, missing and damaged objects, full disks.
//! - `faults`: transient and permanent storage failures, truncated downloads (issue 5).
//! - `s3`: the commands against SeaweedFS on 127.0.0.1, and `copy` from local to S3 (issue 5).
//! - `cold`: data packs in an archive class, warmed up by restores (issue 15, item 4).
//! - `cloud`: the same against Azurite (az://) and rclone WebDAV (http://); credential errors.
//! - `fidelity`: extended attributes, ACLs and inode flags come back, or are named (issue 14).
//! - `index_table`: the index mapped from the local cache, built again when stale or damaged.
//! - `inspect`: ls, find, diff, stats, dump as tar, check subsets and drills, repairs (issue 3).
//! - `interface`: completions, man pages, help (issue 17, item 3).
//! - `policy`: policy files checked, mistakes named by line (issue 16, item 1).
//! - `postgres`: WAL archiving, base backups, point-in-time restore and retention against a
//!   real PostgreSQL with pgbench running (issue 18).
//! - `redundancy`: data packs with parity lose no file to damage; repair packs (issue 14, item 7).
//! - `overwrite`: restores over existing files keep, replace or delete only as told (issue 14).
//! - `permissions`: repositories and the cache are private whatever the umask (issue 14).
//! - `retention`: restic's forty retention cases through the binary, ties in creation order.
//! - `tenants`: tenants sealed apart, crypto-shredded everywhere by `erase --tenant` (issue 16).
//! - `upgrade`: a version 1 repository kept as a fixture restores, checks and migrates.
//! - `write_only`: a host with a write-only key backs up and deduplicates, and reads nothing (issue 15).

mod backup_restore;
mod change_detection;
mod cloud;
mod cold;
mod dumps;
mod errors;
mod faults;
mod fidelity;
mod index_table;
mod inspect;
mod interface;
mod mount;
mod overwrite;
mod permissions;
mod policy;
mod postgres;
mod redundancy;
mod retention;
mod s3;
mod tenants;
mod unreadable;
mod upgrade;
mod write_only;

use std::path::Path;

use cairn_tests::TestRepo;

/// A fresh repository for one test.
fn repo() -> TestRepo {
    TestRepo::init(env!("CARGO_BIN_EXE_cairn"))
}

/// A fresh repository created with extra `init` options.
fn repo_with(options: &[&str]) -> TestRepo {
    TestRepo::init_with(env!("CARGO_BIN_EXE_cairn"), options)
}

/// Where an absolute source path lands when a whole snapshot is restored into `target`.
fn restored(target: &Path, source: &Path) -> std::path::PathBuf {
    target.join(source.strip_prefix("/").expect("source paths are absolute"))
}

/// `SNAP:PATH` for restore.
fn spec(snapshot: &str, path: &Path) -> String {
    format!("{snapshot}:{}", path.display())
}
