//! Cairn: a content-defined deduplicating backup engine.
//!
//! ```text
//! walk ─▶ unchanged vs parent? ─ yes ─▶ reuse node
//!            │ no
//!            ▼
//!  read (mmap for large files, buffered otherwise, streams for stdin and commands)
//!            ▼
//!  FastCDC boundaries (keyed) ─▶ rayon: keyed BLAKE3 id ─▶ known? ─ yes ─▶ reference only
//!                                          │ new
//!                                          ▼
//!                      zstd (when it pays) ─▶ AES-256-GCM (per-session subkey)
//!                                          ▼
//!          packer (data and tree packs apart) ─▶ uploaders ─▶ index objects ─▶ snapshot (last)
//! ```
//!
//! The engine is a library: it prints nothing and never exits the process. The `cairn` binary in
//! `cli/` is one front end.
//!
//! Back up a stream the program makes and get it back, in a local repository:
//!
//! ```
//! use cairn_core::backup::{self, BackupOptions, BackupSource};
//! use cairn_core::{InitOptions, NoProgress, Repository, restore};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = dir.path().join("repo").to_string_lossy().into_owned();
//! # let mut options = InitOptions::default();
//! # options.kdf = cairn_core::KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
//! let repo = Repository::init_url(&url, b"password", &options)?;
//! let dump: &[u8] = b"CREATE TABLE shop (id int);\n";
//! let done = backup::run(&repo, BackupSource::reader("shop.sql", dump), &BackupOptions::default(), &NoProgress)?;
//!
//! let repo = Repository::open_url(&url, b"password")?;
//! let snapshot = repo.load_snapshot(done.snapshot)?;
//! let mut restored = Vec::new();
//! restore::file(&repo, &snapshot, "/shop.sql".as_ref(), &mut restored)?;
//! assert_eq!(restored, dump);
//! # Ok::<(), cairn_core::Error>(())
//! ```
//!
//! The layers and the data flow of a backup and a restore are drawn in `docs/ARCHITECTURE.md`;
//! every object is described byte by byte in `docs/FORMAT.md`.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// The layers, each built on the ones before it only (docs/ARCHITECTURE.md). What an embedder
// needs is re-exported below; the plumbing is under `advanced` and `format`.
mod foundation;
mod operations;
pub mod policy;
mod repository;

pub mod advanced;
pub mod format;

pub use format::keyfile::KdfParams;
pub use format::snapshot::{Snapshot, Summary};
pub use format::tree::{Node, NodeKind, Time};
pub use foundation::chunk::ChunkerParams;
pub use foundation::duration::parse_duration;
pub use foundation::error::{Error, ErrorKind, Result, StoreError};
pub use foundation::id;
pub use foundation::id::{BlobId, IndexId, KeyId, PackId, SnapshotId};
pub use foundation::progress::{NoProgress, Progress};
pub use operations::forget::retention;
pub use operations::{
    backup, browse, check, copy, forget, inspect, migrate, postgres, prune, repair, restore, status, tag,
};
pub use repository::keys::KeyInfo;
pub use repository::select::{SnapshotFilter, SnapshotPath, SnapshotRef};
pub use repository::store;
pub use repository::{CheckedSnapshots, INDEX_TABLE_MIN_BLOBS, InitOptions, Repository};
