//! The index through the local cache's table (FORMAT.md §11a): [`Index::load_cached`] maps the
//! table when it still fits the repository's index objects, decodes only the objects written
//! since beside it, and writes a new table when there was none that fit (through spill files
//! for a large index) or when what was decoded beside it has grown large.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use zerocopy::{FromZeros, IntoBytes};

use super::table::{self, BUCKETS, Table};
use super::{Index, IndexEntry, for_each_object, sort_bucket};
use crate::format::pack::ENTRY_LEN;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::IndexId;

/// The local cache's table is written again once the blobs decoded beside it reach this share
/// of it (1/8): rarely for a large repository, whose table is large.
const REWRITE_SHARE: usize = 8;

/// Reads back `n` entries a spill file holds, from its start.
fn read_bucket(file: &mut std::fs::File, n: u64) -> std::io::Result<Vec<IndexEntry>> {
    use std::io::{Read, Seek};
    let n = usize::try_from(n).map_err(|_| std::io::Error::other("bucket too large"))?;
    let mut entries = vec![IndexEntry::new_zeroed(); n];
    file.seek(std::io::SeekFrom::Start(0))?;
    file.read_exact(entries.as_mut_bytes())?;
    Ok(entries)
}

/// What [`Index::build_table`] holds while decoding: the pack table, and a file per bucket.
struct Spill {
    packs: Index,
    files: Vec<std::io::BufWriter<std::fs::File>>,
    counts: Vec<u64>,
    failed: Option<std::io::Error>,
}

/// A new table is built through spill files, one bucket in memory at a time, when the index
/// objects can hold more entries than this (48 bytes each: 1 GiB); below, in memory, which is
/// faster.
const SPILL_ABOVE: u64 = (1 << 30) / 48;

/// Buffer of each of the 256 spill files (32 MiB in all).
const SPILL_BUFFER: usize = 128 << 10;

impl Index {
    /// [`Index::load`] through the local cache's table at `path` (FORMAT.md §11a): if the
    /// table holds only objects among `objects`, it is mapped and the others are decoded
    /// beside it; otherwise (none yet, a prune replaced objects it holds, or it is damaged) the
    /// index is loaded whole. A new table is written when there was none that fit and the index
    /// has at least `min_blobs` blobs, or when what was decoded beside a table has grown past
    /// 1/8 of it. The cache is a cache: failing to write it costs only time.
    ///
    /// # Errors
    /// As [`Index::load`].
    pub fn load_cached<F>(path: &Path, min_blobs: usize, objects: &[(IndexId, u64)], open: F) -> Result<Index>
    where
        F: Fn(&IndexId) -> Result<Vec<u8>> + Sync,
    {
        Index::load_cached_spilling(path, min_blobs, SPILL_ABOVE, objects, open)
    }

    /// [`Index::load_cached`], building a new table through spill files when the objects can
    /// hold more than `spill_above` entries, and in memory otherwise.
    fn load_cached_spilling<F>(
        path: &Path,
        min_blobs: usize,
        spill_above: u64,
        objects: &[(IndexId, u64)],
        open: F,
    ) -> Result<Index>
    where
        F: Fn(&IndexId) -> Result<Vec<u8>> + Sync,
    {
        let listed: HashSet<IndexId> = objects.iter().map(|o| o.0).collect();
        let table = Table::open(path).filter(|t| t.objects().iter().all(|o| listed.contains(o)));
        let mut index = match table {
            Some(table) => {
                let held: HashSet<IndexId> = table.objects().iter().copied().collect();
                let rest: Vec<(IndexId, u64)> = objects.iter().filter(|o| !held.contains(&o.0)).copied().collect();
                let index = Index::on_table(table).load_more(&rest, open)?;
                let base = index.base.as_ref().map_or(0, |b| b.entries().len());
                if index.buckets.iter().map(Vec::len).sum::<usize>().saturating_mul(REWRITE_SHARE) > base {
                    let _ = index.write_table(path, objects);
                }
                index
            }
            None => {
                // Entries the objects can hold at most: below the threshold, no table.
                let bound: u64 = objects.iter().map(|o| o.1 / ENTRY_LEN as u64).sum();
                if bound < min_blobs as u64 {
                    return Index::load(objects, open);
                }
                let built = if bound > spill_above {
                    Index::build_table(path, objects, &open)?
                } else {
                    let index = Index::load(objects, &open)?;
                    index.write_table(path, objects).ok().and_then(|()| Table::open(path))
                };
                match built {
                    Some(table) if table.objects().iter().eq(objects.iter().map(|o| &o.0)) => Index::on_table(table),
                    // The table could not be written (or another process replaced it at once).
                    _ => Index::load(objects, open)?,
                }
            }
        };
        index.loaded_from = objects.iter().map(|o| o.0).collect();
        Ok(index)
    }

    /// Writes the cache's table at `path` for `objects` and maps it, holding one first-byte
    /// bucket of entries in memory at a time: entries are decoded into 256 unnamed files beside
    /// the table, then each is read back, sorted and appended to the table. `None` if the table
    /// could not be written or mapped (the cache is a cache).
    ///
    /// # Errors
    /// As [`Index::load`]: a failing `open` or a malformed object.
    fn build_table<F>(path: &Path, objects: &[(IndexId, u64)], open: &F) -> Result<Option<Table>>
    where
        F: Fn(&IndexId) -> Result<Vec<u8>> + Sync,
    {
        let Some(dir) = path.parent() else { return Ok(None) };
        if crate::foundation::private::create_dir_all(dir, 0o700).is_err() {
            return Ok(None);
        }
        let files: std::io::Result<Vec<_>> = (0..BUCKETS)
            .map(|_| tempfile::tempfile_in(dir).map(|f| std::io::BufWriter::with_capacity(SPILL_BUFFER, f)))
            .collect();
        let Ok(files) = files else { return Ok(None) };
        let spill = Mutex::new(Spill { packs: Index::default(), files, counts: vec![0; BUCKETS], failed: None });
        let decode = |id: &IndexId, plain: &[u8]| -> Result<()> {
            let mut guard = spill.lock().map_err(|_| Error::Internal("index spill lock poisoned".into()))?;
            let Spill { packs, files, counts, failed } = &mut *guard;
            packs
                .decode_object(plain, &mut |e| {
                    let b = usize::from(e.id.0.0[0]);
                    counts[b] += 1;
                    std::io::Write::write_all(&mut files[b], e.as_bytes()).map_err(|err| {
                        failed.get_or_insert(err);
                        "spilling the index"
                    })
                })
                .map_err(|r| Error::corrupt(format!("index {id}"), r))
        };
        let decoded = for_each_object(objects, open, decode);
        let Spill { packs, files, counts, failed } =
            spill.into_inner().map_err(|_| Error::Internal("index spill lock poisoned".into()))?;
        if failed.is_some() {
            return Ok(None);
        }
        decoded?;
        let files: std::io::Result<Vec<std::fs::File>> =
            files.into_iter().map(|f| f.into_inner().map_err(std::io::IntoInnerError::into_error)).collect();
        let Ok(mut files) = files else { return Ok(None) };
        let ids: Vec<IndexId> = objects.iter().map(|o| o.0).collect();
        // Each bucket read back, sorted and appended in turn: one bucket in memory at a time.
        let bucket = |b: usize, emit: &mut dyn FnMut(&[IndexEntry]) -> Result<()>| -> Result<Vec<IndexEntry>> {
            let file = files.get_mut(b).ok_or_else(|| Error::Internal("index bucket missing".into()))?;
            let mut entries = read_bucket(file, counts[b]).map_err(|e| Error::Internal(format!("index spill: {e}")))?;
            let mut copies = sort_bucket(&mut entries, None);
            copies.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.pack().cmp(&b.pack())));
            emit(&entries)?;
            Ok(copies)
        };
        let contents = table::Contents { objects: &ids, packs: &packs.packs, bucket };
        if table::write(path, contents).is_err() {
            return Ok(None);
        }
        Ok(Table::open(path))
    }

    /// An index of the mapped `table` alone.
    fn on_table(mut table: Table) -> Index {
        // The index holds the pack table; the mapped table keeps only what lookups map.
        let packs = table.take_packs();
        let pack_numbers = packs.iter().enumerate().map(|(n, p)| (p.id, n as u32)).collect();
        Index { packs, pack_numbers, sorted: true, base: Some(Arc::new(table)), ..Index::default() }
    }

    /// Writes this finalized index, held objects `objects`, as the cache's table at `path`.
    fn write_table(&self, path: &Path, objects: &[(IndexId, u64)]) -> Result<()> {
        let ids: Vec<IndexId> = objects.iter().map(|o| o.0).collect();
        let base = self.base.as_deref();
        let mut alternates: Vec<IndexEntry> = base.map(|b| b.alternates().to_vec()).unwrap_or_default();
        if !self.alternates.is_empty() {
            alternates.extend_from_slice(&self.alternates);
            alternates.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.pack().cmp(&b.pack())));
        }
        let mut merged = Vec::new();
        let bucket = |b: usize, emit: &mut dyn FnMut(&[IndexEntry]) -> Result<()>| -> Result<Vec<IndexEntry>> {
            let from = alternates.partition_point(|e| usize::from(e.id.0.0[0]) < b);
            let to = alternates.partition_point(|e| usize::from(e.id.0.0[0]) <= b);
            let copies = alternates[from..to].to_vec();
            let old = base.map(|t| t.bucket(b)).unwrap_or_default();
            let new = self.buckets.get(b).map(Vec::as_slice).unwrap_or_default();
            if new.is_empty() || old.is_empty() {
                emit(if new.is_empty() { old } else { new })?;
                return Ok(copies);
            }
            // Both sorted, and no id in both (finalize dropped those from the buckets).
            merged.clear();
            merged.reserve(old.len() + new.len());
            let (mut i, mut j) = (0, 0);
            while i < old.len() && j < new.len() {
                if old[i].id < new[j].id {
                    merged.push(old[i]);
                    i += 1;
                } else {
                    merged.push(new[j]);
                    j += 1;
                }
            }
            merged.extend_from_slice(&old[i..]);
            merged.extend_from_slice(&new[j..]);
            emit(&merged)?;
            Ok(copies)
        };
        table::write(path, table::Contents { objects: &ids, packs: &self.packs, bucket })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::{IndexFile, IndexedPack};
    use crate::format::pack::{PackEntry, PackSeal};
    use crate::foundation::id::{Digest, PackId};
    use crate::repository::index::table::PACK_MASK;
    use crate::repository::index::tests::{check_union, entry, objects};
    use std::collections::HashMap;

    /// [`Index::load_cached`] of `files`, counting the objects it decodes; a new table is built
    /// through spill files.
    fn load_cached(path: &Path, files: &[(IndexId, IndexFile)]) -> (Index, usize) {
        load_cached_spilling(path, files, 0)
    }

    /// [`Index::load_cached`] of `files` building new tables through spill files above
    /// `spill_above` entries.
    fn load_cached_spilling(path: &Path, files: &[(IndexId, IndexFile)], spill_above: u64) -> (Index, usize) {
        let plain: HashMap<IndexId, Vec<u8>> = files.iter().map(|(id, f)| (*id, f.encode())).collect();
        let sizes: Vec<(IndexId, u64)> = files.iter().map(|(id, f)| (*id, f.encode().len() as u64 + 44)).collect();
        let opened = std::sync::atomic::AtomicUsize::new(0);
        let idx = Index::load_cached_spilling(path, 0, spill_above, &sizes, |id| {
            opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            plain.get(id).cloned().ok_or_else(|| Error::NotFound(format!("index {id}")))
        })
        .unwrap();
        (idx, opened.into_inner())
    }

    #[test]
    fn the_cached_table_is_mapped_and_only_new_objects_are_decoded() {
        // A new table built through spill files, and in memory.
        for spill_above in [0, u64::MAX] {
            cached_table_round(spill_above);
        }
    }

    fn cached_table_round(spill_above: u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index").join("table");
        let files = objects(40, 1000, 30);
        // First open: everything decoded, the table written and mapped in its place.
        let (idx, opened) = load_cached_spilling(&path, &files[..30], spill_above);
        assert_eq!(opened, 30);
        assert!(idx.is_mapped());
        check_union(&idx, &files[..30]);
        assert_eq!(idx.loaded_from().len(), 30);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        // Unchanged: nothing decoded at all.
        let (idx, opened) = load_cached_spilling(&path, &files[..30], spill_above);
        assert_eq!(opened, 0);
        check_union(&idx, &files[..30]);
        // Two more objects (under 1/8 of the table): only they are decoded, beside the table.
        let (idx, opened) = load_cached_spilling(&path, &files[..32], spill_above);
        assert_eq!(opened, 2);
        assert!(idx.is_mapped());
        check_union(&idx, &files[..32]);
        let (_, opened) = load_cached_spilling(&path, &files[..32], spill_above);
        assert_eq!(opened, 2, "the table was not written again for so few");
        // Eight more (past 1/8): the table is written again and holds them.
        let (idx, opened) = load_cached_spilling(&path, &files, spill_above);
        assert_eq!(opened, 10);
        check_union(&idx, &files);
        let (idx, opened) = load_cached_spilling(&path, &files, spill_above);
        assert_eq!(opened, 0);
        check_union(&idx, &files);
        // A prune replaced objects the table holds: it is not used, and blobs only they
        // named are gone.
        let (idx, opened) = load_cached_spilling(&path, &files[5..], spill_above);
        assert_eq!(opened, 35);
        check_union(&idx, &files[5..]);
    }

    /// Where the entries start in the table file of `mapped`, `len` bytes long.
    fn entries_at(mapped: &Index, len: usize) -> usize {
        let table = mapped.base.as_deref().unwrap();
        len - (table.entries().len() + table.alternates().len()) * 48
    }

    #[test]
    fn an_object_that_fails_to_open_fails_the_load_and_leaves_no_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        let files = objects(4, 1000, 0);
        let sizes: Vec<(IndexId, u64)> = files.iter().map(|(id, f)| (*id, f.encode().len() as u64)).collect();
        let broken = files[2].0;
        let loaded = Index::load_cached(&path, 0, &sizes, |id| {
            let file = &files.iter().find(|(f, _)| f == id).unwrap().1;
            if *id == broken { Err(Error::NotFound(format!("index {id}"))) } else { Ok(file.encode()) }
        });
        assert!(matches!(loaded, Err(Error::NotFound(_))), "{loaded:?}");
        assert!(!path.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "no spill file is left: {names:?}");
    }

    #[test]
    fn a_damaged_or_foreign_table_is_built_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        let files = objects(6, 3000, 10);
        let (reference, _) = load_cached(&path, &files);
        let good = std::fs::read(&path).unwrap();
        // A byte of the header, of the objects or packs, or of the directory (the zeros between it
        // and the entries are not read); the file cut short
        // or made longer; another format's bytes.
        let entries_at = entries_at(&reference, good.len());
        let mut damaged: Vec<Vec<u8>> = [3, 20, 60, 100, 200, entries_at - 50_000, entries_at - 4200]
            .iter()
            .map(|&at| {
                let mut d = good.clone();
                d[at] ^= 0x10;
                d
            })
            .collect();
        damaged.push(good[..good.len() - 48].to_vec());
        damaged.push([good.as_slice(), &[0; 48]].concat());
        damaged.push(b"not a table".to_vec());
        damaged.push(Vec::new());
        for (n, d) in damaged.iter().enumerate() {
            std::fs::write(&path, d).unwrap();
            let (idx, opened) = load_cached(&path, &files);
            assert_eq!(opened, 6, "damage {n}: a damaged table is not used");
            check_union(&idx, &files);
            let (idx, opened) = load_cached(&path, &files);
            assert_eq!(opened, 0, "and is written again");
            check_union(&idx, &files);
        }
    }

    #[test]
    fn an_entry_naming_a_pack_the_table_lacks_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        let files = objects(3, 500, 0);
        let (idx, _) = load_cached(&path, &files);
        let victim = *idx.entries().next().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let entries_at = entries_at(&idx, bytes.len());
        // The first entry's pack number (bytes 32..36 of it), past every pack.
        bytes[entries_at + 32..entries_at + 36].copy_from_slice(&(PACK_MASK - 1).to_ne_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let (idx, opened) = load_cached(&path, &files);
        assert_eq!(opened, 0, "the damage is in an entry, which no open reads");
        assert!(idx.get(&victim.id).is_none());
        assert!(idx.entries().all(|e| e.id != victim.id));
    }

    #[test]
    fn copies_of_trees_survive_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        let (a, b, c) = (PackId(Digest::of(b"a")), PackId(Digest::of(b"b")), PackId(Digest::of(b"c")));
        let tree = entry(5);
        let file = |packs: Vec<(PackId, PackEntry)>| {
            let f = IndexFile {
                supersedes: vec![],
                packs: packs
                    .into_iter()
                    .map(|(id, e)| IndexedPack {
                        id,
                        seal: PackSeal::salted([1; 16]),
                        entries: vec![e, entry(id.0.0[0].into())],
                    })
                    .collect(),
            };
            (IndexId(Digest::of(&f.encode())), f)
        };
        let mut files = vec![file(vec![(a, tree), (b, PackEntry { offset: 99, ..tree })])];
        let (idx, _) = load_cached(&path, &files);
        assert!(idx.is_mapped());
        let copies = |idx: &Index| idx.alternates(&tree.id).iter().map(|e| idx.pack(e).id).collect::<Vec<_>>();
        assert_eq!(copies(&idx), [b]);
        assert_eq!(idx.pack(idx.get(&tree.id).unwrap()).id, a);
        // A third copy in an object decoded beside the table.
        files.push(file(vec![(c, PackEntry { offset: 7, ..tree })]));
        let (idx, opened) = load_cached(&path, &files);
        assert_eq!(opened, 1);
        assert_eq!(idx.pack(idx.get(&tree.id).unwrap()).id, a);
        assert_eq!(idx.len(), 4);
        let (idx, opened) = load_cached(&path, &files);
        assert_eq!(opened, 0, "written again: the new object was more than 1/8");
        assert_eq!(copies(&idx), [b, c]);
    }
}
