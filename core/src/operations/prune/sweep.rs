//! Sweeping: garbage lists past the grace period have their packs deleted (or indexed again
//! when a snapshot now needs them), with their parity.

use std::collections::HashSet;

use crate::format::index::IndexFile;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest, PackId};
use crate::repository::Repository;
use crate::repository::store::{ObjectKey, ObjectKind};

use super::mark::{Catalog, live_snapshot_trees, mark};
use super::{PruneOptions, PrunePlan};

impl PrunePlan {
    /// Deletes the packs of garbage lists older than the grace period, resurrecting any a
    /// snapshot now needs.
    pub(super) fn sweep(
        &mut self,
        repo: &Repository,
        opts: &PruneOptions,
        now: jiff::Timestamp,
        current: &ObjectKey,
    ) -> Result<()> {
        let grace = jiff::SignedDuration::try_from(opts.grace).unwrap_or(jiff::SignedDuration::MAX);
        let mut resurrect = Vec::new();
        let mut delete_lists = Vec::new();
        let mut deletions: Vec<(PackId, u64)> = Vec::new();
        // Running writers first: a list written after the oldest of them began waits for it
        // (it may have loaded an index naming the list's packs, and reuse them in a snapshot
        // committed after this sweep looked). A writer publishes its marker before it loads
        // the index, so one not listed here loads an index written after these lists.
        let sessions = repo.live_sessions(now)?;
        // Snapshots committed since this prune read them (backups that ran concurrently) may
        // need blobs in the packs about to go: walk them too, through the index as it is now
        // (listed after the snapshots, refreshed if they need more) and the listed packs.
        let fresh: Vec<BlobId> =
            live_snapshot_trees(repo)?.into_iter().filter(|tree| !self.used.contains(tree)).collect();
        let mut catalog = Catalog::read(repo)?;
        mark(repo, &mut catalog, fresh, &mut self.used)?;
        // Blobs needed now, rechecked against what the index holds now. A pack on any list,
        // this run's too, that a snapshot committed meanwhile needs is indexed again at once:
        // that snapshot must restore now, not only after a later prune (FORMAT.md §15).
        let current_index = catalog.index();
        let mut taken_back = HashSet::new();
        for (key, (at, list)) in &catalog.lists {
            let aged = key != current && now.duration_since(*at) >= grace;
            let held = aged && sessions.oldest_start.is_some_and(|start| *at >= start);
            self.stats.lists_held += u64::from(held);
            let due = aged && !held;
            for gp in &list.packs {
                let needed = gp
                    .to_indexed()
                    .filter(|p| p.entries.iter().any(|e| self.used.contains(&e.id) && !current_index.contains(&e.id)));
                match needed {
                    Some(p) if taken_back.insert(p.id) => resurrect.push(p),
                    Some(_) => {}
                    None if due => deletions.push((gp.id, gp.size)),
                    None => {}
                }
            }
            if due {
                delete_lists.push(*key);
            }
        }
        if !resurrect.is_empty() {
            self.stats.packs_resurrected += resurrect.len() as u64;
            let keep: HashSet<PackId> = resurrect.iter().map(|p| p.id).collect();
            deletions.retain(|(id, _)| !keep.contains(id));
            repo.save_index(&IndexFile { supersedes: vec![], packs: resurrect })?;
        }
        let mut spared: HashSet<PackId> = current_index.packs().iter().map(|p| p.id).collect();
        // A pack also on a list that is not due (this run's, a young one, one held for a
        // running writer) waits for that list: prunes list the same pack again when a snapshot
        // took it back and was forgotten since.
        for (key, (_, list)) in &catalog.lists {
            if !delete_lists.contains(key) {
                spared.extend(list.packs.iter().map(|p| p.id));
            }
        }
        let mut seen = HashSet::new();
        for (id, size) in deletions {
            if spared.contains(&id) || !seen.insert(id) {
                continue; // indexed again (e.g. the same bytes uploaded by a later backup)
            }
            if self.delete(repo, &ObjectKey::new(ObjectKind::Pack, id.0))? {
                self.stats.packs_deleted += 1;
                self.stats.bytes_freed += size;
            } else {
                // Still stored: its parity stays with it.
                seen.remove(&id);
            }
        }
        if repo.config().data_parity > 0 {
            self.sweep_parity(repo, now, grace, &seen)?;
        }
        for key in delete_lists {
            self.delete(repo, &key)?;
        }
        for key in sessions.stale {
            self.delete(repo, &key)?;
            self.stats.sessions_stale += 1;
        }
        Ok(())
    }
}

impl PrunePlan {
    /// Deletes the parity of the packs just deleted, and parity objects older than the grace
    /// period whose pack is not stored (a backup stores a pack's parity just before the pack).
    fn sweep_parity(
        &mut self,
        repo: &Repository,
        now: jiff::Timestamp,
        grace: jiff::SignedDuration,
        deleted: &HashSet<PackId>,
    ) -> Result<()> {
        let stored: HashSet<Digest> =
            repo.store().list(ObjectKind::Pack).map_err(Error::Storage)?.into_iter().map(|i| i.key.id).collect();
        for info in repo.store().list(ObjectKind::Parity).map_err(Error::Storage)? {
            let orphan = !stored.contains(&info.key.id) && now.duration_since(info.last_modified) >= grace;
            if (deleted.contains(&PackId(info.key.id)) || orphan) && self.delete(repo, &info.key)? {
                self.stats.parity_deleted += 1;
            }
        }
        Ok(())
    }
}
