//! File metadata the kernel keeps beside `stat`: extended attributes (POSIX ACLs among them,
//! stored by Linux as the attributes `system.posix_acl_access` and `system.posix_acl_default`)
//! and the inode flags that change what may be done to a file (append-only, immutable,
//! no-dump, as `chattr` sets them).
//!
//! Reading takes an entry by path, never following a symbolic link, or an open file. A file
//! system without extended attributes reads as having none.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, IFlags, StatxAttributes, StatxFlags};

/// `chattr +i`: nothing may change the inode or its content, nor link or remove it.
pub const FLAG_IMMUTABLE: u32 = 0x10;
/// `chattr +a`: the file may only be appended to.
pub const FLAG_APPEND: u32 = 0x20;
/// `chattr +d`: backup programs may skip it (`backup --exclude-nodump`).
pub const FLAG_NODUMP: u32 = 0x40;
/// The inode flags a backup records. Their values are the kernel's `FS_*_FL` ones, which its
/// `STATX_ATTR_*` values for the same flags equal.
pub const FLAGS_KEPT: u32 = FLAG_IMMUTABLE | FLAG_APPEND | FLAG_NODUMP;

/// The attribute holding a POSIX access ACL.
pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
/// The attribute holding a directory's POSIX default ACL.
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// A POSIX ACL as the kernel stores it in `system.posix_acl_*` (a version 2 header, then
/// 8-byte entries: tag u16, permissions u16, id u32, little endian) in the short text form
/// `acl_to_text` writes with numeric ids (`user::rw-,user:1000:r--,group::r--,mask::r--,other::---`),
/// as tar archives carry ACLs. `None` for bytes that are not such an ACL.
#[must_use]
pub fn acl_to_text(value: &[u8]) -> Option<String> {
    let (head, entries) = value.split_at_checked(4)?;
    if u32::from_le_bytes(head.try_into().ok()?) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    let mut parts = Vec::new();
    for e in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let who = match tag {
            0x01 => "user:".to_string(),
            0x02 => format!("user:{id}"),
            0x04 => "group:".to_string(),
            0x08 => format!("group:{id}"),
            0x10 => "mask:".to_string(),
            0x20 => "other:".to_string(),
            _ => return None,
        };
        let bit = |b: u16, c: char| if perm & b != 0 { c } else { '-' };
        parts.push(format!("{who}:{}{}{}", bit(4, 'r'), bit(2, 'w'), bit(1, 'x')));
    }
    Some(parts.join(","))
}

/// Whether an attribute name is one of the POSIX ACLs.
#[must_use]
pub fn is_acl(name: &[u8]) -> bool {
    name == ACL_ACCESS || name == ACL_DEFAULT
}

/// Whether an attribute name is in a namespace only a privileged process reads and writes
/// (`trusted.*`) or that the system manages (`security.*`: SELinux labels, capabilities).
#[must_use]
pub fn is_privileged(name: &[u8]) -> bool {
    name.starts_with(b"trusted.") || name.starts_with(b"security.")
}

/// Which extended attributes to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XattrFilter {
    /// Attributes other than ACLs.
    pub xattrs: bool,
    /// The POSIX ACL attributes.
    pub acls: bool,
    /// `trusted.*` and `security.*` too (a process running as root).
    pub privileged: bool,
}

impl XattrFilter {
    /// Whether to take the attribute `name`.
    #[must_use]
    pub fn wants(&self, name: &[u8]) -> bool {
        if is_acl(name) {
            return self.acls;
        }
        self.xattrs && (self.privileged || !is_privileged(name))
    }

    /// Whether any attribute at all is wanted.
    #[must_use]
    pub fn any(&self) -> bool {
        self.xattrs || self.acls
    }
}

/// What to read metadata of: an entry by path (a symbolic link itself, not what it points to)
/// or an open file.
#[derive(Clone, Copy)]
pub enum Entry<'a, Fd: AsFd> {
    /// By path, not following a final symbolic link.
    Path(&'a Path),
    /// An open file.
    Open(Fd),
}

/// A file system that keeps no extended attributes (or none of this kind) answers so.
fn unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::OPNOTSUPP
}

/// Calls `get` with buffers that grow until the value fits: attributes may grow between the
/// size query and the read.
fn sized(mut get: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match get(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => {
                let size = get(&mut [])?.max(buf.len() * 2);
                buf.resize(size, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The extended attributes of `entry` that `filter` wants, sorted by name, as (name, value).
///
/// # Errors
/// The system call's error (not for a file system without attributes, which has none).
pub fn read_xattrs<Fd: AsFd>(entry: Entry<'_, Fd>, filter: XattrFilter) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if !filter.any() {
        return Ok(Vec::new());
    }
    let list = match entry {
        Entry::Path(p) => sized(|b| rustix::fs::llistxattr(p, b)),
        Entry::Open(ref fd) => sized(|b| rustix::fs::flistxattr(fd, b)),
    };
    let list = match list {
        Ok(l) => l,
        Err(e) if unsupported(e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty() && filter.wants(n)) {
        let cname = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let value = match entry {
            Entry::Path(p) => sized(|b| rustix::fs::lgetxattr(p, cname.as_c_str(), b)),
            Entry::Open(ref fd) => sized(|b| rustix::fs::fgetxattr(fd, cname.as_c_str(), b)),
        };
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed since the listing.
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort();
    Ok(out)
}

/// Sets one extended attribute of `entry`.
///
/// # Errors
/// The system call's error: `ENOTSUP` on a file system without attributes, `EPERM` for a
/// namespace this process may not write.
pub fn write_xattr<Fd: AsFd>(entry: Entry<'_, Fd>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let cname = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = rustix::fs::XattrFlags::empty();
    match entry {
        Entry::Path(p) => rustix::fs::lsetxattr(p, cname.as_c_str(), value, flags)?,
        Entry::Open(fd) => rustix::fs::fsetxattr(fd, cname.as_c_str(), value, flags)?,
    }
    Ok(())
}

/// What one `statx` of an open file tells a backup: whether it changed while it was read, and
/// its inode flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenStat {
    /// Size in bytes.
    pub size: u64,
    /// Last modification (seconds, nanoseconds since the epoch).
    pub mtime: (i64, u32),
    /// Last status change (seconds, nanoseconds since the epoch).
    pub ctime: (i64, u32),
    /// The kept inode flags ([`FLAGS_KEPT`]).
    pub flags: u32,
}

/// Size, times and kept inode flags of an open file, in one system call.
///
/// # Errors
/// The system call's error.
pub fn stat_open(fd: impl AsFd) -> io::Result<OpenStat> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)?;
    let time = |t: rustix::fs::StatxTimestamp| (t.tv_sec, t.tv_nsec);
    Ok(OpenStat { size: st.stx_size, mtime: time(st.stx_mtime), ctime: time(st.stx_ctime), flags: kept_flags(&st) })
}

/// The kept flags among what `statx` said (only those the file system reports at all).
fn kept_flags(st: &rustix::fs::Statx) -> u32 {
    let set = st.stx_attributes & st.stx_attributes_mask;
    let mut flags = 0;
    for (attr, flag) in [
        (StatxAttributes::IMMUTABLE, FLAG_IMMUTABLE),
        (StatxAttributes::APPEND, FLAG_APPEND),
        (StatxAttributes::NODUMP, FLAG_NODUMP),
    ] {
        if set.contains(attr) {
            flags |= flag;
        }
    }
    flags
}

/// The kept inode flags ([`FLAGS_KEPT`]) of `entry`, from `statx` (no need to open it).
///
/// # Errors
/// The system call's error.
pub fn read_flags<Fd: AsFd>(entry: Entry<'_, Fd>) -> io::Result<u32> {
    let st = match entry {
        Entry::Path(p) => rustix::fs::statx(CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::empty())?,
        Entry::Open(fd) => rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::empty())?,
    };
    Ok(kept_flags(&st))
}

/// Sets the kept inode flags of the open file or directory `fd` to `flags`, leaving the
/// others (such as ext4's extents flag) as they are.
///
/// # Errors
/// The system call's error: `EPERM` for immutable or append-only without the capability,
/// `ENOTTY`/`ENOTSUP` on a file system without flags.
pub fn write_flags(fd: impl AsFd, flags: u32) -> io::Result<()> {
    let current = rustix::fs::ioctl_getflags(&fd)?;
    let kept = IFlags::from_bits_retain(FLAGS_KEPT);
    let wanted = (current - kept) | IFlags::from_bits_retain(flags & FLAGS_KEPT);
    if wanted != current {
        rustix::fs::ioctl_setflags(&fd, wanted)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: XattrFilter = XattrFilter { xattrs: true, acls: true, privileged: false };

    #[test]
    fn acls_as_text() {
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in
            [(1u16, 6u16, u32::MAX), (2, 4, 1000), (4, 4, u32::MAX), (0x10, 5, u32::MAX), (0x20, 0, u32::MAX)]
        {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        assert_eq!(acl_to_text(&acl).as_deref(), Some("user::rw-,user:1000:r--,group::r--,mask::r-x,other::---"));
        assert_eq!(acl_to_text(&acl[..7]), None);
        acl[0] = 1;
        assert_eq!(acl_to_text(&acl), None);
    }

    #[test]
    fn filters_take_what_they_name() {
        let none = XattrFilter { xattrs: false, acls: false, privileged: false };
        let acls_only = XattrFilter { acls: true, ..none };
        assert!(ALL.wants(b"user.x") && ALL.wants(ACL_ACCESS) && !ALL.wants(b"security.selinux"));
        assert!(XattrFilter { privileged: true, ..ALL }.wants(b"trusted.x"));
        assert!(acls_only.wants(ACL_DEFAULT) && !acls_only.wants(b"user.x"));
        assert!(!none.any());
    }

    #[test]
    fn attributes_round_trip_by_path_and_through_an_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let by_path = Entry::<&std::fs::File>::Path(&path);
        match write_xattr(by_path, b"user.b", b"second") {
            // A file system without user attributes: nothing more to see here.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => return,
            other => other.unwrap(),
        }
        write_xattr(Entry::Open(&file), b"user.a", &vec![7u8; 1000]).unwrap();
        let want = vec![(b"user.a".to_vec(), vec![7u8; 1000]), (b"user.b".to_vec(), b"second".to_vec())];
        assert_eq!(read_xattrs(by_path, ALL).unwrap(), want);
        assert_eq!(read_xattrs(Entry::Open(&file), ALL).unwrap(), want);
        let none = XattrFilter { xattrs: false, ..ALL };
        assert!(read_xattrs(by_path, none).unwrap().is_empty());
    }
}
