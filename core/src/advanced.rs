//! The engine's plumbing, for tools that work below the operations: fuzzers, benchmarks, the
//! test kit, and programs that read or write a repository piece by piece.
//!
//! Most embedders never need these: the crate root has the repository, the operations and their
//! outcomes. What is here is stable only as far as the on-disk format it serves.

pub use crate::foundation::{chunk, codec, compress, crypto, identity, path, pattern, private};
pub use crate::repository::keycache::KeyCache;
pub use crate::repository::{index, trees, writer};
