//! Repacking: the used blobs of the packs a plan repacks, and the trees it writes once more,
//! copied into new packs.

use std::collections::HashMap;
use std::path::Path;

use crate::format::blob::BlobKind;
use crate::format::index::IndexedPack;
use crate::format::pack::PackEntry;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, PackId};
use crate::foundation::progress::Progress;
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::writer::WriteOptions;

use super::PrunePlan;

impl PrunePlan {
    pub(super) fn repack_blobs(&self, repo: &Repository, progress: &dyn Progress) -> Result<Vec<IndexedPack>> {
        let copied = |e: &PackEntry| self.used.contains(&e.id) && self.index.contains(&e.id);
        let total: u64 =
            self.repack.iter().flat_map(|p| &p.entries).filter(|e| copied(e)).map(|e| u64::from(e.length)).sum();
        progress.total(total, self.repack.len() as u64);
        // Blobs kept in another pack need no copy; the writer skips what this index holds. A
        // tree kept in fewer than two packs is left out of it, so the writer stores what it
        // lacks.
        let mut tree_copies: HashMap<BlobId, u32> = HashMap::new();
        for e in self.keep.iter().flat_map(|p| &p.entries).filter(|e| e.kind == BlobKind::Tree) {
            *tree_copies.entry(e.id).or_default() += 1;
        }
        let mut kept = Index::default();
        for p in &self.keep {
            let entries: Vec<PackEntry> = p
                .entries
                .iter()
                .filter(|e| e.kind != BlobKind::Tree || tree_copies.get(&e.id).copied().unwrap_or(0) >= 2)
                .copied()
                .collect();
            kept.add_pack(p.id, p.seal, &entries);
        }
        kept.finalize();
        let ((), _, packs) = repo.write_packs(&kept, WriteOptions::default(), |writer| {
            for p in &self.repack {
                for e in p.entries.iter().filter(|e| self.used.contains(&e.id)) {
                    let Some(entry) = self.index.get(&e.id) else { continue };
                    // A tree whose first copy fails is read from its other one.
                    let plain = repo.read_blob(&self.index, e.kind, &e.id).map_err(|err| {
                        if err.is_missing_object() { swept_while_running(self.index.pack(entry).id) } else { err }
                    })?;
                    // A tree the kept packs hold once gets one more copy, one they do not hold
                    // gets two: every used tree ends with exactly two, never three.
                    if e.kind == BlobKind::Tree && tree_copies.get(&e.id) == Some(&1) {
                        writer.add_tree_copy(e.id, &plain)?;
                    } else {
                        writer.add_with_id(e.kind, e.id, &plain)?;
                    }
                    progress.bytes_read(u64::from(e.length));
                }
                progress.file_done(
                    Path::new(&format!("pack {}", p.id.short())),
                    p.entries.iter().map(|e| u64::from(e.length)).sum(),
                );
            }
            // The one copy left is read (through the other copies if it fails), then stored
            // once more.
            for id in &self.recopy {
                let plain = repo.read_blob(&self.index, BlobKind::Tree, id)?;
                writer.add_tree_copy(*id, &plain)?;
            }
            Ok(())
        })?;
        Ok(packs)
    }
}

/// The error of a prune that meant to repack a pack another prune swept meanwhile.
fn swept_while_running(id: PackId) -> Error {
    Error::Conflict {
        object: format!("pack {id}"),
        reason: "was removed while this prune ran (by a concurrent prune); nothing was committed, run it again".into(),
    }
}
