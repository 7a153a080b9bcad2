//! The format: every object of a repository, byte for byte (docs/FORMAT.md).
//!
//! Encoders and decoders only, no I/O: the repository config ([`config`]), key files
//! ([`keyfile`]), blobs ([`blob`]), packs ([`pack`]), index objects ([`index`]), directory trees
//! ([`tree`]), snapshot manifests ([`snapshot`]), prune's garbage lists ([`garbage`]),
//! running writers' session markers ([`session`]), packs' parity ([`parity`]) and the
//! records of policy runs ([`record`]). Every
//! decoder here is fuzzed (`fuzz/`) and checked against the test vectors of FORMAT.md. This
//! layer builds on the foundation only.

pub mod blob;
pub mod config;
pub mod garbage;
pub mod index;
pub mod keyfile;
pub mod pack;
pub mod parity;
pub mod record;
pub mod session;
pub mod snapshot;
pub mod tree;
