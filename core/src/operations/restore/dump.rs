//! Restoring to a stream instead of a directory: one file's content to any [`Write`]
//! ([`file`]), or a directory as a tar stream ([`dump`], which writes a file as itself). Content
//! is read blob by blob and checked against the whole-file hash stored at backup time, so
//! nothing is held whole in memory and damage is never passed on silently.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::format::blob::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::foundation::error::{Error, Result};
use crate::foundation::fsmeta::{ACL_ACCESS, ACL_DEFAULT, acl_to_text, is_acl};
use crate::foundation::id::{BlobId, Digest};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::trees::TreeWalker;

/// Reads a file of a snapshot, blob by blob; at the end, checks the content against the hash
/// stored at backup time (a mismatch is an error, never a silent end).
pub struct FileReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    content: Vec<BlobId>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    hasher: blake3::Hasher,
    expected: Option<Digest>,
    name: String,
}

impl<'a> FileReader<'a> {
    /// A reader of the file `node`, whose blobs `index` locates.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `node` is not a regular file.
    pub fn new(repo: &'a Repository, index: &'a Index, node: &Node) -> Result<Self> {
        if node.kind != NodeKind::File {
            return Err(Error::InvalidArgument(format!("{} is not a regular file", node.display_name())));
        }
        Ok(FileReader {
            repo,
            index,
            content: node.content.clone(),
            next: 0,
            buf: Vec::new(),
            pos: 0,
            hasher: blake3::Hasher::new(),
            expected: node.hash,
            name: node.display_name(),
        })
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.content.get(self.next).copied() else {
                if let Some(h) = self.expected.take()
                    && Digest(*self.hasher.finalize().as_bytes()) != h
                {
                    return Err(std::io::Error::other(Error::corrupt(
                        &self.name,
                        "content does not match the hash stored at backup time",
                    )));
                }
                return Ok(0);
            };
            self.next += 1;
            self.buf = self.repo.read_blob(self.index, BlobKind::Data, &id).map_err(std::io::Error::other)?;
            self.hasher.update(&self.buf);
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// An engine error carried through `std::io` (as [`FileReader`] does) comes back out whole;
/// any other I/O error was writing to `out`.
pub(crate) fn unwrap_io(e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(engine) = inner.downcast::<Error>()
        {
            return *engine;
        }
        return Error::Internal("an error lost on its way through a reader".into());
    }
    Error::io("<output>", e)
}

/// Writes the content of the file at `path` in `snapshot` to `out`; returns the bytes written.
///
/// # Errors
/// [`Error::NotFound`] for a missing path, [`Error::InvalidArgument`] for one that is not a
/// regular file; damaged or missing data (`out` then holds what came before it); write errors.
pub fn file(repo: &Repository, snapshot: &Snapshot, path: &Path, out: &mut dyn Write) -> Result<u64> {
    let index = repo.load_index()?;
    let node = TreeWalker::new(repo, &index).find(snapshot, path)?;
    let mut reader = FileReader::new(repo, &index, &node)?;
    std::io::copy(&mut reader, out).map_err(unwrap_io)
}

/// What [`dump`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dumped {
    /// A file's content, this many bytes.
    File(u64),
    /// A directory as a tar stream.
    Tar,
}

/// Writes the entry at `path` in `snapshot` to `out`: a file's content as it is, a directory
/// as a tar stream of everything below it (named relative to the directory's own name).
///
/// # Errors
/// As [`file()`]; unreadable trees.
pub fn dump(repo: &Repository, snapshot: &Snapshot, path: &Path, out: &mut dyn Write) -> Result<Dumped> {
    let index = repo.load_index()?;
    let walker = TreeWalker::new(repo, &index);
    let node = walker.find(snapshot, path)?;
    if node.kind != NodeKind::Dir {
        let mut reader = FileReader::new(repo, &index, &node)?;
        return std::io::copy(&mut reader, out).map(Dumped::File).map_err(unwrap_io);
    }
    let mut tar = Tar { builder: tar::Builder::new(out), links: HashMap::new(), repo, index: &index };
    tar.builder.mode(tar::HeaderMode::Complete);
    let root_name = PathBuf::from(path.file_name().unwrap_or(std::ffi::OsStr::new(".")));
    tar.append(&root_name, &node)?;
    if let Some(sub) = node.subtree {
        walker.for_each(&sub, &root_name, &mut |p, n| tar.append(p, n))?;
    }
    tar.builder.finish().map_err(unwrap_io)?;
    Ok(Dumped::Tar)
}

/// A tar stream being written.
struct Tar<'o, 'a> {
    builder: tar::Builder<&'o mut dyn Write>,
    /// The first path of each hard-link group written.
    links: HashMap<u64, PathBuf>,
    repo: &'a Repository,
    index: &'a Index,
}

impl Tar<'_, '_> {
    fn append(&mut self, p: &Path, n: &Node) -> Result<()> {
        // Extended attributes go in a PAX header before the entry, as GNU tar and bsdtar write
        // and read them (`SCHILY.xattr.NAME`, the value's raw bytes), so `tar --xattrs -x`
        // restores them; POSIX ACLs as `SCHILY.acl.access`/`.default` in text, for `--acls`. A
        // name that is not UTF-8 cannot be a PAX key.
        let acl_texts: Vec<(String, Vec<u8>)> = n
            .xattrs
            .iter()
            .filter_map(|x| {
                let key = match x.name.as_slice() {
                    ACL_ACCESS => "SCHILY.acl.access",
                    ACL_DEFAULT => "SCHILY.acl.default",
                    _ => return None,
                };
                Some((key.to_string(), acl_to_text(&x.value)?.into_bytes()))
            })
            .collect();
        let xattrs: Vec<(String, &[u8])> = n
            .xattrs
            .iter()
            .filter(|x| !is_acl(&x.name))
            .filter_map(|x| {
                std::str::from_utf8(&x.name).ok().map(|name| (format!("SCHILY.xattr.{name}"), &x.value[..]))
            })
            .chain(acl_texts.iter().map(|(k, v)| (k.clone(), v.as_slice())))
            .collect();
        if matches!(n.kind, NodeKind::Dir | NodeKind::Symlink | NodeKind::File) && !xattrs.is_empty() {
            self.builder.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), *v))).map_err(unwrap_io)?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(n.mode & 0o7777);
        h.set_uid(u64::from(n.uid));
        h.set_gid(u64::from(n.gid));
        h.set_mtime(u64::try_from(n.mtime.secs).unwrap_or(0));
        match n.kind {
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                self.builder.append_data(&mut h, p, std::io::empty()).map_err(unwrap_io)
            }
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let target =
                    PathBuf::from(String::from_utf8_lossy(n.target.as_deref().unwrap_or_default()).into_owned());
                self.builder.append_link(&mut h, p, &target).map_err(unwrap_io)
            }
            NodeKind::File => {
                if let Some(first) = n.link.and_then(|l| self.links.get(&l)) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    return self.builder.append_link(&mut h, p, first).map_err(unwrap_io);
                }
                if let Some(l) = n.link {
                    self.links.insert(l, p.to_path_buf());
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(n.size);
                let reader = FileReader::new(self.repo, self.index, n)?;
                self.builder.append_data(&mut h, p, reader).map_err(unwrap_io)
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(match n.kind {
                    NodeKind::Fifo => tar::EntryType::Fifo,
                    NodeKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                h.set_size(0);
                if n.kind != NodeKind::Fifo {
                    let (major, minor) = (nix::sys::stat::major(n.rdev), nix::sys::stat::minor(n.rdev));
                    let field = |v: u64| {
                        u32::try_from(v).map_err(|_| {
                            Error::InvalidArgument(format!("{}: device number too large for tar", p.display()))
                        })
                    };
                    h.set_device_major(field(major)?).map_err(unwrap_io)?;
                    h.set_device_minor(field(minor)?).map_err(unwrap_io)?;
                }
                self.builder.append_data(&mut h, p, std::io::empty()).map_err(unwrap_io)
            }
            // Sockets are recorded but not restored (a socket is made by the program that
            // listens on it), and tar has no entry for them: left out, as GNU tar leaves them.
            NodeKind::Socket => Ok(()),
        }
    }
}
