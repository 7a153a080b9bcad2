//! Files and directories only their owner may read: what Cairn creates on local disk (a
//! repository's objects, the metadata cache) gets no access for other users whatever the
//! umask, and the group only where the operator asked for it (`init --group-readable`).
//! A key file readable by others can be copied and its password guessed offline.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The modes of what is created: owner only, or owner and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    /// Mode of files.
    pub file: u32,
    /// Mode of directories.
    pub dir: u32,
}

impl Modes {
    /// Owner only: files 0600, directories 0700.
    pub const PRIVATE: Modes = Modes { file: 0o600, dir: 0o700 };
    /// Owner, and the group may read: files 0640, directories 0750.
    pub const GROUP_READABLE: Modes = Modes { file: 0o640, dir: 0o750 };

    /// The modes for files in a directory of mode `dir_mode`: its group may read them when it
    /// may read the directory; others never.
    #[must_use]
    pub fn following(dir_mode: u32) -> Modes {
        if dir_mode & 0o040 != 0 { Modes::GROUP_READABLE } else { Modes::PRIVATE }
    }

    /// Whether `mode` (of a file or directory) lets anyone these modes leave out read it.
    #[must_use]
    pub fn exposes(&self, mode: u32, is_dir: bool) -> bool {
        let allowed = if is_dir { self.dir } else { self.file };
        mode & 0o077 & !allowed != 0
    }
}

/// Creates `path` and its missing parents with `mode`, and sets `mode` on `path` itself even
/// when it existed.
///
/// # Errors
/// As the file system reports.
pub fn create_dir_all(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes `data` to `path` through a temporary file created with `mode` and renamed into place,
/// so the file is never readable by others, not even while it is written.
///
/// # Errors
/// As the file system reports.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write(path, data, mode, false)
}

/// As [`write_file`], with the data synced to disk before the rename: once it returns, the
/// file survives a power loss (a WAL file handed to PostgreSQL, which may then drop its own).
///
/// # Errors
/// As the file system reports.
pub fn write_file_synced(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write(path, data, mode, true)
}

fn write(path: &Path, data: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    // One temporary name per call: threads writing the same file never share one.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{call}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        // An existing temporary file keeps its mode: set it.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if sync {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Sets `mode` on `path`.
///
/// # Errors
/// As the file system reports.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn created_private_whatever_the_mode_of_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir(dir.path().join("a")).unwrap();
        set_mode(&dir.path().join("a"), 0o777).unwrap();
        create_dir_all(&sub, 0o700).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        let f = sub.join("f");
        std::fs::write(f.with_extension(format!("tmp{}", std::process::id())), b"old").unwrap();
        write_file(&f, b"data", 0o600).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"data");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(Modes::following(0o750), Modes::GROUP_READABLE);
        assert_eq!(Modes::following(0o700), Modes::PRIVATE);
        assert!(Modes::PRIVATE.exposes(0o644, false));
        assert!(Modes::PRIVATE.exposes(0o640, false));
        assert!(!Modes::GROUP_READABLE.exposes(0o640, false));
        assert!(Modes::GROUP_READABLE.exposes(0o755, true));
        assert!(!Modes::PRIVATE.exposes(0o700, true));
    }
}
