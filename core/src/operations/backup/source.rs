//! Where backup data comes from: file system entries (their metadata as tree [`Node`]s) and
//! streams (any reader, stdin, or a command's stdout such as `pg_dump`).

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::format::tree::{Node, NodeKind, Time};
use crate::foundation::error::{Error, Result};

/// The node for a file system entry, with metadata from `lstat`. Content, hash and subtree are
/// filled in by the backup.
#[must_use]
pub fn node_from_metadata(name: Vec<u8>, meta: &Metadata) -> Node {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::File
    };
    let time = |secs: i64, nanos: i64| Time { secs, nanos: u32::try_from(nanos).unwrap_or(0) };
    Node {
        name,
        kind,
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        // Access times are not recorded: reading a file changes its atime, so recording it
        // would make every backup store every directory's tree again. Restore sets atime to
        // the mtime.
        atime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        dev: meta.dev(),
        nlink: meta.nlink(),
        size: if kind == NodeKind::File { meta.len() } else { 0 },
        rdev: if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) { meta.rdev() } else { 0 },
        content: Vec::new(),
        hash: None,
        subtree: None,
        target: None,
        link: None,
        xattrs: vec![],
        flags: 0,
        subdirs: Vec::new(),
    }
}

/// What a backup saves.
#[non_exhaustive]
pub enum BackupSource<'a> {
    /// Files and directories, each saved at its absolute path.
    Paths(Vec<PathBuf>),
    /// A byte stream saved as the one file `/name` of the snapshot: a dump the program makes
    /// itself, a pipe, standard input. Read to its end; an error reading it fails the backup.
    Reader {
        /// The file's name in the snapshot (a plain name, no `/`).
        name: String,
        /// The bytes.
        reader: Box<dyn Read + Send + 'a>,
    },
    /// A command's standard output saved as the one file `/name` (e.g. `pg_dump`): no snapshot
    /// is written unless the command exits with success.
    Command {
        /// The file's name in the snapshot (a plain name, no `/`).
        name: String,
        /// The program and its arguments.
        argv: Vec<String>,
    },
}

impl<'a> BackupSource<'a> {
    /// Files and directories.
    pub fn paths<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        BackupSource::Paths(paths.into_iter().map(Into::into).collect())
    }

    /// Any byte stream, saved as the file `name`.
    pub fn reader(name: impl Into<String>, reader: impl Read + Send + 'a) -> Self {
        BackupSource::Reader { name: name.into(), reader: Box::new(reader) }
    }

    /// This process's standard input, saved as the file `name`.
    pub fn stdin(name: impl Into<String>) -> Self {
        Self::reader(name, std::io::stdin())
    }

    /// A command's standard output, saved as the file `name`.
    pub fn command(name: impl Into<String>, argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        BackupSource::Command { name: name.into(), argv: argv.into_iter().map(Into::into).collect() }
    }
}

impl std::fmt::Debug for BackupSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupSource::Paths(p) => f.debug_tuple("Paths").field(p).finish(),
            BackupSource::Reader { name, .. } => f.debug_struct("Reader").field("name", name).finish_non_exhaustive(),
            BackupSource::Command { name, argv } => {
                f.debug_struct("Command").field("name", name).field("argv", argv).finish()
            }
        }
    }
}

/// A stream being read: read it to the end, then call [`RunningStream::finish`].
pub(crate) enum RunningStream<'a> {
    /// A reader the caller gave.
    Reader(Box<dyn Read + Send + 'a>),
    /// A child process.
    Command {
        /// The process.
        child: Child,
        /// Its stdout.
        stdout: ChildStdout,
        /// For messages.
        line: String,
    },
}

impl RunningStream<'_> {
    /// Starts the command `argv`.
    ///
    /// # Errors
    /// [`Error::SourceCommand`] if the command cannot be started.
    pub(crate) fn start(argv: &[String]) -> Result<Self> {
        let line = argv.join(" ");
        let (program, args) =
            argv.split_first().ok_or_else(|| Error::InvalidArgument("a command source needs a command".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::SourceCommand { command: line.clone(), status: format!("could not start: {e}") })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::SourceCommand { command: line.clone(), status: "no stdout pipe".into() })?;
        Ok(RunningStream::Command { child, stdout, line })
    }
}

impl Read for RunningStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RunningStream::Reader(r) => r.read(buf),
            RunningStream::Command { stdout, .. } => stdout.read(buf),
        }
    }
}

impl RunningStream<'_> {
    /// Waits for a command to exit and fails unless it succeeded.
    ///
    /// # Errors
    /// [`Error::SourceCommand`] naming the exit status or signal.
    pub(crate) fn finish(self) -> Result<()> {
        match self {
            RunningStream::Reader(_) => Ok(()),
            RunningStream::Command { mut child, stdout, line } => {
                drop(stdout);
                let status =
                    child.wait().map_err(|e| Error::SourceCommand { command: line.clone(), status: e.to_string() })?;
                if status.success() {
                    Ok(())
                } else {
                    Err(Error::SourceCommand { command: line, status: status.to_string() })
                }
            }
        }
    }

    /// Stops a command early (after an error elsewhere).
    pub(crate) fn abort(self) {
        if let RunningStream::Command { mut child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
