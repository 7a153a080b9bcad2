//! `cairn mount`: the repository's snapshots as a read-only file system (FUSE), the view of
//! `cairn_core::browse` behind the kernel's requests.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use cairn_core::browse::{Attr, Browser, Ino};
use cairn_core::{Error, NodeKind, Time};
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, MountOption, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    ReplyXattr, Request,
};
use nix::sys::signal::{SigSet, Signal};

use crate::context::GlobalArgs;

/// Mount the repository's snapshots, read-only, at a directory (FUSE); Ctrl-C unmounts.
///
/// The mount shows `snapshots/ID/…` (and `snapshots/latest`), `hosts/HOST/ID`, `tags/TAG/ID`
/// and `by-time/TIME`, as the repository was when mounted. Files read with random access,
/// fetching only the blobs a read needs.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An empty directory to mount at.
    mountpoint: PathBuf,
    /// Let other users read the mount too (the files' own modes still apply).
    #[arg(long)]
    allow_other: bool,
}

/// How long the kernel may keep what it was told: the view never changes while mounted.
const TTL: Duration = Duration::from_secs(3600);

/// The read-ahead asked of the kernel.
const READ_AHEAD_BYTES: u32 = 4 << 20;

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let meta =
        std::fs::metadata(&args.mountpoint).with_context(|| format!("mount point {}", args.mountpoint.display()))?;
    if !meta.is_dir() {
        bail!("mount point {} is not a directory", args.mountpoint.display());
    }
    // Signals go to one thread, which unmounts: blocked before any other thread starts (the
    // store's and the index loader's too), so every thread inherits the mask.
    let signals = SigSet::from_iter([Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP]);
    signals.thread_block().context("blocking signals")?;
    let repo = global.open()?;
    let view = Browser::new(repo, nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())?;
    let mut options = vec![
        MountOption::RO,
        MountOption::FSName("cairn".into()),
        MountOption::Subtype("cairn".into()),
        MountOption::DefaultPermissions,
    ];
    if args.allow_other {
        options.push(MountOption::AllowOther);
    }
    let mut session = fuser::Session::new(Mount { view, buffer: Vec::new() }, &args.mountpoint, &options)
        .with_context(|| {
            format!("mounting at {} (is /dev/fuse there, and are you allowed?)", args.mountpoint.display())
        })?;
    let mut unmounter = session.unmount_callable();
    let mountpoint = args.mountpoint.clone();
    std::thread::spawn(move || {
        if signals.wait().is_err() {
            return;
        }
        // A mount still in use (a shell inside it, a file open) cannot go at once: it is
        // detached, and ends when the last file in it is closed.
        if let Err(busy) = nix::mount::umount(&mountpoint) {
            eprintln!(
                "cairn: {} is in use ({busy}); detached, it goes when the last file in it is closed",
                mountpoint.display()
            );
            let _ = nix::mount::umount2(&mountpoint, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = unmounter.unmount();
    });
    if !global.quiet {
        eprintln!(
            "mounted at {}; Ctrl-C (or `umount {}`) unmounts",
            args.mountpoint.display(),
            args.mountpoint.display()
        );
    }
    session.run().context("serving the mount")?;
    Ok(0)
}

struct Mount {
    view: Browser,
    /// What a read answers with, reused from read to read.
    buffer: Vec<u8>,
}

/// The errno a failed request answers with, the cause written to stderr (the kernel only
/// passes the number on).
fn errno(e: &Error) -> i32 {
    match e {
        Error::NotFound(_) => libc::ENOENT,
        Error::InvalidArgument(_) => libc::EINVAL,
        other => {
            eprintln!("cairn mount: {other}");
            libc::EIO
        }
    }
}

/// The `SystemTime` fuser turns into the kernel's (seconds, nanoseconds) pair of `t`. Before
/// 1970 fuser sends the whole seconds before the epoch negated and the nanoseconds as they
/// are, so the time given is the mirror of `t`'s pair: `t.secs` seconds and `t.nanos`
/// nanoseconds, both before the epoch.
fn system_time(t: Time) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos));
    let secs = Duration::from_secs(t.secs.unsigned_abs());
    if t.secs >= 0 { UNIX_EPOCH + secs + nanos } else { UNIX_EPOCH - secs - nanos }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: a.ino,
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.mtime),
        kind: file_type(a.kind),
        perm: u16::try_from(a.perm & 0o7777).unwrap_or(0),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: u32::try_from(a.rdev).unwrap_or(0),
        blksize: 4096,
        flags: 0,
    }
}

impl Mount {
    fn attr(&self, ino: Ino) -> Result<FileAttr, i32> {
        self.view.attr(ino).map(|a| file_attr(&a)).map_err(|e| errno(&e))
    }
}

impl Filesystem for Mount {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // Large reads and a long read-ahead: a sequential reader asks for 1 MiB at a time (the
        // kernel's largest request, with FUSE_MAX_PAGES) instead of 128 KiB. A value the
        // kernel refuses is replaced by the nearest it takes.
        if let Err(nearest) = config.set_max_readahead(READ_AHEAD_BYTES) {
            let _ = config.set_max_readahead(nearest);
        }
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.view.lookup(parent, name.as_bytes()) {
            Ok(Some(ino)) => match self.attr(ino) {
                Ok(attr) => reply.entry(&TTL, &attr, 0),
                Err(e) => reply.error(e),
            },
            Ok(None) => reply.error(libc::ENOENT),
            Err(Error::InvalidArgument(_)) => reply.error(libc::ENOTDIR),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.view.readlink(ino) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else { return reply.error(libc::EINVAL) };
        match self.view.read(ino, offset, size as usize, &mut self.buffer) {
            Ok(()) => reply.data(&self.buffer),
            Err(Error::InvalidArgument(_)) => reply.error(libc::EISDIR),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let children = match self.view.children(ino) {
            Ok(c) => c,
            Err(Error::InvalidArgument(_)) => return reply.error(libc::ENOTDIR),
            Err(e) => return reply.error(errno(&e)),
        };
        // "." and ".." first; the kernel fills in the real parent of "..".
        let dots = [(b".".to_vec(), ino), (b"..".to_vec(), ino)];
        let skip = usize::try_from(offset).unwrap_or(0);
        for (i, (name, child)) in dots.into_iter().chain(children).enumerate().skip(skip) {
            let kind = if i < 2 {
                FileType::Directory
            } else {
                match self.view.attr(child) {
                    Ok(a) => file_type(a.kind),
                    Err(e) => return reply.error(errno(&e)),
                }
            };
            // The offset given is where the next call goes on from.
            if reply.add(child, i as i64 + 1, kind, OsStr::from_bytes(&name)) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&mut self, _req: &Request<'_>, ino: u64, name: &OsStr, size: u32, reply: ReplyXattr) {
        let xattrs = match self.view.xattrs(ino) {
            Ok(x) => x,
            Err(e) => return reply.error(errno(&e)),
        };
        match xattrs.iter().find(|(n, _)| n.as_slice() == name.as_bytes()) {
            None => reply.error(libc::ENODATA),
            Some((_, value)) => answer_xattr(reply, size, value),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let xattrs = match self.view.xattrs(ino) {
            Ok(x) => x,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut names = Vec::new();
        for (name, _) in xattrs {
            names.extend_from_slice(&name);
            names.push(0);
        }
        answer_xattr(reply, size, &names);
    }
}

/// An extended attribute request's answer: the size when asked for it (`size` 0), the bytes
/// when they fit, `ERANGE` when they do not.
fn answer_xattr(reply: ReplyXattr, size: u32, value: &[u8]) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if len <= size {
        reply.data(value);
    } else {
        reply.error(libc::ERANGE);
    }
}
