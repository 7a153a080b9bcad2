//! What needs root: a small tmpfs to fill up, giving a tree to another user, and running a
//! command as that user (root reads any file, so "unreadable" needs someone else).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compare::list_tree;

/// The unprivileged user and group commands are run as (`nobody`/`nogroup` on Debian).
pub const NOBODY: u32 = 65534;

/// A tmpfs mounted for the life of this value, unmounted (lazily) on drop, even on panic.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs at `path` (created if missing) with mount `options`,
    /// e.g. `size=1m` or `size=16m,nr_inodes=16`.
    ///
    /// # Panics
    /// If it cannot be mounted: the tests that need it run as root and must not skip.
    #[must_use]
    pub fn mount(path: &Path, options: &str) -> Self {
        std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs -o {options} at {} failed (these tests need root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path: path.to_path_buf() }
    }

    /// Changes the size limit (`mount -o remount,size=SIZE`), e.g. to make room again.
    ///
    /// # Panics
    /// If the remount fails.
    pub fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "remount of {} failed: {}",
            self.path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The mount point.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Gives `root` and everything below it to `uid:gid` (symlinks themselves, not their targets).
///
/// # Panics
/// If the tree cannot be listed or an owner cannot be changed.
pub fn chown_tree(root: &Path, uid: u32, gid: u32) {
    for rel in list_tree(root).unwrap_or_else(|e| panic!("{e}")).keys() {
        let p = root.join(rel);
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
    }
}

/// `command` run as `uid:gid` with no supplementary groups (util-linux `setpriv`), keeping its
/// environment and arguments.
#[must_use]
pub fn as_user(command: &Command, uid: u32, gid: u32) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg("--");
    c.arg(command.get_program()).args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        c.current_dir(dir);
    }
    c
}
