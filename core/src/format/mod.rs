//! The format: every object of a repository, byte for byte (docs/FORMAT.md).
//!
//! Encoders and decoders only, no I/O: the repository config ([`config`]), key files
//! ([`keyfile`]), blobs ([`blob`]), packs ([`pack`]), index objects ([`index`]), directory trees
//! ([`tree`]), snapshot manifests ([`snapshot`]), prune's garbage lists ([`garbage`]),
//! running writers' session markers ([`session`]), packs' parity ([`parity`]) and the
//! records of policy runs ([`record`]), archived PostgreSQL WAL files ([`wal`]) and tenants'
//! keys ([`tenant`]). Every
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
pub mod tenant;
pub mod tree;
pub mod wal;

use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::ObjectKey;

/// The layout of the small sealed objects (garbage lists, session markers, run records):
/// `value` as CBOR, sealed as metadata ([`MasterKey::seal_meta`]) with the kind's associated
/// data `aad`.
fn seal_cbor<T: serde::Serialize>(master: &MasterKey, value: &T, aad: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    // Writing CBOR into a Vec cannot fail.
    let _ = ciborium::into_writer(value, &mut plain);
    master.seal_meta(&plain, aad)
}

/// The plaintext of the sealed object `key`, authenticated with `aad`.
fn open_sealed(master: &MasterKey, key: &ObjectKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    master.open_meta(sealed, aad).map_err(|e| Error::crypto(key, e))
}

/// Decodes the CBOR plaintext of `key`; a decoding error names it.
fn decode_cbor<T: serde::de::DeserializeOwned>(key: &ObjectKey, plain: &[u8]) -> Result<T> {
    ciborium::from_reader(plain).map_err(|e| Error::corrupt(key, e.to_string()))
}
