//! Where backup data comes from: file system entries (their metadata as tree [`Node`]s) and
//! streams (stdin, or a command's stdout such as `pg_dump`).

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
    }
}

/// A dump coming in as a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamSource {
    /// This process's standard input.
    Stdin,
    /// A command's standard output; its failure fails the backup.
    Command(Vec<String>),
}

/// A running stream source: read it to the end, then call [`RunningStream::finish`].
pub enum RunningStream {
    /// Standard input.
    Stdin(std::io::Stdin),
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

impl StreamSource {
    /// Starts reading.
    ///
    /// # Errors
    /// [`Error::SourceCommand`] if the command cannot be started.
    pub fn start(&self) -> Result<RunningStream> {
        match self {
            StreamSource::Stdin => Ok(RunningStream::Stdin(std::io::stdin())),
            StreamSource::Command(argv) => {
                let line = argv.join(" ");
                let (program, args) = argv
                    .split_first()
                    .ok_or_else(|| Error::InvalidArgument("--stdin-from-command needs a command".into()))?;
                let mut child =
                    Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().map_err(
                        |e| Error::SourceCommand { command: line.clone(), status: format!("could not start: {e}") },
                    )?;
                let stdout = child
                    .stdout
                    .take()
                    .ok_or_else(|| Error::SourceCommand { command: line.clone(), status: "no stdout pipe".into() })?;
                Ok(RunningStream::Command { child, stdout, line })
            }
        }
    }
}

impl Read for RunningStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RunningStream::Stdin(s) => s.read(buf),
            RunningStream::Command { stdout, .. } => stdout.read(buf),
        }
    }
}

impl RunningStream {
    /// Waits for a command to exit and fails unless it succeeded.
    ///
    /// # Errors
    /// [`Error::SourceCommand`] naming the exit status or signal.
    pub fn finish(self) -> Result<()> {
        match self {
            RunningStream::Stdin(_) => Ok(()),
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
    pub fn abort(self) {
        if let RunningStream::Command { mut child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
