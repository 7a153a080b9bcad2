//! A write-only host's record of its own last backups (FORMAT.md §5.6).
//!
//! A write-only key opens none of the trees or snapshots in the repository, its own included,
//! so it cannot compare a new backup against the last one there. It keeps instead, on its own
//! disk, the snapshot and every tree of its last backup of each source, sealed under a key
//! derived from what the key holds: an unchanged file is then still not read again. The
//! record is the host's own metadata (names, sizes, times and blob ids of what it backed up),
//! which the host can read anyway; losing it costs one backup that reads everything.
//!
//! ```text
//! DIR/<source>/current/snapshot        sealed snapshot id ‖ CBOR of the snapshot
//! DIR/<source>/current/trees/<id>      sealed tree plaintext
//! ```
//! `<source>` is the keyed BLAKE3 of the host and paths. A backup writes its trees into a new
//! directory beside `current` and moves it into place once its snapshot is stored.

use std::path::{Path, PathBuf};

use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::foundation::crypto::{MasterKey, SealKey};

use crate::foundation::error::{Error, IoContext, Result};
use crate::foundation::id::{BlobId, Digest, SnapshotId};
use crate::foundation::private;

const AAD_TREE: &[u8] = b"cairn own record tree v1";
const AAD_SNAPSHOT: &[u8] = b"cairn own record snapshot v1";

/// The record of one source's last backup, and the one being written.
pub(super) struct OwnRecord {
    source: PathBuf,
    pending: PathBuf,
    key: SealKey,
}

impl OwnRecord {
    /// The record in `dir` of `host`'s backups of `paths`, ready to take a new backup's trees.
    pub(super) fn open(dir: &Path, master: &MasterKey, host: &str, paths: &[String]) -> Result<Self> {
        let root = master.record_root();
        let mut h = blake3::Hasher::new_keyed(&root);
        h.update(host.as_bytes());
        for p in paths {
            h.update(b"\0");
            h.update(p.as_bytes());
        }
        let source = dir.join(h.finalize().to_hex().as_str());
        let mut random = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let pending = source.join(format!("pending-{}", hex::encode(random)));
        private::create_dir_all(&pending.join("trees"), 0o700).at(&pending)?;
        Ok(OwnRecord { source, pending, key: master.record_key() })
    }

    /// The last backup recorded, if any (an unreadable record is no record).
    pub(super) fn last(&self) -> Option<(SnapshotId, Snapshot)> {
        let sealed = std::fs::read(self.source.join("current").join("snapshot")).ok()?;
        let plain = self.key.open(&sealed, AAD_SNAPSHOT).ok()?;
        let id = SnapshotId(Digest(plain.get(..32)?.try_into().ok()?));
        let snapshot = Snapshot::decode_plain(&id, plain.get(32..)?).ok()?;
        Some((id, snapshot))
    }

    /// A tree of the last backup (an unreadable one costs only change detection below it).
    pub(super) fn tree(&self, id: &BlobId) -> Option<Tree> {
        let path = self.source.join("current").join("trees").join(id.to_string());
        let plain = self.key.open(&std::fs::read(path).ok()?, AAD_TREE).ok()?;
        Tree::decode(id, &plain).ok()
    }

    /// Records a tree of the backup being written: a tree the last backup had too (most of
    /// them) is linked, not sealed and written again.
    pub(super) fn add_tree(&self, id: &BlobId, plain: &[u8]) -> Result<()> {
        if self.link_tree(id) {
            return Ok(());
        }
        let path = self.pending.join("trees").join(id.to_string());
        private::write_file(&path, &self.key.seal(plain, AAD_TREE), 0o600).at(&path)
    }

    /// Records a tree the last backup had, by linking its file; whether it could.
    pub(super) fn link_tree(&self, id: &BlobId) -> bool {
        let name = id.to_string();
        std::fs::hard_link(
            self.source.join("current").join("trees").join(&name),
            self.pending.join("trees").join(&name),
        )
        .is_ok()
    }

    /// Makes the backup written the last one: its snapshot goes beside its trees, and the
    /// directory replaces the previous record.
    pub(super) fn commit(self, id: &SnapshotId, snapshot: &Snapshot) -> Result<()> {
        let mut plain = id.0.0.to_vec();
        let _ = ciborium::into_writer(snapshot, &mut plain);
        let path = self.pending.join("snapshot");
        private::write_file(&path, &self.key.seal(&plain, AAD_SNAPSHOT), 0o600).at(&path)?;
        let current = self.source.join("current");
        let old = self
            .source
            .join(format!("old-{}", self.pending.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
        match std::fs::rename(&current, &old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&current, e)),
        }
        std::fs::rename(&self.pending, &current).at(&current)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }
}

impl Drop for OwnRecord {
    /// A backup that failed leaves the previous record as it was.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pending);
    }
}
