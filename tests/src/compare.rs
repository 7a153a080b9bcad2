//! [`compare_trees`]: is a restored tree the same as its source, byte for byte and in metadata?
//!
//! Compared for every entry, without following symlinks (`symlink_metadata`): the set of names
//! (raw bytes, so non-UTF-8 names count), the kind, the whole `st_mode` (permission, setuid,
//! setgid and sticky bits), uid and gid, mtime to the nanosecond, and
//! - regular files: size and content, read in full; hard-link grouping (the names sharing an
//!   inode in one tree must share one in the other); and allocation: the restored file may use
//!   at most [`CompareOptions::sparse_slack`] bytes more disk than the source, so holes stay
//!   holes;
//! - symlinks: the target, as raw bytes.
//!
//! Not compared: atime (reading changes it), ctime (cannot be set), inode numbers and link
//! counts themselves (only the grouping they imply), and FIFO contents (there are none).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Extra disk a restored file may take over its source. A restore leaves every 4 KiB block of
/// zeros unwritten, so a sparse file's data regions cost what they cost in the source, give or
/// take a block at each edge and the file system's own rounding (issue 14, item 1: before,
/// each region cost up to a whole chunk, 1 MiB).
pub const SPARSE_SLACK: u64 = 64 << 10;

/// Knobs of [`compare_trees_with`].
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Compare the metadata of the two roots too (off when the root is a restore target that
    /// only received the contents of a directory).
    pub root_metadata: bool,
    /// See [`SPARSE_SLACK`].
    pub sparse_slack: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { root_metadata: true, sparse_slack: SPARSE_SLACK }
    }
}

/// The differences between trees `a` (the source) and `b` (the copy); empty when they match.
#[must_use]
pub fn compare_trees(a: &Path, b: &Path) -> Vec<String> {
    compare_trees_with(a, b, &CompareOptions::default())
}

/// As [`compare_trees`], with options.
#[must_use]
pub fn compare_trees_with(a: &Path, b: &Path, options: &CompareOptions) -> Vec<String> {
    let mut diffs = Vec::new();
    let left = match list_tree(a) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    let right = match list_tree(b) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    for rel in left.keys().filter(|k| !right.contains_key(*k)) {
        diffs.push(format!("{}: missing from {}", show(rel), b.display()));
    }
    for rel in right.keys().filter(|k| !left.contains_key(*k)) {
        diffs.push(format!("{}: not in the source {}", show(rel), a.display()));
    }
    let groups_a = link_groups(&left);
    let groups_b = link_groups(&right);
    for (rel, ma) in &left {
        let Some(mb) = right.get(rel) else { continue };
        let is_root = rel.as_os_str().is_empty();
        if is_root && !options.root_metadata {
            continue;
        }
        compare_entry(rel, &under(a, rel), ma, &under(b, rel), mb, options, &mut diffs);
        if ma.file_type().is_file() && mb.file_type().is_file() {
            let ga = &groups_a[&(ma.dev(), ma.ino())];
            let gb = &groups_b[&(mb.dev(), mb.ino())];
            if ga != gb {
                diffs.push(format!(
                    "{}: hard links differ: source group {:?}, copy group {:?}",
                    show(rel),
                    ga.iter().map(|p| show(p)).collect::<Vec<_>>(),
                    gb.iter().map(|p| show(p)).collect::<Vec<_>>()
                ));
            }
        }
    }
    diffs
}

/// Panics, listing the differences, unless `copy` matches `source` (see [`compare_trees`]).
///
/// # Panics
/// When they differ.
#[track_caller]
pub fn assert_trees_equal(source: &Path, copy: &Path) {
    assert_trees_equal_with(source, copy, &CompareOptions::default());
}

/// As [`assert_trees_equal`], with options.
///
/// # Panics
/// When they differ.
#[track_caller]
pub fn assert_trees_equal_with(source: &Path, copy: &Path, options: &CompareOptions) {
    let diffs = compare_trees_with(source, copy, options);
    assert!(
        diffs.is_empty(),
        "{} differs from {} in {} ways:\n  {}",
        copy.display(),
        source.display(),
        diffs.len(),
        diffs.iter().take(50).cloned().collect::<Vec<_>>().join("\n  ")
    );
}

/// Every entry below `root` (and `root` itself, as the empty path), by relative path.
///
/// # Errors
/// A description of the first entry that could not be listed.
pub fn list_tree(root: &Path) -> Result<BTreeMap<PathBuf, Metadata>, String> {
    let mut out = BTreeMap::new();
    let meta = std::fs::symlink_metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let is_dir = meta.is_dir();
    out.insert(PathBuf::new(), meta);
    if is_dir {
        walk(root, Path::new(""), &mut out)?;
    }
    Ok(out)
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Metadata>) -> Result<(), String> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = rel.join(entry.file_name());
        let path = root.join(&child);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let is_dir = meta.is_dir();
        out.insert(child.clone(), meta);
        if is_dir {
            walk(root, &child, out)?;
        }
    }
    Ok(())
}

/// For each regular file's inode, the set of relative paths naming it.
fn link_groups(tree: &BTreeMap<PathBuf, Metadata>) -> HashMap<(u64, u64), BTreeSet<PathBuf>> {
    let mut groups: HashMap<(u64, u64), BTreeSet<PathBuf>> = HashMap::new();
    for (rel, m) in tree {
        if m.file_type().is_file() {
            groups.entry((m.dev(), m.ino())).or_default().insert(rel.clone());
        }
    }
    groups
}

/// `root/rel`, and `root` itself (no trailing slash, which would fail on a file) for the root.
fn under(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() { root.to_path_buf() } else { root.join(rel) }
}

fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "char device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "unknown"
    }
}

fn show(rel: &Path) -> String {
    if rel.as_os_str().is_empty() { "<root>".into() } else { rel.display().to_string() }
}

fn compare_entry(
    rel: &Path,
    pa: &Path,
    ma: &Metadata,
    pb: &Path,
    mb: &Metadata,
    options: &CompareOptions,
    diffs: &mut Vec<String>,
) {
    let name = show(rel);
    if kind(ma) != kind(mb) {
        diffs.push(format!("{name}: kind {} became {}", kind(ma), kind(mb)));
        return;
    }
    if ma.mode() != mb.mode() {
        diffs.push(format!("{name}: mode {:o} became {:o}", ma.mode(), mb.mode()));
    }
    if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
        diffs.push(format!("{name}: owner {}:{} became {}:{}", ma.uid(), ma.gid(), mb.uid(), mb.gid()));
    }
    if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        diffs.push(format!(
            "{name}: mtime {}.{:09} became {}.{:09}",
            ma.mtime(),
            ma.mtime_nsec(),
            mb.mtime(),
            mb.mtime_nsec()
        ));
    }
    let t = ma.file_type();
    if t.is_symlink() {
        match (std::fs::read_link(pa), std::fs::read_link(pb)) {
            (Ok(x), Ok(y)) if x == y => {}
            (x, y) => diffs.push(format!(
                "{name}: symlink target {:?} became {:?}",
                x.map(|p| p.as_os_str().as_bytes().to_vec()),
                y.map(|p| p.as_os_str().as_bytes().to_vec())
            )),
        }
    } else if t.is_file() {
        if ma.len() != mb.len() {
            diffs.push(format!("{name}: size {} became {}", ma.len(), mb.len()));
            return;
        }
        if let Err(e) = same_content(pa, pb) {
            diffs.push(format!("{name}: {e}"));
        }
        let (used_a, used_b) = (ma.blocks() * 512, mb.blocks() * 512);
        if used_b > used_a + options.sparse_slack {
            diffs.push(format!(
                "{name}: holes not kept: the source takes {used_a} bytes on disk, the copy {used_b} (slack {})",
                options.sparse_slack
            ));
        }
    } else if (t.is_char_device() || t.is_block_device()) && ma.rdev() != mb.rdev() {
        diffs.push(format!("{name}: device {:x} became {:x}", ma.rdev(), mb.rdev()));
    }
}

/// Ok when the two files hold the same bytes; otherwise where they first differ.
///
/// # Errors
/// A description of the first difference or read error.
pub fn same_content(a: &Path, b: &Path) -> Result<(), String> {
    let mut fa = File::open(a).map_err(|e| format!("{}: {e}", a.display()))?;
    let mut fb = File::open(b).map_err(|e| format!("{}: {e}", b.display()))?;
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| format!("{}: {e}", a.display()))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| format!("{}: {e}", b.display()))?;
        if ba[..na] != bb[..nb] {
            let at = ba[..na].iter().zip(&bb[..nb]).position(|(x, y)| x != y).unwrap_or(na.min(nb));
            return Err(format!("content differs at byte {}", offset + at as u64));
        }
        if na == 0 {
            return Ok(());
        }
        offset += na as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Regular files below `root` that are not exact copies of the same path below `source`:
/// for a damaged restore, where some files may be missing but none may be wrong. A `root` that
/// does not exist holds nothing wrong.
#[must_use]
pub fn wrong_files(source: &Path, root: &Path) -> Vec<String> {
    if std::fs::symlink_metadata(root).is_err() {
        return Vec::new();
    }
    let tree = match list_tree(root) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let mut wrong = Vec::new();
    for (rel, m) in tree {
        if !m.file_type().is_file() {
            continue;
        }
        if let Err(e) = same_content(&under(source, &rel), &under(root, &rel)) {
            wrong.push(format!("{}: {e}", rel.display()));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_content_mode_mtime_and_links() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::write(d.join("f"), b"same").unwrap();
            std::fs::write(d.join("g"), b"same").unwrap();
            let t = filetime::FileTime::from_unix_time(1_000_000, 5);
            filetime::set_file_times(d.join("f"), t, t).unwrap();
            filetime::set_file_times(d.join("g"), t, t).unwrap();
            filetime::set_file_times(d, t, t).unwrap();
        }
        assert_eq!(compare_trees(a.path(), b.path()), Vec::<String>::new());

        std::fs::write(b.path().join("g"), b"diff").unwrap();
        let t = filetime::FileTime::from_unix_time(1_000_000, 5);
        filetime::set_file_times(b.path().join("g"), t, t).unwrap();
        filetime::set_file_times(b.path(), t, t).unwrap();
        let d = compare_trees(a.path(), b.path());
        assert!(d.len() == 1 && d[0].contains("content differs at byte 0"), "{d:?}");

        // A hard link where the source has two files.
        std::fs::remove_file(b.path().join("g")).unwrap();
        std::fs::hard_link(b.path().join("f"), b.path().join("g")).unwrap();
        filetime::set_file_times(b.path(), t, t).unwrap();
        let d = compare_trees(a.path(), b.path());
        assert!(d.iter().any(|x| x.contains("hard links differ")), "{d:?}");

        let t2 = filetime::FileTime::from_unix_time(1_000_000, 6);
        filetime::set_file_times(b.path(), t2, t2).unwrap();
        let d = compare_trees(a.path(), b.path());
        assert!(d.iter().any(|x| x.contains("<root>: mtime")), "{d:?}");
    }
}
