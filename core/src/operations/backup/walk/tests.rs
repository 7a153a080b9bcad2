use super::*;
use crate::foundation::chunk::tests::data as noise;
use crate::foundation::progress::NoProgress;
use crate::operations::backup::files::{FileOutcome, INLINE_MAX, Results, WorkerBuffers, read_small};

fn repo(name: &str) -> Repository {
    crate::repository::testing::memory_repo(name)
}

/// A backup session over `repo` for driving a file worker directly: the repository's cutter, a
/// pool of two threads, no progress, every kind of attribute read.
fn session<'a>(
    repo: &'a Repository,
    index: &'a Index,
    writer: &'a BlobWriter<'a, 'a>,
    counters: &'a Counters,
) -> Session<'a> {
    Session {
        repo,
        index,
        writer,
        cutter: repo.cutter().unwrap(),
        pool: rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap(),
        counters,
        failed: AtomicBool::new(false),
        fatal: Mutex::new(None),
        results: Results::default(),
        progress: &NoProgress,
        xattrs: XattrFilter { xattrs: true, acls: true, privileged: false },
        record: None,
    }
}

/// Every file node under tree `id`, by path relative to it.
fn files(repo: &Repository, index: &Index, id: &BlobId, at: &Path, out: &mut Vec<(PathBuf, Node)>) {
    for node in repo.load_tree(index, id).unwrap().nodes {
        let path = at.join(node.os_name());
        match node.kind {
            NodeKind::Dir => files(repo, index, node.subtree.as_ref().unwrap(), &path, out),
            NodeKind::File => out.push((path, node)),
            _ => {}
        }
    }
}

/// Backs up `dir`; returns the file nodes under it, checked against the files on disk: the
/// content ids are the chunks a whole-file cut gives, all stored, and the hash is the file's.
fn backup_and_check(repo: &Repository, dir: &Path) -> (Summary, Vec<(PathBuf, Node)>) {
    let result = run(repo, BackupSource::paths([dir]), &BackupOptions::default(), &NoProgress).unwrap();
    let index = repo.load_index().unwrap();
    let snapshot = repo.load_snapshot(result.snapshot).unwrap();
    let mut root = repo.load_tree(&index, &snapshot.tree).unwrap();
    for c in dir.components().skip(1) {
        let node = root.find(c.as_os_str().as_bytes()).unwrap().clone();
        root = repo.load_tree(&index, node.subtree.as_ref().unwrap()).unwrap();
    }
    let mut out = Vec::new();
    for node in &root.nodes {
        let path = dir.join(node.os_name());
        match node.kind {
            NodeKind::Dir => files(repo, &index, node.subtree.as_ref().unwrap(), &path, &mut out),
            NodeKind::File => out.push((path, node.clone())),
            _ => {}
        }
    }
    let cutter = repo.cutter().unwrap();
    for (path, node) in &out {
        let data = std::fs::read(path).unwrap();
        let ids: Vec<BlobId> = cutter.split(&data).map(|(o, l)| repo.master().blob_id(&data[o..o + l])).collect();
        assert_eq!(node.content, ids, "{}", path.display());
        assert!(ids.iter().all(|id| index.contains(id)), "{}", path.display());
        assert_eq!(node.hash, Some(Digest(*blake3::hash(&data).as_bytes())), "{}", path.display());
        assert_eq!(node.size, data.len() as u64, "{}", path.display());
    }
    (result.summary, out)
}

#[test]
fn files_on_both_sides_of_the_inline_limit_store_the_same_chunks() {
    let repo = repo("walk-inline-limit");
    let dir = tempfile::tempdir().unwrap();
    let max = usize::try_from(INLINE_MAX).unwrap();
    let sizes = [0, 1, 100, 65_535, 65_536, 300_000, max - 1, max, max + 1, (3 << 20) + 17];
    std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
    for (i, len) in sizes.into_iter().enumerate() {
        let data = noise(len, i as u64 + 1);
        std::fs::write(dir.path().join(format!("f{i}")), &data).unwrap();
        // The same content deeper down: stored once.
        std::fs::write(dir.path().join(format!("a/b/c/f{i}")), &data).unwrap();
    }
    std::fs::write(dir.path().join("a/linked"), noise(5000, 99)).unwrap();
    std::fs::hard_link(dir.path().join("a/linked"), dir.path().join("a/b/linked-too")).unwrap();
    let (summary, files) = backup_and_check(&repo, dir.path());
    assert_eq!(files.len(), 2 * sizes.len() + 2, "{:?}", files.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert_eq!(summary.files_new, files.len() as u64 - 1, "the second name of a hard link is no new file");
    assert_eq!(summary.dirs, 4);
    let link = |rel: &str| files.iter().find(|(p, _)| p.ends_with(rel)).unwrap().1.link;
    assert!(link("a/linked").is_some());
    assert_eq!(link("a/linked"), link("a/b/linked-too"));
    // Every chunk new to this backup was stored once, though each file is there twice.
    let chunks: HashSet<BlobId> = files.iter().flat_map(|(_, n)| n.content.iter().copied()).collect();
    let ancestors = dir.path().components().count() as u64 - 1;
    assert_eq!(summary.blobs_new, chunks.len() as u64 + summary.dirs + ancestors, "chunks, and trees of all dirs");
}

#[test]
fn directories_beyond_the_unfinished_cap_still_finish_in_order() {
    let repo = repo("walk-unfinished-cap");
    let dir = tempfile::tempdir().unwrap();
    let per_dir = 150;
    let dirs = UNFINISHED_ENTRIES / per_dir + 5;
    for d in 0..dirs {
        let sub = dir.path().join(format!("d{:03}/e{}", d / 10, d % 10));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..per_dir {
            std::fs::write(sub.join(format!("f{f}")), format!("file {f} of directory {d}")).unwrap();
        }
    }
    let (summary, files) = backup_and_check(&repo, dir.path());
    assert!(files.len() > UNFINISHED_ENTRIES);
    assert_eq!(files.len(), dirs * per_dir);
    assert_eq!(summary.files_new, files.len() as u64);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
}

/// A file found longer than its `lstat` said (it grew after the walker looked, or it is
/// one of the files in /proc that claim size 0) is read to its end: the one-read path sees
/// more than it expected and goes on reading the file as a stream. Driven through a
/// worker's own entry point with sizes the file does not have, on every system.
#[test]
fn a_file_longer_than_its_lstat_size_is_read_to_its_end() {
    let repo = repo("walk-longer-than-lstat");
    let dir = tempfile::tempdir().unwrap();
    let index = repo.load_index().unwrap();
    let cutter = repo.cutter().unwrap();
    let max = usize::try_from(INLINE_MAX).unwrap();
    // Sizes the walker might have seen, and how long the file really is.
    let cases = [(0, 5_000), (100, 5_000), (4_999, 5_000), (0, max + 10), (1_000, 3 * max), (max, max + 1)];
    let counters = Counters::default();
    let (outcomes, _, _) = repo
        .write_blobs(&index, WriteOptions::default(), |writer| {
            let session = session(&repo, &index, writer, &counters);
            let mut buffers = WorkerBuffers::default();
            let mut outcomes = Vec::new();
            for (i, (claimed, real)) in cases.into_iter().enumerate() {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, noise(real, i as u64 + 7)).unwrap();
                let seen = Stat { size: claimed as u64, ..Stat::of(&std::fs::metadata(&path).unwrap()) };
                outcomes.push(session.store_file(&path, seen, &mut buffers)?);
            }
            Ok(outcomes)
        })
        .unwrap();
    for (i, ((_, real), outcome)) in cases.into_iter().zip(outcomes).enumerate() {
        let data = noise(real, i as u64 + 7);
        let FileOutcome::Done { content, hash, stat, changed, .. } = outcome else { panic!("case {i}: {outcome:?}") };
        assert_eq!(stat.size, real as u64, "case {i}: every byte is read");
        assert!(!changed, "case {i}: the second read finds the file as the first left it");
        assert_eq!(hash, Digest(*blake3::hash(&data).as_bytes()), "case {i}");
        let ids: Vec<BlobId> = cutter.split(&data).map(|(o, l)| repo.master().blob_id(&data[o..o + l])).collect();
        assert_eq!(content, ids, "case {i}: the chunks of the whole file");
    }
    let index = repo.load_index().unwrap();
    assert!(
        cases.iter().enumerate().all(|(i, (_, real))| {
            let data = noise(*real, i as u64 + 7);
            cutter.split(&data).all(|(o, l)| index.contains(&repo.master().blob_id(&data[o..o + l])))
        }),
        "every chunk is stored"
    );
}

/// A file that keeps changing while it is read (appended to all the time) is read three
/// times, then stored as the last read saw it and marked; its recorded size is what was
/// read.
#[test]
fn a_file_that_keeps_changing_is_read_again_then_marked() {
    let repo = repo("walk-changing");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growing.log");
    std::fs::write(&path, noise(3 << 20, 3)).unwrap();
    let index = repo.load_index().unwrap();
    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let (outcome, _, _) = std::thread::scope(|s| {
        s.spawn(|| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"one more line of log\n").unwrap();
            }
        });
        let done = repo.write_blobs(&index, WriteOptions::default(), |writer| {
            let session = session(&repo, &index, writer, &counters);
            let seen = Stat::of(&std::fs::metadata(&path).unwrap());
            session.store_file(&path, seen, &mut WorkerBuffers::default())
        });
        stop.store(true, Ordering::Relaxed);
        done
    })
    .unwrap();
    let FileOutcome::Done { content, changed, stat, .. } = outcome else { panic!("{outcome:?}") };
    assert!(changed, "appended to while every read ran");
    let index = repo.load_index().unwrap();
    let stored: u64 = content.iter().map(|id| u64::from(index.get(id).unwrap().raw_len)).sum();
    assert_eq!(stored, stat.size, "the size recorded is the size of what was stored");
    assert!(stat.size >= 3 << 20);
}

#[test]
fn a_worker_keeps_only_its_largest_batch_buffer() {
    let mut buffers = WorkerBuffers::default();
    WorkerBuffers::keep_batch_buffer(
        &mut buffers.batches,
        vec![Vec::with_capacity(10), Vec::with_capacity(9 << 20), Vec::with_capacity(5)],
    );
    assert_eq!(buffers.batches.len(), 1);
    assert!(buffers.batches[0].capacity() >= 9 << 20);
    WorkerBuffers::keep_batch_buffer(&mut buffers.batches, Vec::new());
    assert!(buffers.batches.is_empty());
}

#[test]
fn a_small_read_stops_one_byte_past_the_expected_size() {
    let data = noise(1000, 5);
    let mut buf = Vec::new();
    assert_eq!(read_small(&mut &data[..], &mut buf, 1000).unwrap(), (1000, true));
    assert_eq!(&buf[..1000], &data[..]);
    assert_eq!(read_small(&mut &data[..], &mut buf, 2000).unwrap(), (1000, true), "shrunk");
    assert_eq!(read_small(&mut &data[..], &mut buf, 999).unwrap(), (1000, false), "one byte more: its end is not seen");
    assert_eq!(read_small(&mut &data[..], &mut buf, 500).unwrap(), (501, false), "grown");
    assert_eq!(&buf[..501], &data[..501]);
    assert_eq!(read_small(&mut &data[..0], &mut buf, 0).unwrap(), (0, true));
}
