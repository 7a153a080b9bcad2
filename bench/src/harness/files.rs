//! Files the harness measures and checks: sizes, digests, and finding a restored file.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Bytes of all files under `dir` (0 when it does not exist).
#[must_use]
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(read) = fs::read_dir(dir) else { return 0 };
    read.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Regular files under `dir`.
pub(super) fn walk_files(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            n += walk_files(&e.path())?;
        } else if t.is_file() {
            n += 1;
        }
    }
    Ok(n)
}

pub(super) fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let direct = dir.join(name);
    if direct.is_file() {
        return Some(direct);
    }
    for e in fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir()
            && let Some(f) = find_file(&p, name)
        {
            return Some(f);
        }
        if p.file_name().is_some_and(|n| n == name) && p.is_file() {
            return Some(p);
        }
    }
    None
}

pub(super) fn file_digest(path: &Path) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(*h.finalize().as_bytes())
}

/// A digest of a tree's names, file contents and symlink targets (not its metadata).
///
/// # Errors
/// I/O errors with the path.
pub fn tree_digest(root: &Path) -> Result<[u8; 32]> {
    fn walk(dir: &Path, rel: &Path, h: &mut blake3::Hasher) -> Result<()> {
        let mut entries: Vec<_> =
            fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.filter_map(Result::ok).collect();
        entries.sort_by_key(fs::DirEntry::file_name);
        for e in entries {
            let path = e.path();
            let name = rel.join(e.file_name());
            let t = e.file_type()?;
            h.update(name.as_os_str().as_encoded_bytes());
            if t.is_dir() {
                h.update(b"/dir\0");
                walk(&path, &name, h)?;
            } else if t.is_symlink() {
                h.update(b"/link\0");
                h.update(fs::read_link(&path)?.as_os_str().as_encoded_bytes());
            } else {
                h.update(b"/file\0");
                h.update(&file_digest(&path)?);
            }
        }
        Ok(())
    }
    let mut h = blake3::Hasher::new();
    walk(root, Path::new(""), &mut h)?;
    Ok(*h.finalize().as_bytes())
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`.
#[must_use]
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64).replace(".00 ", " ")
    } else if b >= (1 << 20) as f64 {
        format!("{:.0} MiB", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digests() {
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(1536 << 20), "1.50 GiB");
        assert_eq!(human(300 << 20), "300 MiB");
        let dir = std::env::temp_dir().join(format!("cairn-bench-digest-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a")).unwrap();
        fs::write(dir.join("a/x"), b"hello").unwrap();
        let d1 = tree_digest(&dir).unwrap();
        assert_eq!(dir_size(&dir), 5);
        fs::write(dir.join("a/x"), b"hellO").unwrap();
        assert_ne!(d1, tree_digest(&dir).unwrap());
        assert_eq!(find_file(&dir, "x"), Some(dir.join("a/x")));
        fs::remove_dir_all(&dir).unwrap();
    }
}
