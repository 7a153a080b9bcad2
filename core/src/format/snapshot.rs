//! Snapshot manifests: the commit point of a backup (FORMAT.md §Snapshots).
//!
//! A snapshot is written last, after every pack and index object it needs, so a crash leaves
//! either a whole snapshot or none. It is CBOR of [`Snapshot`], sealed, named by the BLAKE3 of
//! its stored bytes. In format version 2 the object holds the sealed message twice, byte for
//! byte ([`Snapshot::store`]), so a damaged byte range in one copy is rebuilt from the other
//! ([`open_stored`]).

use serde::{Deserialize, Serialize};

use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::fsmeta::XattrFilter;
use crate::foundation::id::{BlobId, Digest, SnapshotId};

/// Version of the snapshot encoding.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Associated data of snapshot objects.
pub const SNAPSHOT_AAD: &[u8] = b"cairn snapshot v1";

/// A stored snapshot object, opened.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// When the stored bytes did not match the object's name but one copy of the sealed
    /// snapshot in it was intact: the object's bytes as written, rebuilt from that copy (they
    /// hash to the name).
    pub rebuilt: Option<Vec<u8>>,
}

/// Opens the stored object `snapshots/<id>`: sealed once (format version 1) or twice (version
/// 2). Bytes that do not hash to `id` are damaged; a doubled object whose intact copy rebuilds
/// bytes hashing to `id` still opens, with [`Opened::rebuilt`] set.
///
/// # Errors
/// [`Error::Corrupt`] naming the snapshot when it is damaged beyond that, or does not open.
pub fn open_stored(master: &MasterKey, id: &SnapshotId, stored: &[u8]) -> Result<Opened> {
    let n = stored.len();
    if Digest::of(stored) == id.0 {
        let once = if n.is_multiple_of(2) && stored[..n / 2] == stored[n / 2..] { &stored[..n / 2] } else { stored };
        return Ok(Opened { snapshot: Snapshot::open(master, id, once)?, rebuilt: None });
    }
    // The copies' lengths: half the object, or where the second copy's nonce repeats the
    // first's (when the object was cut short or grew).
    let mut lengths: Vec<usize> = Vec::new();
    if n.is_multiple_of(2) {
        lengths.push(n / 2);
    }
    if let Some(nonce) = stored.get(..12) {
        lengths.extend((28..n.saturating_sub(11)).filter(|&p| stored[p..p + 12] == *nonce).take(4));
    }
    for len in lengths {
        for copy in
            [stored.get(..len), stored.get(len..2 * len), stored.get(n.saturating_sub(len)..)].into_iter().flatten()
        {
            if copy.len() != len {
                continue;
            }
            let whole = [copy, copy].concat();
            if Digest::of(&whole) == id.0
                && let Ok(snapshot) = Snapshot::open(master, id, copy)
            {
                return Ok(Opened { snapshot, rebuilt: Some(whole) });
            }
        }
    }
    Err(Error::corrupt(format!("snapshot {id}"), "content does not match its name"))
}

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Files not seen in the parent.
    pub files_new: u64,
    /// Files whose metadata changed since the parent, so were read again.
    pub files_changed: u64,
    /// Files reused from the parent without reading.
    pub files_unmodified: u64,
    /// Directories.
    pub dirs: u64,
    /// Other entries (symlinks, devices, pipes).
    pub others: u64,
    /// Bytes of the files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read and chunked.
    pub bytes_read: u64,
    /// Bytes of holes in sparse files, chunked as zeros without being read (absent when
    /// none were).
    #[serde(default, skip_serializing_if = "u64_is_zero")]
    pub bytes_in_holes: u64,
    /// New blobs stored.
    pub blobs_new: u64,
    /// Plaintext bytes of the new blobs.
    pub bytes_new: u64,
    /// Bytes the new packs take in the repository.
    pub bytes_stored: u64,
    /// Wall time of the backup, seconds.
    pub seconds: f64,
    /// Entries that could not be read (their paths).
    pub errors: Vec<String>,
    /// Files that kept changing while they were read, stored as last read (their paths;
    /// absent when none did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

/// Whether a count is zero (an optional summary key is left out then).
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn u64_is_zero(n: &u64) -> bool {
    *n == 0
}

/// A snapshot manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// When the backup was taken (or the time given with `--time`).
    pub time: jiff::Timestamp,
    /// The host it was taken on.
    pub host: String,
    /// The user who took it.
    pub user: String,
    /// The paths backed up (absolute), or the stdin file name.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The snapshot change detection compared against.
    pub parent: Option<SnapshotId>,
    /// The root tree.
    pub tree: BlobId,
    /// What the backup did.
    pub summary: Summary,
    /// For a copied snapshot: its id in the repository it came from.
    #[serde(default)]
    pub original: Option<SnapshotId>,
    /// When the snapshot object was made (the clock of the host that made it), whatever `time`
    /// says: among snapshots with the same `time`, the order every host and run agrees on
    /// (then the id). Absent in snapshots written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<jiff::Timestamp>,
    /// The cairn version that wrote it.
    pub program: String,
    /// For a PostgreSQL base backup (`cairn pg backup`): where it starts and stops in the
    /// write-ahead log. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<BaseBackup>,
    /// The root tree's subdirectory entries, as [`crate::format::tree::Node::subdirs`] records
    /// a directory's: what `repair snapshots` puts back when every copy of the root tree is
    /// lost. Absent in snapshots written before it was recorded, and for streams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subdirs: Vec<crate::format::tree::Node>,
    /// For a backup of paths that read every entry's extended attributes and inode flags
    /// without a problem: which attributes it read. A later backup reading the same ones takes
    /// an entry's attributes from this snapshot while its ctime says they did not change.
    /// Absent otherwise, for streams, and in snapshots written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<AttributesRead>,
}

/// Which extended attributes a backup read of every entry ([`Snapshot::attributes`]; FORMAT.md
/// §13): the choices of `--no-xattrs`, `--no-acls`, and whether it ran as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributesRead {
    /// Attributes other than the POSIX ACLs.
    pub xattrs: bool,
    /// The POSIX ACLs.
    pub acls: bool,
    /// `trusted.*` and `security.*` too.
    pub privileged: bool,
}

impl From<XattrFilter> for AttributesRead {
    fn from(f: XattrFilter) -> Self {
        AttributesRead { xattrs: f.xattrs, acls: f.acls, privileged: f.privileged }
    }
}

/// What a PostgreSQL base backup needs from the WAL archive to be restored (FORMAT.md §13).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseBackup {
    /// The name the WAL archive of its cluster goes by (`--cluster`).
    pub cluster: String,
    /// The cluster's system identifier (`pg_control`), as decimal text.
    pub system_identifier: String,
    /// The timeline it started on.
    pub timeline: u32,
    /// The WAL position it started at (its checkpoint's redo point).
    pub start_lsn: u64,
    /// The WAL position from which it is consistent: replay must reach it.
    pub stop_lsn: u64,
    /// The timeline it stopped on.
    pub stop_timeline: u32,
    /// The WAL segment size of the cluster, in bytes.
    pub segment_size: u64,
    /// When it started, by the server's clock.
    pub start_time: jiff::Timestamp,
    /// When it stopped (cairn's clock, when pg_basebackup finished).
    pub stop_time: jiff::Timestamp,
}

impl Snapshot {
    /// Seals for storage.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        let mut plain = Vec::new();
        let _ = ciborium::into_writer(self, &mut plain);
        master.seal_object(&plain, SNAPSHOT_AAD)
    }

    /// The bytes to store in a repository of format `version`: the sealed snapshot, twice in
    /// version 2 (FORMAT.md §13).
    #[must_use]
    pub fn store(&self, master: &MasterKey, version: u32) -> Vec<u8> {
        let sealed = self.seal(master);
        if version < 2 {
            return sealed;
        }
        [&sealed[..], &sealed[..]].concat()
    }

    /// Opens a stored snapshot.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedVersion`] naming the snapshot.
    pub fn open(master: &MasterKey, id: &SnapshotId, sealed: &[u8]) -> Result<Self> {
        let plain = master.open_object(sealed, SNAPSHOT_AAD).map_err(|e| Error::crypto(format!("snapshot {id}"), e))?;
        Self::decode_plain(id, &plain)
    }

    /// Decodes an opened snapshot's CBOR plaintext (the part of [`Snapshot::open`] after
    /// authentication; public for the fuzz targets and test vectors).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedVersion`] naming the snapshot.
    pub fn decode_plain(id: &SnapshotId, plain: &[u8]) -> Result<Self> {
        let what = || format!("snapshot {id}");
        let snap: Snapshot = ciborium::from_reader(plain).map_err(|e| Error::corrupt(what(), e.to_string()))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(Error::UnsupportedVersion { object: what(), found: snap.version, supported: SNAPSHOT_VERSION });
        }
        Ok(snap)
    }

    /// The order of snapshots everyone agrees on: by `time`, then by when they were made
    /// (`created`; snapshots without it first), then by id.
    #[must_use]
    pub fn order(a: (&SnapshotId, &Snapshot), b: (&SnapshotId, &Snapshot)) -> std::cmp::Ordering {
        a.1.time.cmp(&b.1.time).then(a.1.created.cmp(&b.1.created)).then(a.0.cmp(b.0))
    }

    /// When the backup that made it began, on its host's clock: `created` less the backup's
    /// `seconds` (so a little before what it read was first looked at). `None` without
    /// `created`, or with a `seconds` that is no duration.
    #[must_use]
    pub fn started(&self) -> Option<jiff::Timestamp> {
        let took = jiff::SignedDuration::try_from_secs_f64(self.summary.seconds).ok()?;
        self.created?.checked_sub(took).ok()
    }

    /// Whether the snapshot carries every tag in `tags`.
    #[must_use]
    pub fn has_tags(&self, tags: &[String]) -> bool {
        tags.iter().all(|t| self.tags.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let m = MasterKey::generate();
        let s = Snapshot {
            version: SNAPSHOT_VERSION,
            time: "2026-11-23T10:00:00.123456789Z".parse().unwrap(),
            host: "h".into(),
            user: "u".into(),
            paths: vec!["/a".into()],
            tags: vec!["t".into()],
            parent: None,
            tree: BlobId::default(),
            summary: Summary { files_new: 3, seconds: 1.5, ..Default::default() },
            original: None,
            created: None,
            program: "cairn test".into(),
            postgres: None,
            subdirs: Vec::new(),
            attributes: Some(AttributesRead { xattrs: true, acls: false, privileged: true }),
        };
        let sealed = s.seal(&m);
        let id = SnapshotId::default();
        assert_eq!(Snapshot::open(&m, &id, &sealed).unwrap(), s);
        let mut bad = sealed.clone();
        bad[40] ^= 1;
        assert!(Snapshot::open(&m, &id, &bad).is_err());
        assert!(Snapshot::open(&MasterKey::generate(), &id, &sealed).is_err());
    }

    fn sample() -> Snapshot {
        crate::repository::testing::snapshot_of(BlobId::default())
    }

    #[test]
    fn a_version_2_object_survives_damage_to_one_copy() {
        let m = MasterKey::generate();
        let stored = sample().store(&m, 2);
        let id = SnapshotId(Digest::of(&stored));
        let n = stored.len();
        assert!(open_stored(&m, &id, &stored).unwrap().rebuilt.is_none());
        // A flipped byte in either copy, the object cut short, or grown: the intact copy rebuilds
        // exactly the bytes written.
        let mut damaged = Vec::new();
        for at in [0, 13, n / 2 - 1, n / 2, n / 2 + 20, n - 1] {
            let mut d = stored.clone();
            d[at] ^= 0x10;
            damaged.push(d);
        }
        damaged.push(stored[..n - 7].to_vec());
        damaged.push([&stored[..], b"junk"].concat());
        for d in damaged {
            let opened = open_stored(&m, &id, &d).unwrap();
            assert_eq!(opened.snapshot, sample());
            assert_eq!(opened.rebuilt.as_deref(), Some(&stored[..]));
        }
        // Both copies damaged: an error, never a snapshot.
        let mut both = stored.clone();
        both[5] ^= 1;
        both[n / 2 + 5] ^= 1;
        assert!(open_stored(&m, &id, &both).is_err());
        // Version 1 objects (sealed once) open as before, and damage to them is an error.
        let once = sample().store(&m, 1);
        let id1 = SnapshotId(Digest::of(&once));
        assert_eq!(open_stored(&m, &id1, &once).unwrap().snapshot, sample());
        let mut bad = once.clone();
        bad[30] ^= 1;
        assert!(open_stored(&m, &id1, &bad).is_err());
    }
}
