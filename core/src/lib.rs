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
//! ```
//! use std::sync::Arc;
//! use cairn_core::{InitOptions, Repository, store::object_store::ObjectStoreBackend};
//! let store = Arc::new(ObjectStoreBackend::open("memory://doctest", &Default::default()).unwrap());
//! let mut opts = InitOptions::default();
//! opts.kdf = cairn_core::KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
//! let repo = Repository::init(store.clone(), b"password", &opts).unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("hello.txt"), b"hello, world").unwrap();
//! let source = cairn_core::backup::BackupSource::paths([dir.path()]);
//! let summary = cairn_core::backup::run(&repo, source, &Default::default(), &cairn_core::NoProgress).unwrap();
//! let target = tempfile::tempdir().unwrap();
//! let restore = cairn_core::restore::RestoreOptions::new(target.path());
//! let repo = Repository::open(store, b"password").unwrap();
//! cairn_core::restore::run(&repo, &summary.snapshot.to_string(), &restore, &cairn_core::NoProgress).unwrap();
//! let restored = target.path().join(dir.path().strip_prefix("/").unwrap()).join("hello.txt");
//! assert_eq!(std::fs::read(restored).unwrap(), b"hello, world");
//! ```
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// The layers, each built on the ones before it only (docs/ARCHITECTURE.md).

pub mod format;
mod foundation;
mod operations;
mod repository;

pub mod advanced;

pub use format::keyfile::KdfParams;
pub use format::snapshot::{Snapshot, Summary};
pub use format::tree::{Node, NodeKind, Time};
pub use foundation::chunk::ChunkerParams;
pub use foundation::error::{Error, ErrorKind, Result, StoreError};
pub use foundation::id;
pub use foundation::id::{BlobId, KeyId, PackId, SnapshotId};
pub use foundation::progress::{NoProgress, Progress};
pub use operations::{backup, check, copy, inspect, prune, repair, restore, retention};
pub use repository::store;
pub use repository::{InitOptions, Repository, SnapshotFilter};
