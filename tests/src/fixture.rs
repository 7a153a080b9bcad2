//! A source tree with every edge case a backup must keep (issue 2, item 3):
//!
//! ```text
//! empty.txt  small.txt  random.bin (5 MiB)  text.log (3 MiB, compressible)
//! empty-dir/                      deep/l00/…/l59/leaf.txt (60 levels)
//! long/<255 × n>  long/<127 × é + x> (255 bytes of UTF-8)  long/<255 × d>/inside
//! names/caf\xe9  names/\xff\xfe dir/f  names/with space, tab\tand newline\n
//! links/to-file  links/absolute  links/dangling  links/to-dir  links/non-utf8-target
//! hard/a  hard/a2  hard/other/b   (three names of one file, across directories)
//! modes/private 0600  exec 0755  setuid 4755  readonly 0444  none 0000  setgid-dir/ 2775
//!       sticky-dir/ 1777  ro-dir/ 0555 (with a file inside)
//! sparse.img (64 MiB apparent: a few bytes at 32 MiB and at the end)
//! fifo (0640)
//! owned/ 1234:5678 with a file, a symlink and a file of uid 1234 gid 0
//! times/ before-1970  year-2100
//! ```
//! Every entry gets an mtime with nanoseconds (directories last, so creating their contents
//! does not move them). Ownership changes need root, which the e2e suite runs as.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use filetime::FileTime;

use crate::compare::list_tree;
use crate::data;

/// The uid that some entries are given.
pub const OTHER_UID: u32 = 1234;
/// The gid that some entries are given.
pub const OTHER_GID: u32 = 5678;
/// Apparent size of `sparse.img`.
pub const SPARSE_LEN: u64 = 64 << 20;

/// What [`build_edge_tree`] made.
#[derive(Debug, Clone)]
pub struct EdgeTree {
    /// The tree's root directory.
    pub root: PathBuf,
    /// Distinct regular files (inodes): what a backup counts as files.
    pub file_inodes: u64,
    /// Directories below the root (the root not counted).
    pub dirs: u64,
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn mkdir(p: &Path) {
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

fn link(target: &[u8], at: &Path) {
    symlink(os(target), at).unwrap_or_else(|e| panic!("symlink {}: {e}", at.display()));
}

/// Builds the edge-case tree at `root` (which must not exist yet, or be empty).
///
/// # Panics
/// If any part cannot be made (ownership changes need root).
#[must_use]
pub fn build_edge_tree(root: &Path) -> EdgeTree {
    mkdir(root);
    data::write(&root.join("empty.txt"), b"");
    data::write(&root.join("small.txt"), b"hello, cairn\n");
    data::write_random(&root.join("random.bin"), 1, 5 << 20);
    data::write(&root.join("text.log"), &data::text_bytes(2, 3 << 20));
    mkdir(&root.join("empty-dir"));

    let mut deep = root.join("deep");
    for level in 0..60 {
        deep.push(format!("l{level:02}"));
    }
    mkdir(&deep);
    data::write(&deep.join("leaf.txt"), b"sixty levels down\n");

    let long = root.join("long");
    mkdir(&long);
    data::write(&long.join("n".repeat(255)), b"long ascii name\n");
    let mut utf8 = "é".repeat(127);
    utf8.push('x');
    assert_eq!(utf8.len(), 255);
    data::write(&long.join(&utf8), b"long utf-8 name\n");
    let long_dir = long.join("d".repeat(255));
    mkdir(&long_dir);
    data::write(&long_dir.join("inside"), b"in a long-named directory\n");

    let names = root.join("names");
    mkdir(&names);
    data::write(&names.join(os(b"caf\xe9")), b"latin-1 name\n");
    let odd_dir = names.join(os(b"\xff\xfe dir"));
    mkdir(&odd_dir);
    data::write(&odd_dir.join("f"), b"in a non-UTF-8 directory\n");
    data::write(&names.join("with space, tab\tand newline\n"), b"whitespace name\n");

    let links = root.join("links");
    mkdir(&links);
    link(b"../small.txt", &links.join("to-file"));
    link(b"/etc/hostname", &links.join("absolute"));
    link(b"does/not/exist", &links.join("dangling"));
    link(b"../empty-dir", &links.join("to-dir"));
    link(b"caf\xe9-\xff", &links.join("non-utf8-target"));

    let hard = root.join("hard");
    mkdir(&hard.join("other"));
    data::write(&hard.join("a"), &data::text_bytes(3, 100_000));
    std::fs::hard_link(hard.join("a"), hard.join("a2")).expect("hard link");
    std::fs::hard_link(hard.join("a"), hard.join("other/b")).expect("hard link");

    let modes = root.join("modes");
    mkdir(&modes);
    for (name, mode) in [("private", 0o600), ("exec", 0o755), ("setuid", 0o4755), ("readonly", 0o444), ("none", 0)] {
        let p = modes.join(name);
        data::write(&p, format!("mode {mode:o}\n").as_bytes());
        chmod(&p, mode);
    }
    for (name, mode) in [("setgid-dir", 0o2775), ("sticky-dir", 0o1777)] {
        let p = modes.join(name);
        mkdir(&p);
        chmod(&p, mode);
    }
    let ro = modes.join("ro-dir");
    mkdir(&ro);
    data::write(&ro.join("inside"), b"in a read-only directory\n");

    let sparse = root.join("sparse.img");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&sparse).expect("create sparse.img");
        f.set_len(SPARSE_LEN).expect("set_len");
        f.write_all_at(b"middle of nowhere", SPARSE_LEN / 2).expect("write");
        f.write_all_at(b"the end", SPARSE_LEN - 7).expect("write");
    }
    let used = std::fs::metadata(&sparse).expect("stat").blocks() * 512;
    assert!(used < 1 << 20, "this file system does not keep sparse.img sparse ({used} bytes used)");

    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640)).expect("mkfifo");

    let owned = root.join("owned");
    mkdir(&owned);
    data::write(&owned.join("file"), b"not root's\n");
    link(b"file", &owned.join("link"));
    data::write(&owned.join("uid-only"), b"uid 1234, gid 0\n");
    lchown(&owned.join("file"), OTHER_UID, OTHER_GID);
    lchown(&owned.join("link"), OTHER_UID, OTHER_GID);
    lchown(&owned.join("uid-only"), OTHER_UID, 0);
    lchown(&owned, OTHER_UID, OTHER_GID);

    let times = root.join("times");
    mkdir(&times);
    data::write(&times.join("before-1970"), b"old\n");
    data::write(&times.join("year-2100"), b"new\n");

    set_times(root);
    let at = |p: &str, secs, nanos| {
        let t = FileTime::from_unix_time(secs, nanos);
        filetime::set_symlink_file_times(times.join(p), t, t).expect("set times");
    };
    at("before-1970", -315_619_200, 123_456_789);
    at("year-2100", 4_102_444_800, 999_999_999);
    // Changing a file's times does not touch its directory's; still, keep the order explicit.
    set_dir_time(&times, 0);
    chmod(&ro, 0o555);

    let tree = list_tree(root).expect("listing the edge tree");
    let mut inodes: Vec<u64> = tree.values().filter(|m| m.is_file()).map(MetadataExt::ino).collect();
    inodes.sort_unstable();
    inodes.dedup();
    let dirs = tree.iter().filter(|(rel, m)| m.is_dir() && !rel.as_os_str().is_empty()).count() as u64;
    EdgeTree { root: root.to_path_buf(), file_inodes: inodes.len() as u64, dirs }
}

/// Gives every entry below `root` (and `root`) a distinct mtime with nanoseconds, children
/// before their directories. Symlinks get their own times, not their targets'.
///
/// # Panics
/// If the tree cannot be listed or a time cannot be set.
pub fn set_times(root: &Path) {
    let tree = list_tree(root).expect("listing the tree");
    // Deepest first, so setting a child's time never happens after its directory's.
    let mut entries: Vec<_> = tree.keys().cloned().collect();
    entries.sort_by_key(|rel| std::cmp::Reverse(rel.components().count()));
    for (i, rel) in entries.iter().enumerate() {
        let secs = 1_600_000_000 + i as i64 * 3_607;
        let nanos = (123_456_789 + i as u32 * 7_919) % 1_000_000_000;
        let t = FileTime::from_unix_time(secs, nanos);
        let p = root.join(rel);
        filetime::set_symlink_file_times(&p, t, t).unwrap_or_else(|e| panic!("setting times of {}: {e}", p.display()));
    }
}

/// Sets the atime and mtime of `path` (not following a symlink).
///
/// # Panics
/// If the time cannot be set.
pub fn set_time(path: &Path, secs: i64, nanos: u32) {
    let t = FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).unwrap_or_else(|e| panic!("setting times of {}: {e}", path.display()));
}

/// Sets one directory's mtime (after its contents changed).
///
/// # Panics
/// If the time cannot be set.
pub fn set_dir_time(dir: &Path, salt: u32) {
    let t = FileTime::from_unix_time(1_650_000_000 + i64::from(salt), 555_000_000 + salt);
    filetime::set_file_times(dir, t, t).unwrap_or_else(|e| panic!("setting times of {}: {e}", dir.display()));
}

/// Builds the small tree kept as a repository fixture (`tests/fixtures/repo-v1`): a few of
/// each kind of entry, enough content for several chunks, an extended attribute and fixed
/// times, so the same call rebuilds exactly what the fixture's snapshots hold. `generation` 1
/// is generation 0 with one file changed, one added and one removed.
///
/// ```text
/// notes.txt  random.bin (600 KiB)  text.log (400 KiB)  empty.txt  exec.sh 0755
/// dir/inner.txt  dir/link -> ../notes.txt  dir/hard (a hard link of text.log)  empty-dir/
/// owned 1234:5678 0640   fifo 0600   tagged.txt (xattr user.cairn.note)
/// ```
///
/// # Panics
/// If any part cannot be made (ownership changes need root).
pub fn build_small_tree(root: &Path, generation: u32) {
    mkdir(root);
    data::write(&root.join("notes.txt"), b"a version 1 repository, kept as a fixture\n");
    let mut random = data::random_bytes(41, 600 << 10);
    if generation > 0 {
        random[300 << 10..(300 << 10) + 16].copy_from_slice(b"generation one!\n");
    }
    data::write(&root.join("random.bin"), &random);
    data::write(&root.join("text.log"), &data::text_bytes(42, 400 << 10));
    data::write(&root.join("empty.txt"), b"");
    data::write(&root.join("exec.sh"), b"#!/bin/sh\necho fixture\n");
    chmod(&root.join("exec.sh"), 0o755);
    mkdir(&root.join("dir"));
    mkdir(&root.join("empty-dir"));
    data::write(&root.join("dir/inner.txt"), b"inside a directory\n");
    link(b"../notes.txt", &root.join("dir/link"));
    std::fs::hard_link(root.join("text.log"), root.join("dir/hard")).expect("hard link");
    data::write(&root.join("owned"), b"not root's\n");
    chmod(&root.join("owned"), 0o640);
    lchown(&root.join("owned"), OTHER_UID, OTHER_GID);
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    data::write(&root.join("tagged.txt"), b"with an extended attribute\n");
    rustix::fs::lsetxattr(root.join("tagged.txt"), "user.cairn.note", b"kept", rustix::fs::XattrFlags::empty())
        .expect("setting user.cairn.note (the file system must take user xattrs)");
    if generation > 0 {
        data::write(&root.join("added.txt"), b"added in generation one\n");
        std::fs::remove_file(root.join("empty.txt")).expect("remove empty.txt");
    }
    set_times(root);
}
