//! The pack side of the writer: where each new blob goes (an [`Allocator`] gives it a [`Slot`] in
//! an open pack of its [`Lane`]), the packer thread that gathers each pack's blobs and closes
//! it, and the finisher thread that lays closed packs out for the uploaders.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::Shared;
use crate::format::blob::{BlobKind, SealedBlob};
use crate::format::pack::{FinishedPack, MAX_ENTRIES, PackSeal, PackWriter};
use crate::foundation::crypto::{SALT_LEN, SealKey};
use crate::repository::Repository;

/// A pack taking blobs: its salt, key, and the room given out so far.
struct OpenPack {
    seq: u64,
    seal: PackSeal,
    key: Arc<SealKey>,
    len: usize,
    count: usize,
}

/// Gives each new blob its place in an open pack (data, trees, and the trees' second copies
/// apart), closing a pack once the room given out reaches the pack size or the most entries a
/// header holds.
#[derive(Default)]
pub(super) struct Allocator {
    next: u64,
    open: [Option<OpenPack>; 3],
}

/// Which open pack a blob goes to: data, a tree, or a tree's second copy.
#[derive(Debug, Clone, Copy)]
pub(super) enum Lane {
    Data = 0,
    Tree = 1,
    TreeCopy = 2,
}

/// Where a blob goes: its pack, the key to seal it under, and, for the blob that fills the
/// pack, how many blobs the pack holds.
pub(super) struct Slot {
    seq: u64,
    seal: PackSeal,
    pub(super) key: Arc<SealKey>,
    closes: Option<usize>,
}

impl Allocator {
    pub(super) fn reserve(&mut self, repo: &Repository, lane: Lane, sealed_len: usize, target: usize) -> Slot {
        let next = &mut self.next;
        let open = self.open[lane as usize].get_or_insert_with(|| {
            // A write-only key seals each pack to the repository's public key (FORMAT.md §5.5).
            let (salt, public, generation, key) = repo.master().new_pack_key();
            *next += 1;
            let seal = PackSeal { salt, public, generation };
            OpenPack { seq: *next, seal, key: Arc::new(key), len: SALT_LEN, count: 0 }
        });
        open.len += sealed_len;
        open.count += 1;
        let full = open.len >= target || open.count >= MAX_ENTRIES as usize;
        let slot =
            Slot { seq: open.seq, seal: open.seal, key: Arc::clone(&open.key), closes: full.then_some(open.count) };
        if full {
            self.open[lane as usize] = None;
        }
        slot
    }
}

/// A sealed blob on its way to the packer, with its place.
pub(super) struct Placed {
    pub(super) slot: Slot,
    pub(super) blob: SealedBlob,
}

/// A pack every blob given a place in has reached, on its way to the finisher, which lays it
/// out: copying its blobs together and hashing them takes a pack's worth of memory bandwidth,
/// and done on the packer's thread it held up every caller behind the blob queue meanwhile.
pub(super) struct ClosedPack {
    writer: PackWriter,
    key: Arc<SealKey>,
    trees: bool,
}

impl ClosedPack {
    /// Lays the pack out in `buf` (whose allocation is reused) and seals its header. Data packs
    /// are shuffled. Tree packs keep the order trees were written in (a directory after its
    /// subdirectories, the root last), so a restore gets a new snapshot's trees with its
    /// root's own request (`restore::fetch_window`).
    fn finish(mut self, buf: Vec<u8>) -> FinishedPack {
        self.writer.reuse_buffer(buf);
        self.writer.finish(&self.key, !self.trees)
    }
}

impl Shared<'_> {
    /// Collects sealed blobs into their packs; a pack is closed once every blob given a place
    /// in it has arrived, and the packs still open when the callers are done are closed then.
    pub(super) fn packer(&self, blobs: &Receiver<Placed>, packs: &Sender<ClosedPack>) {
        let mut building: HashMap<u64, (ClosedPack, Option<usize>)> = HashMap::new();
        for Placed { slot, blob } in blobs {
            let (pack, expect) = building.entry(slot.seq).or_insert_with(|| {
                let pack = ClosedPack {
                    writer: PackWriter::with_buffer(slot.seal, Vec::new()),
                    key: Arc::clone(&slot.key),
                    trees: blob.kind == BlobKind::Tree,
                };
                (pack, None)
            });
            pack.writer.add(blob);
            *expect = expect.or(slot.closes);
            if *expect == Some(pack.writer.count())
                && let Some((full, _)) = building.remove(&slot.seq)
                && packs.send(full).is_err()
            {
                return;
            }
        }
        let mut rest: Vec<(u64, ClosedPack)> = building.into_iter().map(|(seq, (pack, _))| (seq, pack)).collect();
        rest.sort_by_key(|(seq, _)| *seq);
        for (_, pack) in rest {
            if packs.send(pack).is_err() {
                return;
            }
        }
    }

    /// Lays out the packs the packer closed, in a buffer an uploader gave back when there is
    /// one, and hands them to the uploaders.
    pub(super) fn finisher(
        &self,
        closed: &Receiver<ClosedPack>,
        packs: &Sender<FinishedPack>,
        spare: &Receiver<Vec<u8>>,
    ) {
        for pack in closed {
            if packs.send(pack.finish(spare.try_recv().unwrap_or_default())).is_err() {
                return;
            }
        }
    }
}
