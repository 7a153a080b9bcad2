//! Reading snapshots: one by its name, or every one, with the damaged ones set apart.

use std::sync::Mutex;

use super::{Repository, store_err};
use crate::format::snapshot::{self, Snapshot};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::SnapshotId;
use crate::repository::store::batch::{self, Flow};
use crate::repository::store::{ObjectKey, ObjectKind};

/// Readable snapshots (oldest first), and the unreadable ones with their errors.
pub type CheckedSnapshots = (Vec<(SnapshotId, Snapshot)>, Vec<(SnapshotId, Error)>);

impl Repository {
    /// Loads one snapshot.
    ///
    /// # Errors
    /// Store errors; damaged snapshots.
    pub fn load_snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        Ok(self.load_snapshot_object(id)?.snapshot)
    }

    /// Loads one snapshot object: the snapshot, and, when the object is damaged but one of its
    /// two copies is intact (format version 2), its bytes as written.
    ///
    /// # Errors
    /// Store errors; damaged snapshots.
    pub fn load_snapshot_object(&self, id: SnapshotId) -> Result<snapshot::Opened> {
        let key = ObjectKey::new(ObjectKind::Snapshot, id.0);
        let data = self.store.get(&key).map_err(store_err(key))?;
        snapshot::open_stored(&self.master, &id, &data)
    }

    /// Snapshot objects whose stored bytes are damaged while one of their two copies is
    /// intact, with their bytes as written (for `check` and `repair snapshots`).
    ///
    /// # Errors
    /// Store errors.
    pub fn damaged_snapshot_copies(&self) -> Result<Vec<(SnapshotId, Vec<u8>)>> {
        let mut out = Vec::new();
        for info in self.store.list(ObjectKind::Snapshot).map_err(Error::Storage)? {
            let id = SnapshotId(info.key.id);
            match self.load_snapshot_object(id) {
                Ok(snapshot::Opened { rebuilt: Some(bytes), .. }) => out.push((id, bytes)),
                Err(e) if e.is_storage_trouble() => return Err(e),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Every readable snapshot, oldest first. A damaged snapshot is left out (see
    /// [`Repository::snapshots_checked`]), so one bad object does not block the others.
    ///
    /// # Errors
    /// Store errors listing.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        Ok(self.snapshots_checked()?.0)
    }

    /// Every snapshot that is readable (oldest first), and the ones that are not, with why.
    ///
    /// # Errors
    /// Store errors listing.
    pub fn snapshots_checked(&self) -> Result<CheckedSnapshots> {
        self.require_full("reading snapshots")?;
        let infos = self.store.list(ObjectKind::Snapshot).map_err(Error::Storage)?;
        let loaded: Mutex<Vec<(SnapshotId, Result<Snapshot>)>> = Mutex::new(Vec::with_capacity(infos.len()));
        batch::for_each(
            &infos,
            batch::in_flight(self.store.as_ref(), 0),
            |info| self.load_snapshot(SnapshotId(info.key.id)),
            |n, got| {
                if let Ok(mut all) = loaded.lock() {
                    all.push((SnapshotId(infos[n].key.id), got));
                }
                Flow::Continue
            },
        );
        let mut out = Vec::with_capacity(infos.len());
        let mut damaged = Vec::new();
        for (id, got) in loaded.into_inner().map_err(|_| Error::Internal("snapshot load lock poisoned".into()))? {
            match got {
                Ok(s) => out.push((id, s)),
                // Forgotten by a concurrent `forget` since the listing.
                Err(e) if e.is_missing_object() => {}
                // Not a finding about the snapshot: the store could not be read.
                Err(e) if e.is_storage_trouble() => return Err(e),
                Err(e) => damaged.push((id, e)),
            }
        }
        out.sort_by(|a, b| Snapshot::order((&a.0, &a.1), (&b.0, &b.1)));
        damaged.sort_by_key(|(id, _)| *id);
        Ok((out, damaged))
    }

    /// Every snapshot, failing on the first damaged one: for operations (prune) that must not
    /// act without knowing everything the snapshots reference.
    ///
    /// # Errors
    /// Store errors; damaged snapshots.
    pub fn snapshots_strict(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let (ok, damaged) = self.snapshots_checked()?;
        match damaged.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(ok),
        }
    }
}
