//! Restore planning: walks the snapshot's trees and decides what each file, directory and link
//! needs, and the metadata helpers the writers share.

use super::*;

pub(super) struct FilePlan {
    pub(super) path: PathBuf,
    pub(super) node: Node,
    pub(super) state: FileState,
}

/// How far a file's restore has come, shared by the threads writing its blobs.
#[derive(Default)]
pub(super) struct FileState {
    /// Blob placements not yet written (or left as holes). The thread that takes it to zero
    /// finishes the file: sizes it if it ends in a hole, sets its metadata, closes it.
    pub(super) remaining: AtomicUsize,
    /// An all-zero blob was left as a hole.
    pub(super) hole: AtomicBool,
    /// Content and metadata are in place.
    pub(super) finished: AtomicBool,
}

/// One place a blob's plaintext goes.
#[derive(Clone, Copy)]
pub(super) struct Target {
    pub(super) file: usize,
    pub(super) offset: u64,
}

pub(super) struct Plan {
    pub(super) files: Vec<FilePlan>,
    pub(super) dirs: Vec<(PathBuf, Node)>,
    /// Hard links to make after content: (new path, file number of the original).
    pub(super) links: Vec<(PathBuf, usize)>,
    pub(super) blobs: HashMap<BlobId, Vec<Target>>,
    pub(super) others: u64,
    pub(super) warnings: Vec<String>,
    pub(super) failed: Vec<(String, String)>,
}

pub(super) struct Planner<'a> {
    pub(super) repo: &'a Repository,
    pub(super) index: &'a Index,
    /// Trees fetched ahead ([`prefetch_trees`]).
    pub(super) trees: HashMap<BlobId, Tree>,
    pub(super) includes: PathPatterns,
    pub(super) excludes: PathPatterns,
    pub(super) link_first: HashMap<u64, usize>,
    pub(super) is_root: bool,
    pub(super) plan: Plan,
}

impl Planner<'_> {
    pub(super) fn included(&self, snap_path: &Path) -> bool {
        self.includes.is_empty() || snap_path.ancestors().any(|p| self.includes.matches(p))
    }

    /// Whether anything below `snap_path` could be included.
    pub(super) fn may_contain_includes(&self, _snap_path: &Path) -> bool {
        // Patterns can match at any depth; only a full walk can tell.
        true
    }

    /// Plans a directory's entries; an entry that cannot be created is recorded as failed and
    /// the walk goes on (never stopping halfway with files created but not yet written).
    /// `fresh`: `target_dir` was just created by this restore, so nothing in it is in the way.
    pub(super) fn walk(&mut self, tree: &Tree, snap_dir: &Path, target_dir: &Path, fresh: bool) -> bool {
        let mut any = false;
        for node in &tree.nodes {
            let name = node.os_name();
            if name.is_empty() || name == "." || name == ".." || node.name.contains(&b'/') {
                self.plan
                    .failed
                    .push((snap_dir.join(name).display().to_string(), "unsafe file name in the snapshot".into()));
                continue;
            }
            let snap_path = snap_dir.join(name);
            let target = target_dir.join(name);
            if self.excludes.matches(&snap_path) {
                continue;
            }
            match self.entry(node, &snap_path, target.clone(), fresh) {
                Ok(restored) => any |= restored,
                Err(e) => self.plan.failed.push((target.display().to_string(), e.to_string())),
            }
        }
        any
    }

    /// Plans one entry; returns whether anything was (or will be) restored for it.
    pub(super) fn entry(&mut self, node: &Node, snap_path: &Path, target: PathBuf, fresh: bool) -> Result<bool> {
        let selected = self.included(snap_path);
        // In a directory this restore created, no stat is needed to know the name is free.
        let clear = |path: &Path| if fresh { Ok(()) } else { remove_existing(path) };
        match node.kind {
            NodeKind::Dir => {
                if !selected && !self.may_contain_includes(snap_path) {
                    return Ok(false);
                }
                let subtree = match node.subtree {
                    Some(id) => match self.trees.get(&id) {
                        Some(t) => t.clone(),
                        None => self.repo.load_tree(self.index, &id)?,
                    },
                    None => Tree::default(),
                };
                let created = match std::fs::create_dir(&target) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && target.is_dir() => false,
                    Err(_) => {
                        std::fs::create_dir_all(&target).at(&target)?;
                        false
                    }
                };
                let inner = self.walk(&subtree, snap_path, &target, created);
                if selected || inner {
                    self.plan.dirs.push((target, node.clone()));
                    return Ok(true);
                }
                let _ = std::fs::remove_dir(&target);
                Ok(false)
            }
            _ if !selected => Ok(false),
            NodeKind::File => {
                clear(&target)?;
                if let Some(link) = node.link
                    && let Some(&first) = self.link_first.get(&link)
                {
                    self.plan.links.push((target, first));
                    return Ok(true);
                }
                let mut refs = Vec::with_capacity(node.content.len());
                let mut offset = 0u64;
                for id in &node.content {
                    let e = self.index.get(id).ok_or_else(|| {
                        Error::NotFound(format!("data blob {id} of {} in the index", snap_path.display()))
                    })?;
                    refs.push((*id, offset));
                    offset += u64::from(e.raw_len);
                }
                // The file is created by the first write to it, or after all writes if it has
                // no content to write ([`finish_file`]).
                let n = self.plan.files.len();
                if let Some(link) = node.link {
                    self.link_first.insert(link, n);
                }
                let state = FileState { remaining: AtomicUsize::new(refs.len()), ..Default::default() };
                for (id, offset) in refs {
                    self.plan.blobs.entry(id).or_default().push(Target { file: n, offset });
                }
                self.plan.files.push(FilePlan { path: target, node: node.clone(), state });
                Ok(true)
            }
            NodeKind::Symlink => {
                clear(&target)?;
                let t = node.target.clone().unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), &target).at(&target)?;
                self.set_meta(&target, node, true);
                self.plan.others += 1;
                Ok(true)
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                clear(&target)?;
                if let Err(e) = make_special(&target, node) {
                    self.plan.warnings.push(format!("{}: not restored: {e}", target.display()));
                    return Ok(false);
                }
                self.set_meta(&target, node, false);
                self.plan.others += 1;
                Ok(true)
            }
            NodeKind::Socket => {
                self.plan.warnings.push(format!("{}: sockets are not restored", target.display()));
                Ok(false)
            }
        }
    }

    pub(super) fn set_meta(&mut self, path: &Path, node: &Node, symlink: bool) {
        if let Err(e) = set_metadata(path, node, symlink, self.is_root) {
            self.plan.warnings.push(format!("{}: metadata: {e}", path.display()));
        }
    }
}

pub(super) fn remove_existing(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::InvalidArgument(format!("{}: a directory is in the way", path.display()))),
        Ok(_) => std::fs::remove_file(path).at(path),
        Err(_) => Ok(()),
    }
}

pub(super) fn make_special(path: &Path, node: &Node) -> std::result::Result<(), String> {
    use nix::sys::stat::{Mode, SFlag, mknod};
    let mode = Mode::from_bits_truncate(node.mode & 0o7777);
    let kind = match node.kind {
        NodeKind::Fifo => return nix::unistd::mkfifo(path, mode).map_err(|e| e.to_string()),
        NodeKind::CharDevice => SFlag::S_IFCHR,
        _ => SFlag::S_IFBLK,
    };
    mknod(path, kind, mode, node.rdev).map_err(|e| e.to_string())
}

pub(super) fn to_filetime(t: Time) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(t.secs, t.nanos)
}

pub(super) fn set_metadata(path: &Path, node: &Node, symlink: bool, is_root: bool) -> std::io::Result<()> {
    if is_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))?;
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))?;
    }
    filetime::set_symlink_file_times(path, to_filetime(node.atime), to_filetime(node.mtime))
}

pub(super) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
