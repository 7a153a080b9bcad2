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

use std::cell::{Cell, RefCell};
use std::fs;
use std::io::Read;
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
        let made = fs::File::create(&image).and_then(|f| f.set_len(IMAGE_BYTES));
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

/// Where a run's restores go, one after another.
#[derive(Debug)]
pub struct RestoreSpace {
    work: PathBuf,
    count: Cell<u32>,
    /// The scratch file system of the current restore.
    scratch: RefCell<Option<ScratchFs>>,
    /// Why restores go to the work directory, once a scratch file system could not be made.
    fallback: RefCell<Option<String>>,
}

impl RestoreSpace {
    /// Restores of a run whose work directory is `work`.
    #[must_use]
    pub fn new(work: &Path) -> Self {
        RestoreSpace {
            work: work.to_path_buf(),
            count: Cell::new(0),
            scratch: RefCell::new(None),
            fallback: RefCell::new(None),
        }
    }

    /// A new, empty directory to restore into, and the same start for every restore: the
    /// earlier restores gone, a file system that never held them (see the module's text: on
    /// this machine's ext4, files created soon after many were deleted cost a scan each), and
    /// nothing in the page cache but `warm` (as root: `drop_caches`, then `warm`, the restoring
    /// tool's repository and cache, read back). Every restore then starts with the same free
    /// memory too, rather than the later ones in a run paying for the kernel reclaiming page
    /// cache (on this VM that tripled a 1 GiB restore's time once memory ran out).
    ///
    /// Where no scratch file system can be made (not root), restores go to the work directory
    /// and [`RestoreSpace::description`] says they may carry that cost.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn next(&self, warm: &[&Path], say: &dyn Fn(&str)) -> std::io::Result<PathBuf> {
        let n = self.count.get();
        self.count.set(n + 1);
        self.clear();
        let _ = Command::new("sync").status();
        if fs::write("/proc/sys/vm/drop_caches", "1").is_ok() {
            warm.iter().for_each(|dir| read_into_cache(dir));
        }
        let target = self.fresh_dir(say).join(n.to_string());
        fs::create_dir_all(&target)?;
        Ok(target)
    }

    /// A directory on a new scratch file system, or where none can be made, the work
    /// directory's `restores`.
    pub fn fresh_dir(&self, say: &dyn Fn(&str)) -> PathBuf {
        if self.fallback.borrow().is_none() {
            match ScratchFs::create(&self.work) {
                Ok(fs) => {
                    let root = fs.root().to_path_buf();
                    *self.scratch.borrow_mut() = Some(fs);
                    return root;
                }
                Err(why) => {
                    say(&format!("restores go to the work directory: no scratch file system ({why})"));
                    *self.fallback.borrow_mut() = Some(format!(
                        "a directory of the work directory's file system (no scratch file system: {why}); a restore soon after many files were deleted may pay for ext4 skipping the freed inodes"
                    ));
                }
            }
        }
        self.scratch.borrow().as_ref().map_or_else(|| self.work.join("restores"), |fs| fs.root().to_path_buf())
    }

    /// Deletes the restores, their pages dropped first.
    pub fn clear(&self) {
        drop(self.scratch.borrow_mut().take());
        let restores = self.work.join("restores");
        visit_files(&restores, &mut |f| {
            let _ = nix::fcntl::posix_fadvise(f, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        });
        let _ = fs::remove_dir_all(restores);
    }

    /// Where the restores were written, for the report.
    #[must_use]
    pub fn description(&self) -> String {
        self.fallback.borrow().clone().unwrap_or_else(|| {
            "a new ext4 file system for each (a sparse image in the work directory, loop-mounted, without a journal like this machine's root), so no restore meets the inodes another's clean-up freed".into()
        })
    }
}

/// Opens every regular file under `dir` and hands it to `each`.
pub fn visit_files(dir: &Path, each: &mut dyn FnMut(&fs::File)) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for e in read.filter_map(Result::ok) {
        match e.file_type() {
            Ok(t) if t.is_dir() => visit_files(&e.path(), each),
            Ok(t) if t.is_file() => {
                if let Ok(f) = fs::File::open(e.path()) {
                    each(&f);
                }
            }
            _ => {}
        }
    }
}

/// Reads every file under `dir` into the page cache.
pub fn read_into_cache(dir: &Path) {
    let mut buf = vec![0u8; 1 << 20];
    visit_files(dir, &mut |mut f| while matches!(f.read(&mut buf), Ok(n) if n > 0) {});
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
