//! Damage done to a repository on disk, the way a failing disk or a careless operator would:
//! objects deleted, bytes flipped, the config's format version changed.
//!
//! Object folders come from [`ObjectKind::dir`], the engine's one definition of the layout.

use std::path::{Path, PathBuf};

use cairn_core::format::config::CONFIG_MAGIC;
use cairn_core::store::ObjectKind;

/// The files of every object of `kind` in the repository at `repo`, sorted.
///
/// # Panics
/// If the folder cannot be read.
#[must_use]
pub fn objects(repo: &Path, kind: ObjectKind) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(&repo.join(kind.dir()), &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let p = e.expect("reading a repository folder").path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The object's id: its file name.
///
/// # Panics
/// If the path has no UTF-8 file name.
#[must_use]
pub fn object_id(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).expect("object names are hex").to_string()
}

/// The largest of `paths` (e.g. a data pack rather than a small tree pack).
///
/// # Panics
/// If `paths` is empty.
#[must_use]
pub fn largest(paths: &[PathBuf]) -> PathBuf {
    paths.iter().max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len())).expect("no objects").clone()
}

/// Inverts every bit of the byte at `offset` (from the end if negative).
///
/// # Panics
/// If the file cannot be read or written, or is too short.
pub fn flip_byte(path: &Path, offset: i64) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let at = if offset < 0 { bytes.len() - offset.unsigned_abs() as usize } else { offset as usize };
    bytes[at] ^= 0xff;
    write_over(path, &bytes);
}

/// Inverts the byte in the middle of the file.
///
/// # Panics
/// As [`flip_byte`].
pub fn flip_middle_byte(path: &Path) {
    let len = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len();
    flip_byte(path, (len / 2) as i64);
}

/// Deletes an object file.
///
/// # Panics
/// If it cannot be removed.
pub fn delete(path: &Path) {
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
}

/// Writes `version` into the clear format-version field of `<repo>/config` (the 4 bytes after
/// the 8-byte magic, little-endian); returns the original bytes.
///
/// # Panics
/// If the config cannot be read or written or does not start with the magic.
pub fn set_config_version(repo: &Path, version: u32) -> Vec<u8> {
    let path = repo.join("config");
    let original = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(&original[..8], CONFIG_MAGIC, "{} does not start with the config magic", path.display());
    let mut bytes = original.clone();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    write_over(&path, &bytes);
    original
}

/// Replaces a file's bytes (repository files may be read-only).
///
/// # Panics
/// If it cannot be written.
pub fn write_over(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
