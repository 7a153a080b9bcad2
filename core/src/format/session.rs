//! Session markers (FORMAT.md §14a): a writer that may reuse packs (a backup, `copy`,
//! `rewrite`, `repair snapshots`) announces itself before it loads the index and refreshes the
//! announcement while it runs, so a prune's sweep keeps every garbage list written after the
//! oldest running writer began: that writer may have loaded an index naming the listed packs.
//! A crashed writer's markers stop being refreshed and are ignored once stale, so no lock is
//! ever left behind.
//!
//! Stored as sealed CBOR of [`SessionMarker`] (associated data `cairn session v1`), named by the
//! BLAKE3 of the stored bytes. The store's timestamps, not the contents, say when a session
//! began (its marker of `seq` 0) and when it was last refreshed (its newest marker).

use serde::{Deserialize, Serialize};

use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, ObjectKey};

const SESSION_AAD: &[u8] = b"cairn session v1";
/// Version of the session marker encoding.
pub const SESSION_VERSION: u32 = 1;

/// One marker of a running writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMarker {
    /// [`SESSION_VERSION`].
    pub version: u32,
    /// Random, the same in every marker of one session.
    pub session: Digest,
    /// 0 for the marker written when the session began, then 1, 2, … for each refresh.
    pub seq: u64,
    /// The host the writer runs on (for a person reading `cairn check`'s report).
    pub host: String,
    /// Its process id.
    pub pid: u32,
}

impl SessionMarker {
    /// Encodes and seals the marker for storage.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        super::seal_cbor(master, self, SESSION_AAD)
    }

    /// Opens the stored marker `key`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming it when it fails authentication or decoding, or has an unknown
    /// version.
    pub fn open(master: &MasterKey, key: &ObjectKey, sealed: &[u8]) -> Result<Self> {
        let plain = super::open_sealed(master, key, sealed, SESSION_AAD)?;
        Self::decode(key, &plain)
    }

    /// Decodes the plaintext of the marker `key` (public for the fuzz target).
    ///
    /// # Errors
    /// As [`SessionMarker::open`], after authentication.
    pub fn decode(key: &ObjectKey, plain: &[u8]) -> Result<Self> {
        let marker: SessionMarker = super::decode_cbor(key, plain)?;
        if marker.version != SESSION_VERSION {
            return Err(Error::corrupt(key, format!("unknown session marker version {}", marker.version)));
        }
        Ok(marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::id::ObjectKind;

    #[test]
    fn round_trip_and_tamper() {
        let m = MasterKey::generate();
        let marker = SessionMarker { version: 1, session: Digest::of(b"s"), seq: 3, host: "h".into(), pid: 42 };
        let key = ObjectKey::new(ObjectKind::Session, Digest::of(b"k"));
        let sealed = marker.seal(&m);
        assert_eq!(SessionMarker::open(&m, &key, &sealed).unwrap(), marker);
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(SessionMarker::open(&m, &key, &bad).unwrap_err().to_string().contains("session marker"));
        let future = SessionMarker { version: 2, ..marker };
        assert!(SessionMarker::open(&m, &key, &future.seal(&m)).is_err());
    }
}
