//! Change detection against a parent snapshot made to say what a test needs: when it began,
//! and what its trees hold.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use super::*;
use crate::format::tree::{TREE_VERSION, TREE_VERSION_EXTENDED, Xattr};
use crate::foundation::fsmeta::{self, Entry};
use crate::foundation::progress::NoProgress;

fn repo(name: &str) -> Repository {
    crate::repository::testing::memory_repo(name)
}

/// Long enough after a write for the backup that sees it to be trusted by the next one.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(150));
}

fn backup(repo: &Repository, dir: &Path, parent: Option<SnapshotId>) -> BackupResult {
    let opts = BackupOptions { parent, ..BackupOptions::default() };
    run(repo, BackupSource::paths([dir]), &opts, &NoProgress).unwrap()
}

/// Stores `snapshot` as a new snapshot object (the objects it names are stored already).
fn save(repo: &Repository, snapshot: &Snapshot) -> SnapshotId {
    let ((), _, committed) = repo.write_blobs(&Index::default(), WriteOptions::default(), |_| Ok(())).unwrap();
    repo.save_snapshot(snapshot, &committed).unwrap()
}

/// The tree `root` with the node at `path` (absolute) changed by `change`, stored; its id.
fn rewrite(repo: &Repository, root: &BlobId, path: &Path, change: &dyn Fn(&mut Node)) -> BlobId {
    fn at(
        repo: &Repository,
        index: &Index,
        writer: &BlobWriter,
        id: &BlobId,
        names: &[&[u8]],
        change: &dyn Fn(&mut Node),
    ) -> BlobId {
        let mut tree = repo.load_tree(index, id).unwrap();
        let node = tree.nodes.iter_mut().find(|n| n.name == names[0]).unwrap();
        if names.len() == 1 {
            change(node);
        } else {
            let sub = node.subtree.unwrap();
            node.subtree = Some(at(repo, index, writer, &sub, &names[1..], change));
        }
        // Made again: its version follows what its nodes carry.
        writer.add(BlobKind::Tree, &Tree::new(tree.nodes).encode()).unwrap()
    }
    let names: Vec<&[u8]> = path.components().skip(1).map(|c| c.as_os_str().as_bytes()).collect();
    let index = repo.load_index().unwrap();
    let (id, _, _) = repo
        .write_blobs(&index, WriteOptions::default(), |writer| Ok(at(repo, &index, writer, root, &names, change)))
        .unwrap();
    id
}

/// The node at `path` (absolute) in snapshot `id`.
fn node(repo: &Repository, id: SnapshotId, path: &Path) -> Node {
    let index = repo.load_index().unwrap();
    let mut tree = repo.load_tree(&index, &repo.load_snapshot(id).unwrap().tree).unwrap();
    let mut names = path.components().skip(1).peekable();
    while let Some(c) = names.next() {
        let found = tree.find(c.as_os_str().as_bytes()).unwrap().clone();
        if names.peek().is_none() {
            return found;
        }
        tree = repo.load_tree(&index, found.subtree.as_ref().unwrap()).unwrap();
    }
    panic!("{} not found", path.display())
}

/// A file the parent read within a clock tick of its last change may have changed again
/// without its timestamps showing it: it is read again, unless it changed long enough before
/// the parent began.
#[test]
fn a_file_changed_just_before_its_parent_began_is_read_again() {
    let repo = repo("change-racy");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"written just before the backup\n").unwrap();
    settle();
    let first = backup(&repo, dir.path(), None);
    let parent = repo.load_snapshot(first.snapshot).unwrap();
    let again = backup(&repo, dir.path(), Some(first.snapshot));
    assert_eq!((again.summary.files_unmodified, again.summary.bytes_read), (1, 0), "settled: trusted");

    // The same parent, as if it had begun 50 ms and 150 ms after the file's last change.
    let meta = std::fs::metadata(&f).unwrap();
    let ctime = jiff::Timestamp::new(meta.ctime(), i32::try_from(meta.ctime_nsec()).unwrap()).unwrap();
    let began = |after_ms: i64| {
        let took = jiff::SignedDuration::try_from_secs_f64(parent.summary.seconds).unwrap();
        let created = ctime + jiff::SignedDuration::from_millis(after_ms) + took;
        save(&repo, &Snapshot { created: Some(created), ..parent.clone() })
    };
    let racy = backup(&repo, dir.path(), Some(began(50)));
    assert_eq!((racy.summary.files_changed, racy.summary.bytes_read), (1, 31), "read again");
    let later = backup(&repo, dir.path(), Some(began(150)));
    assert_eq!((later.summary.files_unmodified, later.summary.bytes_read), (1, 0));

    // A parent that does not record when it was made is trusted, as before.
    let unknown = save(&repo, &Snapshot { created: None, ..parent });
    assert_eq!(backup(&repo, dir.path(), Some(unknown)).summary.files_unmodified, 1);
}

/// An entry whose ctime is unchanged takes its extended attributes and flags from the parent
/// node when the parent read the same attributes of every entry, and reads them otherwise.
#[test]
fn unchanged_attributes_come_from_the_parent_that_read_the_same_ones() {
    let repo = repo("change-attributes");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"content\n").unwrap();
    fsmeta::write_xattr(Entry::<&std::fs::File>::Path(&f), b"user.real", b"1").unwrap();
    settle();
    let first = backup(&repo, dir.path(), None);
    let parent = repo.load_snapshot(first.snapshot).unwrap();
    assert!(parent.attributes.is_some_and(|a| a.xattrs && a.acls), "{:?}", parent.attributes);

    // A parent whose node of the file (and of its directory) holds an attribute the file does
    // not have: what the walker takes shows whether it read the file or trusted the parent.
    let fake = vec![Xattr { name: b"user.from-parent".to_vec(), value: b"2".to_vec() }];
    let root = rewrite(&repo, &parent.tree, &f, &|n| n.xattrs.clone_from(&fake));
    let root = rewrite(&repo, &root, dir.path(), &|n| n.xattrs.clone_from(&fake));
    let made = |attributes| save(&repo, &Snapshot { tree: root, attributes, ..parent.clone() });

    let trusted = backup(&repo, dir.path(), Some(made(parent.attributes))).snapshot;
    assert_eq!(node(&repo, trusted, &f).xattrs, fake, "taken from the parent");
    assert_eq!(node(&repo, trusted, dir.path()).xattrs, fake, "directories too");

    let other = parent.attributes.map(|a| AttributesRead { acls: !a.acls, ..a });
    for attributes in [None, other] {
        let read = backup(&repo, dir.path(), Some(made(attributes))).snapshot;
        let real = vec![Xattr { name: b"user.real".to_vec(), value: b"1".to_vec() }];
        assert_eq!(node(&repo, read, &f).xattrs, real, "read again with a parent of {attributes:?}");
    }

    // A changed attribute changes the ctime: read again, even from a parent that read the same.
    fsmeta::write_xattr(Entry::<&std::fs::File>::Path(&f), b"user.real", b"3").unwrap();
    let changed = backup(&repo, dir.path(), Some(made(parent.attributes))).snapshot;
    assert_eq!(node(&repo, changed, &f).xattrs, vec![Xattr { name: b"user.real".to_vec(), value: b"3".to_vec() }]);
}

/// A stream records no attributes: a later backup of paths has nothing to take them from.
#[test]
fn a_stream_records_no_attributes() {
    let repo = repo("change-stream");
    let result = run(&repo, BackupSource::reader("s", &b"bytes"[..]), &BackupOptions::default(), &NoProgress).unwrap();
    assert_eq!(repo.load_snapshot(result.snapshot).unwrap().attributes, None);
}

/// A directory whose nodes are the parent's, node for node, keeps the parent's tree id without
/// its tree being encoded again: shown with a parent tree stored in another encoding of the
/// same nodes (as an older writer may have), whose id a new encoding would not give.
#[test]
fn an_unchanged_directory_keeps_the_parents_tree() {
    let repo = repo("change-tree");
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("f"), b"content\n").unwrap();
    settle();
    let first = backup(&repo, dir.path(), None);
    let parent = repo.load_snapshot(first.snapshot).unwrap();
    let index = repo.load_index().unwrap();
    let subtree = node(&repo, first.snapshot, &sub).subtree.unwrap();
    let mut tree = repo.load_tree(&index, &subtree).unwrap();
    assert_eq!(tree.version, TREE_VERSION);
    tree.version = TREE_VERSION_EXTENDED;
    let (other, _, _) =
        repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Tree, &tree.encode())).unwrap();
    assert_ne!(other, subtree);
    let root = rewrite(&repo, &parent.tree, &sub, &|n| n.subtree = Some(other));
    let crafted = save(&repo, &Snapshot { tree: root, ..parent.clone() });

    let again = backup(&repo, dir.path(), Some(crafted));
    assert_eq!(node(&repo, again.snapshot, &sub).subtree, Some(other), "the parent's tree, not a new encoding");
    // A change below makes it a new tree.
    std::fs::write(sub.join("g"), b"new\n").unwrap();
    let changed = backup(&repo, dir.path(), Some(crafted));
    let id = node(&repo, changed.snapshot, &sub).subtree.unwrap();
    assert!(id != other && id != subtree);
    assert_eq!(repo.load_tree(&repo.load_index().unwrap(), &id).unwrap().nodes.len(), 2);
}
