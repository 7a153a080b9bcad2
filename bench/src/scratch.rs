//! A new, empty file system for each restore: a sparse ext4 image in the work directory,
//! loop-mounted, made like this machine's root file system (no journal).
//!
//! Why not a directory of the disk: on ext4 without a journal, the inode allocator skips every
//! inode freed in the last 60 seconds (360 while its inode-table block is dirty, which creating
//! a file next to it makes it), a buffer lookup per skipped inode. Creating tens of thousands of
//! files within minutes of deleting tens of thousands is then quadratic: `perf` put
//! `recently_deleted` and `find_get_block_common` at half of a restore's CPU, and a 30 000-file
//! restore took 4.7 s with 7.3 s of system time instead of 1.6 s with 1.6 s. Each tool's restore
//! followed the deletion of the previous one, so every tool but the first paid for its
//! predecessor, by an amount that depended on timing. Dropping the page cache does not help
//! for long: the first inode created in a table block reads the block back. A file system made
//! for the restore holds no deleted inodes, and unmounting it frees its page cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The image's size: sparse, so only what the restore writes takes space.
const IMAGE_BYTES: u64 = 64 << 30;

/// A mounted scratch file system; unmounted and deleted when dropped.
#[derive(Debug)]
pub struct ScratchFs {
    image: PathBuf,
    mount: PathBuf,
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

impl ScratchFs {
    /// Makes and mounts one under `dir`, or says why it cannot (not root, no loop devices, no
    /// `mkfs.ext4`).
    ///
    /// # Errors
    /// Why the file system could not be made; nothing is left behind.
    pub fn create(dir: &Path) -> Result<Self, String> {
        let image = dir.join("scratch.img");
        let mount = dir.join("scratch");
        // What an interrupted run left.
        quiet(Command::new("umount").arg(&mount));
        let _ = std::fs::remove_file(&image);
        std::fs::create_dir_all(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
        let made = std::fs::File::create(&image).and_then(|f| f.set_len(IMAGE_BYTES));
        let fs = ScratchFs { image, mount };
        made.map_err(|e| format!("{}: {e}", fs.image.display()))?;
        if !quiet(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1"])
                .arg(&fs.image),
        ) {
            return Err("mkfs.ext4 failed or is not installed".into());
        }
        // `noinit_itable`: no kernel thread zeroing inode tables while a tool restores.
        if !quiet(Command::new("mount").args(["-o", "loop,noinit_itable"]).arg(&fs.image).arg(&fs.mount)) {
            return Err("mounting a loop device failed (not root?)".into());
        }
        Ok(fs)
    }

    /// Where it is mounted.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.mount
    }
}

impl Drop for ScratchFs {
    fn drop(&mut self) {
        if !quiet(Command::new("umount").arg(&self.mount)) {
            // Busy (a process still in it): detach now, freed when it lets go.
            quiet(Command::new("umount").arg("-l").arg(&self.mount));
        }
        let _ = std::fs::remove_file(&self.image);
        let _ = std::fs::remove_dir(&self.mount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_file_system_is_fresh_and_goes_away() {
        let dir = tempfile_dir();
        let Ok(fs) = ScratchFs::create(&dir) else {
            // Not root here: the harness then restores into the work directory.
            use std::os::unix::fs::MetadataExt;
            let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
            assert!(!root || Command::new("mkfs.ext4").arg("-V").output().is_err());
            return;
        };
        let root = fs.root().to_path_buf();
        std::fs::write(root.join("f"), b"x").unwrap();
        let names: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "a new ext4 holds lost+found and what was written: {names:?}");
        drop(fs);
        assert!(!root.exists() && !dir.join("scratch.img").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cairn-bench-scratch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
