//! Restore planning: walks the snapshot's trees and decides what each file, directory and link
//! needs, and the metadata helpers the writers share.

use std::collections::HashSet;

use super::*;
use crate::foundation::fsmeta::{self, Entry, XattrFilter};
use crate::repository::trees::TreeVisitor;

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
    /// Symbolic links to make once the walk is done: their directories exist, nothing is in
    /// their way (cleared when planned).
    pub(super) symlinks: Vec<(PathBuf, Node)>,
    /// Hard links to make after content: (new path, file number of the original).
    pub(super) links: Vec<(PathBuf, usize)>,
    pub(super) blobs: HashMap<BlobId, Vec<Target>>,
    pub(super) others: u64,
    pub(super) warnings: Vec<Warning>,
    pub(super) failed: Vec<Failure>,
    /// Entries already in the target that the overwrite policy kept.
    pub(super) skipped: Vec<PathBuf>,
    /// Files already in the target that matched the snapshot (`IfChanged`), left as they were.
    pub(super) unchanged: u64,
    /// Entries removed from the target because the snapshot does not have them (`--delete`).
    pub(super) deleted: Vec<PathBuf>,
}

pub(super) struct Planner<'a> {
    pub(super) index: &'a Index,
    pub(super) includes: PathPatterns,
    pub(super) excludes: PathPatterns,
    pub(super) link_first: HashMap<u64, usize>,
    pub(super) meta: &'a Meta,
    pub(super) plan: Plan,
    /// The directories being walked, innermost last; the first is the target itself.
    pub(super) dirs: Vec<DirFrame>,
    /// What to do with entries already in the target.
    pub(super) overwrite: Overwrite,
    /// With [`Overwrite::IfChanged`]: compare the content of files whose size and mtime match.
    pub(super) verify_existing: bool,
    /// Remove entries of restored directories that the snapshot does not have.
    pub(super) delete: bool,
}

/// A directory of the target being planned.
pub(super) struct DirFrame {
    /// Where it is restored.
    pub(super) target: PathBuf,
    /// This restore just created it, so nothing in it is in the way.
    pub(super) fresh: bool,
    /// Its node and whether it was selected itself (`None` for the restore's target).
    pub(super) node: Option<(Node, bool)>,
    /// Whether anything in it was (or will be) restored.
    pub(super) any: bool,
    /// The names the snapshot has in it (for `--delete`).
    pub(super) names: HashSet<Vec<u8>>,
}

impl DirFrame {
    /// The frame of the restore's target directory.
    pub(super) fn target(target: &Path) -> Self {
        DirFrame { target: target.to_path_buf(), fresh: false, node: None, any: false, names: HashSet::new() }
    }
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

    /// Plans one entry of the directory on top of the stack; returns whether to walk into it.
    /// An entry that cannot be created is recorded as failed and the walk goes on (never
    /// stopping halfway with files created but not yet written).
    pub(super) fn plan_entry(&mut self, node: &Node, snap_path: &Path) -> bool {
        let Some(parent) = self.dirs.last() else { return false };
        let name = node.os_name();
        if name.is_empty() || name == "." || name == ".." || node.name.contains(&b'/') {
            self.plan.failed.push(Failure::new(snap_path, "unsafe file name in the snapshot"));
            return false;
        }
        let target = parent.target.join(name);
        let fresh = parent.fresh;
        if self.delete
            && let Some(top) = self.dirs.last_mut()
        {
            top.names.insert(node.name.clone());
        }
        if self.excludes.matches(snap_path) {
            return false;
        }
        match self.entry(node, snap_path, target.clone(), fresh) {
            Ok(Planned::Restored(restored)) => {
                if let Some(top) = self.dirs.last_mut() {
                    top.any |= restored;
                }
                false
            }
            Ok(Planned::Descend) => true,
            Err(e) => {
                self.plan.failed.push(Failure::new(&target, e.to_string()));
                false
            }
        }
    }

    /// Plans one entry: whether anything was (or will be) restored for it, or that the walk
    /// goes into the directory it is (whose frame is then pushed).
    fn entry(&mut self, node: &Node, snap_path: &Path, target: PathBuf, fresh: bool) -> Result<Planned> {
        let selected = self.included(snap_path);
        match node.kind {
            NodeKind::Dir => {
                if !selected && !self.may_contain_includes(snap_path) {
                    return Ok(Planned::Restored(false));
                }
                // In a directory this restore created, no stat is needed to know the name is
                // free. Elsewhere a directory there is used as it is; anything else (a file, a
                // symbolic link, never followed) is in the way.
                let created = match std::fs::create_dir(&target) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let meta = std::fs::symlink_metadata(&target).at(&target)?;
                        if !meta.is_dir() {
                            if !self.may_replace(&target, node, &meta)? {
                                return Ok(Planned::Restored(false));
                            }
                            std::fs::remove_file(&target).at(&target)?;
                            std::fs::create_dir(&target).at(&target)?;
                            true
                        } else {
                            false
                        }
                    }
                    Err(e) => return Err(Error::io(&target, e)),
                };
                let frame = DirFrame {
                    target,
                    fresh: created,
                    node: Some((node.clone(), selected)),
                    any: false,
                    names: HashSet::new(),
                };
                if node.subtree.is_some() {
                    self.dirs.push(frame);
                    return Ok(Planned::Descend);
                }
                // No tree: an empty directory.
                Ok(Planned::Restored(self.finish_dir(frame)))
            }
            _ if !selected => Ok(Planned::Restored(false)),
            kind if kind != NodeKind::Socket && !fresh && !self.clear(&target, node)? => Ok(Planned::Restored(false)),
            NodeKind::File => {
                if let Some(link) = node.link
                    && let Some(&first) = self.link_first.get(&link)
                {
                    self.plan.links.push((target, first));
                    return Ok(Planned::Restored(true));
                }
                let mut refs = Vec::with_capacity(node.content.len());
                let mut offset = 0u64;
                for id in &node.content {
                    let e = self.index.get(id).ok_or_else(|| {
                        Error::corrupt(format!("data blob {id} of {}", snap_path.display()), "is in no index object")
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
                Ok(Planned::Restored(true))
            }
            NodeKind::Symlink => {
                // Made after the walk, side by side ([`make_symlinks`]).
                self.plan.symlinks.push((target, node.clone()));
                self.plan.others += 1;
                Ok(Planned::Restored(true))
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                if let Err(e) = make_special(&target, node) {
                    self.plan.warnings.push(Warning::at(&target, format!("not restored: {e}")));
                    return Ok(Planned::Restored(false));
                }
                self.set_meta(&target, node, false);
                self.plan.others += 1;
                Ok(Planned::Restored(true))
            }
            NodeKind::Socket => {
                self.plan.warnings.push(Warning::note_at(&target, "sockets are not restored"));
                Ok(Planned::Restored(false))
            }
        }
    }

    /// A directory whose entries are planned: kept (its metadata set last) when it was
    /// selected or holds something restored, removed again otherwise. Returns whether it was
    /// kept.
    fn finish_dir(&mut self, frame: DirFrame) -> bool {
        if self.delete && !frame.fresh {
            self.delete_extras(&frame);
        }
        let Some((node, selected)) = frame.node else { return frame.any };
        if selected || frame.any {
            self.plan.dirs.push((frame.target, node));
            return true;
        }
        let _ = std::fs::remove_dir(&frame.target);
        false
    }

    /// Makes room at `target` for `node` (not a directory) in a directory that existed before
    /// the restore: whether to go on restoring it. What is there is replaced only as the
    /// overwrite policy allows; a directory in the way is never removed.
    fn clear(&mut self, target: &Path, node: &Node) -> Result<bool> {
        let meta = match std::fs::symlink_metadata(target) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io(target, e)),
        };
        if meta.is_dir() {
            return Err(Error::InvalidArgument(format!("{}: a directory is in the way", target.display())));
        }
        if !self.may_replace(target, node, &meta)? {
            return Ok(false);
        }
        std::fs::remove_file(target).at(target)?;
        Ok(true)
    }

    /// Whether the entry at `target` (`meta`, not followed) may be replaced by `node`; when not,
    /// the reason is recorded: an entry kept because the policy keeps it is named, one already
    /// the same as the snapshot's is counted.
    fn may_replace(&mut self, target: &Path, node: &Node, meta: &std::fs::Metadata) -> Result<bool> {
        match self.overwrite {
            Overwrite::Always => Ok(true),
            Overwrite::Never | Overwrite::Unspecified => {
                self.plan.skipped.push(target.to_path_buf());
                Ok(false)
            }
            Overwrite::IfChanged => {
                if node.kind == NodeKind::File && meta.is_file() && self.same_file(target, node, meta)? {
                    self.plan.unchanged += 1;
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// Whether the regular file at `target` already holds what `node` does: the same size and
    /// modification time, and with `verify_existing` the same content (its whole-file hash).
    fn same_file(&self, target: &Path, node: &Node, meta: &std::fs::Metadata) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let same_times =
            meta.mtime() == node.mtime.secs && u32::try_from(meta.mtime_nsec()).ok() == Some(node.mtime.nanos);
        if meta.len() != node.size || !same_times {
            return Ok(false);
        }
        if !self.verify_existing {
            return Ok(true);
        }
        let Some(expected) = node.hash else { return Ok(false) };
        let mut hasher = blake3::Hasher::new();
        let file = File::open(target).at(target)?;
        hasher.update_reader(file).at(target)?;
        Ok(Digest(*hasher.finalize().as_bytes()) == expected)
    }

    /// Removes what a directory of the target holds that the snapshot's directory does not
    /// (`--delete`). Symbolic links are removed, never followed.
    fn delete_extras(&mut self, frame: &DirFrame) {
        let Ok(entries) = std::fs::read_dir(&frame.target) else { return };
        for entry in entries.flatten() {
            if frame.names.contains(entry.file_name().as_bytes()) {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            match removed {
                Ok(()) => self.plan.deleted.push(path),
                Err(e) => self.plan.failed.push(Failure::new(&path, format!("not deleted: {e}"))),
            }
        }
    }

    pub(super) fn set_meta(&mut self, path: &Path, node: &Node, symlink: bool) {
        self.plan.warnings.extend(metadata_warning(path, set_metadata(path, node, symlink, self.meta)));
    }
}

/// What planning an entry came to.
enum Planned {
    /// Planned; whether anything will be restored for it.
    Restored(bool),
    /// A directory the walk goes into (its frame is pushed).
    Descend,
}

impl TreeVisitor for Planner<'_> {
    /// Whether anything in the directory was (or will be) restored.
    type Output = bool;

    fn entry(&mut self, snap_path: &Path, node: &Node) -> Result<bool> {
        Ok(self.plan_entry(node, snap_path))
    }

    fn after(&mut self, _: &BlobId, _: &Path, _: Tree, below: Vec<Option<bool>>) -> Result<bool> {
        let Some(mut frame) = self.dirs.pop() else { return Ok(false) };
        frame.any |= below.into_iter().flatten().any(|b| b);
        let kept = self.finish_dir(frame);
        if let Some(parent) = self.dirs.last_mut() {
            parent.any |= kept;
        }
        Ok(kept)
    }

    fn unreadable(&mut self, _: &BlobId, _: &Path, error: Error) -> Result<bool> {
        // The directory's frame was pushed when its entry was planned; nothing is in it yet.
        if let Some(frame) = self.dirs.pop() {
            if frame.fresh {
                let _ = std::fs::remove_dir(&frame.target);
            }
            self.plan.failed.push(Failure::new(&frame.target, error.to_string()));
        }
        Ok(false)
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

/// How a restore sets metadata: owners only as root, and which extended attributes.
pub(super) struct Meta {
    pub(super) is_root: bool,
    /// The attributes to restore (`privileged` only as root).
    pub(super) xattrs: XattrFilter,
    /// `trusted.*` and `security.*` attributes left out because this is not root.
    pub(super) privileged_skipped: AtomicUsize,
}

impl Meta {
    pub(super) fn new(is_root: bool, no_xattrs: bool, no_acls: bool) -> Self {
        Meta {
            is_root,
            xattrs: XattrFilter { xattrs: !no_xattrs, acls: !no_acls, privileged: is_root },
            privileged_skipped: AtomicUsize::new(0),
        }
    }

    /// Sets `node`'s extended attributes on `entry`; what could not be set, as a warning.
    pub(super) fn set_xattrs<Fd: std::os::fd::AsFd + Copy>(&self, entry: Entry<'_, Fd>, node: &Node) -> Option<String> {
        let mut failed = Vec::new();
        for x in &node.xattrs {
            if !self.xattrs.wants(&x.name) {
                if fsmeta::is_privileged(&x.name) && self.xattrs.xattrs {
                    self.privileged_skipped.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if let Err(e) = fsmeta::write_xattr(entry, &x.name, &x.value) {
                failed.push(format!("{} ({e})", String::from_utf8_lossy(&x.name)));
            }
        }
        (!failed.is_empty()).then(|| format!("extended attributes not restored: {}", failed.join(", ")))
    }

    /// The warning about attributes left out for want of root, if any were.
    pub(super) fn skipped_warning(&self) -> Option<Warning> {
        let n = self.privileged_skipped.load(Ordering::Relaxed);
        (n > 0).then(|| {
            Warning::note(format!("not running as root: {n} trusted.* and security.* attributes were not restored"))
        })
    }
}

/// Sets owner (as root), mode (not of a symbolic link), extended attributes and times of the
/// entry at `path`. Returns the attributes that could not be set, as a warning.
pub(super) fn set_metadata(path: &Path, node: &Node, symlink: bool, meta: &Meta) -> std::io::Result<Option<String>> {
    if meta.is_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))?;
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))?;
    }
    let warning = meta.set_xattrs(Entry::<&File>::Path(path), node);
    filetime::set_symlink_file_times(path, to_filetime(node.atime), to_filetime(node.mtime))?;
    Ok(warning)
}

/// Sets the inode flags of restored files and directories, last of all (an immutable file or
/// directory takes no further change, an append-only one no new times): files first, then
/// directories deepest first. Returns warnings for those that could not be set.
pub(super) fn set_flags<'p>(entries: impl Iterator<Item = (&'p Path, &'p Node)>) -> Vec<Warning> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flagged: Vec<(&Path, &Node)> = entries.filter(|(_, n)| n.flags != 0).collect();
    flagged.sort_by_key(|(p, n)| (n.kind == NodeKind::Dir, std::cmp::Reverse(p.components().count())));
    let mut warnings = Vec::new();
    for (path, node) in flagged {
        let mut open = OpenOptions::new();
        open.read(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK);
        let set = open.open(path).and_then(|f| fsmeta::write_flags(&f, node.flags));
        if let Err(e) = set {
            warnings.push(Warning::at(path, format!("inode flags {:#x} not restored: {e}", node.flags)));
        }
    }
    warnings
}

/// Makes the planned symbolic links and sets their metadata, on the pool's threads: a tree
/// like `/usr/share` holds thousands, and one thread making them one by one kept the other
/// core idle while the plan was made. A link that cannot be made is a failure, as an entry
/// that cannot be created always was.
pub(super) fn make_symlinks(plan: &mut Plan, meta: &Meta, pool: &rayon::ThreadPool) {
    let outcomes: Vec<std::result::Result<Option<Warning>, Failure>> = pool.install(|| {
        plan.symlinks
            .par_iter()
            .map(|(target, node)| {
                let t = node.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), target)
                    .map_err(|e| Failure::new(target, Error::io(target, e).to_string()))?;
                Ok(metadata_warning(target, set_metadata(target, node, true, meta)))
            })
            .collect()
    });
    for outcome in outcomes {
        match outcome {
            Ok(None) => {}
            Ok(Some(warning)) => plan.warnings.push(warning),
            Err(failure) => {
                plan.others -= 1;
                plan.failed.push(failure);
            }
        }
    }
}

/// Sets the planned directories' metadata, deepest first: a directory's mode may take away
/// the search permission a deeper one's path needs. Those of one depth are independent, so
/// each depth is done on the pool's threads side by side.
pub(super) fn set_dirs_metadata(plan: &mut Plan, meta: &Meta, pool: &rayon::ThreadPool) {
    plan.dirs.sort_by_cached_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    let depth = |p: &Path| p.components().count();
    let warnings: Vec<Warning> = pool.install(|| {
        plan.dirs
            .chunk_by(|(a, _), (b, _)| depth(a) == depth(b))
            .flat_map(|level| {
                level
                    .par_iter()
                    .filter_map(|(path, node)| metadata_warning(path, set_metadata(path, node, false, meta)))
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    plan.warnings.extend(warnings);
}

/// The warning, if any, of setting `path`'s metadata.
fn metadata_warning(path: &Path, outcome: std::io::Result<Option<String>>) -> Option<Warning> {
    match outcome {
        Ok(None) => None,
        Ok(Some(warning)) => Some(Warning::at(path, warning)),
        Err(e) => Some(Warning::at(path, format!("metadata: {e}"))),
    }
}
