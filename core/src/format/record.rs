//! Run records (FORMAT.md §14b): what `cairn run --policy` did, step by step, stored in the
//! repository beside the backups it made, so the evidence that a policy was kept lives with
//! the backups and survives the host that ran it.
//!
//! Stored as sealed CBOR of [`RunRecord`] (associated data `cairn record v1`), named by the
//! BLAKE3 of the stored bytes, written once and never replaced. Prune never deletes them.

use serde::{Deserialize, Serialize};

use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::ObjectKey;

const RECORD_AAD: &[u8] = b"cairn record v1";
/// Version of the run record encoding.
pub const RECORD_VERSION: u32 = 1;

/// One run of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The host that ran it.
    pub host: String,
    /// When the run began (the time it judged what was due by).
    pub started: jiff::Timestamp,
    /// When it ended.
    pub finished: jiff::Timestamp,
    /// Each step it took, in order; a run with nothing due has none.
    pub steps: Vec<StepRecord>,
}

impl RunRecord {
    /// The record of a run on this host that began at `started` and took `steps` (it ended
    /// when their time had passed).
    #[must_use]
    pub fn new(started: jiff::Timestamp, steps: Vec<StepRecord>) -> Self {
        let took = jiff::SignedDuration::from_secs_f64(steps.iter().map(|s| s.seconds).sum());
        RunRecord {
            version: RECORD_VERSION,
            host: crate::foundation::identity::host_and_user().0,
            started,
            finished: started + took,
            steps,
        }
    }

    /// Whether every step succeeded.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }

    /// Encodes and seals the record for storage.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        super::seal_cbor(master, self, RECORD_AAD)
    }

    /// Opens the stored record `key`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming it when it fails authentication or decoding, or has an unknown
    /// version.
    pub fn open(master: &MasterKey, key: &ObjectKey, sealed: &[u8]) -> Result<Self> {
        let plain = super::open_sealed(master, key, sealed, RECORD_AAD)?;
        Self::decode(key, &plain)
    }

    /// Decodes the plaintext of the record `key` (public for the fuzz target).
    ///
    /// # Errors
    /// As [`RunRecord::open`], after authentication.
    pub fn decode(key: &ObjectKey, plain: &[u8]) -> Result<Self> {
        let record: RunRecord = super::decode_cbor(key, plain)?;
        if record.version != RECORD_VERSION {
            return Err(Error::corrupt(key, format!("unknown run record version {}", record.version)));
        }
        Ok(record)
    }
}

/// What a step of a run was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A backup of one source (`target` is the source's name).
    Backup,
    /// The retention tiers applied (`forget`).
    Forget,
    /// A prune.
    Prune,
    /// A copy to one off-site repository (`target` is the copy's name).
    Copy,
    /// A check, reading one slice of the data.
    Check,
    /// A restore drill of one source's newest snapshot (`target` is the source's name).
    Drill,
    /// An erasure request carried out in one repository (`target` is `primary` or the
    /// copy's name; the details are in [`StepRecord::erasure`]).
    Erase,
}

impl StepKind {
    /// The name used in records, status and metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Backup => "backup",
            StepKind::Forget => "forget",
            StepKind::Prune => "prune",
            StepKind::Copy => "copy",
            StepKind::Check => "check",
            StepKind::Drill => "drill",
            StepKind::Erase => "erase",
        }
    }
}

impl StepRecord {
    /// A step of `kind` for `target`, `ok` or not, with nothing else said yet.
    #[must_use]
    pub fn new(kind: StepKind, target: &str, ok: bool) -> Self {
        StepRecord {
            kind,
            target: target.to_string(),
            ok,
            message: String::new(),
            seconds: 0.0,
            snapshot: None,
            slice: None,
            bytes: 0,
            erasure: None,
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// What it was.
    pub kind: StepKind,
    /// The source or copy it was for (empty for steps of the whole repository).
    pub target: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it did, or why it failed, in words.
    pub message: String,
    /// Seconds it took.
    pub seconds: f64,
    /// The snapshot it made (a backup) or checked (a drill), as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// For a check: its slice, `n` of `m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<(u32, u32)>,
    /// Bytes the step read, wrote or restored.
    #[serde(default)]
    pub bytes: u64,
    /// For an erasure: what was erased, and when its bytes left the storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<Erasure>,
}

/// What one erasure request removed from one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Erasure {
    /// The request's id, as the operator gave it.
    pub request: String,
    /// The patterns erased (as `rewrite --exclude`).
    pub patterns: Vec<String>,
    /// Each snapshot rewritten: its id before and after, as hex.
    pub snapshots: Vec<(String, String)>,
    /// The paths removed, across those snapshots (each once).
    pub files: Vec<String>,
    /// When the last pack holding erased bytes was deleted from storage; `None` while a
    /// running backup still holds them (a later prune deletes them).
    pub bytes_deleted_at: Option<jiff::Timestamp>,
    /// Packs deleted (for a tenant shredded: every object of its repository deleted).
    pub packs_deleted: u64,
    /// For a tenant shredded (`erase --tenant`): its name. `patterns` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// For a tenant shredded: when its key was destroyed, from which moment nothing of it can
    /// be opened; `None` if it had no key in this repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_destroyed_at: Option<jiff::Timestamp>,
    /// Objects the storage refused to delete, with why: shredded (unreadable) but still held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::id::{Digest, ObjectKind};

    fn record() -> RunRecord {
        let t: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        RunRecord {
            version: RECORD_VERSION,
            host: "db1".into(),
            started: t,
            finished: t + jiff::SignedDuration::from_secs(5),
            steps: vec![StepRecord {
                kind: StepKind::Check,
                target: String::new(),
                ok: true,
                message: "no errors".into(),
                seconds: 1.5,
                snapshot: None,
                slice: Some((3, 7)),
                bytes: 42,
                erasure: None,
            }],
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let m = MasterKey::generate();
        let key = ObjectKey::new(ObjectKind::Record, Digest::of(b"k"));
        let mut sealed = record().seal(&m);
        assert_eq!(RunRecord::open(&m, &key, &sealed).unwrap(), record());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(RunRecord::open(&m, &key, &sealed).is_err(), "a changed byte fails authentication");
        assert!(RunRecord::open(&MasterKey::generate(), &key, &record().seal(&m)).is_err(), "another key");
    }

    #[test]
    fn an_unknown_version_is_named() {
        let mut r = record();
        r.version = 9;
        let mut plain = Vec::new();
        ciborium::into_writer(&r, &mut plain).unwrap();
        let key = ObjectKey::new(ObjectKind::Record, Digest::of(b"k"));
        let err = RunRecord::decode(&key, &plain).unwrap_err().to_string();
        assert!(err.contains("unknown run record version 9"), "{err}");
    }
}
