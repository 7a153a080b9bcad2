//! A base backup as a stream: `pg_basebackup`'s tar output read once, backed up as it goes,
//! and watched for what the snapshot must record (where it starts and stops in the WAL).

use std::io::Read;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, OnceLock};

use crate::format::snapshot::BaseBackup;
use crate::foundation::error::{Error, Result};

use super::lsn::{parse_lsn, segment_size_from};

/// Bytes of a tar header block.
const BLOCK: usize = 512;
/// The most of `backup_label` kept (it is a few hundred bytes).
const LABEL_MAX: usize = 64 << 10;
/// The end of `backup_manifest` kept: its WAL ranges are last.
const MANIFEST_TAIL: usize = 16 << 10;

/// Which member of the archive is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Label,
    Manifest,
    Control,
    Other,
}

/// Follows a tar stream's headers as its bytes go by, keeping the members a base backup is
/// described by: `backup_label`, the end of `backup_manifest` and the start of
/// `global/pg_control`. Holds a few kilobytes whatever the size of the stream.
#[derive(Debug, Default)]
pub struct TarWatch {
    header: Vec<u8>,
    /// Bytes of the current member's data still to come.
    remaining: u64,
    /// Padding after it.
    padding: u64,
    member: Option<Member>,
    pub(crate) label: Vec<u8>,
    pub(crate) manifest_tail: Vec<u8>,
    pub(crate) control: Vec<u8>,
}

impl TarWatch {
    /// Takes the next bytes of the stream, cut anywhere.
    pub fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if let Some(member) = self.member {
                if self.remaining > 0 {
                    let n = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
                    self.keep(member, &buf[..n]);
                    self.remaining -= n as u64;
                    buf = &buf[n..];
                    continue;
                }
                let n = usize::try_from(self.padding).unwrap_or(usize::MAX).min(buf.len());
                self.padding -= n as u64;
                buf = &buf[n..];
                if self.padding == 0 {
                    self.member = None;
                }
                continue;
            }
            let n = (BLOCK - self.header.len()).min(buf.len());
            self.header.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            if self.header.len() == BLOCK {
                self.start_member();
                self.header.clear();
            }
        }
    }

    fn start_member(&mut self) {
        if self.header.iter().all(|&b| b == 0) {
            return;
        }
        // The tar crate reads the header (octal or base-256 sizes, the ustar name prefix); a
        // header it cannot read is taken for an empty member of no interest.
        let header = tar::Header::from_byte_slice(&self.header);
        let size = header.entry_size().unwrap_or(0);
        let member = match header.path() {
            Ok(path) if header.entry_type() == tar::EntryType::Regular => match path.to_str() {
                Some("backup_label") => Member::Label,
                Some("backup_manifest") => Member::Manifest,
                Some("global/pg_control") => Member::Control,
                _ => Member::Other,
            },
            _ => Member::Other,
        };
        if member == Member::Manifest {
            self.manifest_tail.clear();
        }
        self.remaining = size;
        self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.member = (size > 0).then_some(member);
    }

    fn keep(&mut self, member: Member, data: &[u8]) {
        match member {
            Member::Label => {
                let room = LABEL_MAX.saturating_sub(self.label.len());
                self.label.extend_from_slice(&data[..room.min(data.len())]);
            }
            Member::Manifest => {
                self.manifest_tail.extend_from_slice(data);
                if self.manifest_tail.len() > 2 * MANIFEST_TAIL {
                    self.manifest_tail.drain(..self.manifest_tail.len() - MANIFEST_TAIL);
                }
            }
            Member::Control => {
                let room = 64usize.saturating_sub(self.control.len());
                self.control.extend_from_slice(&data[..room.min(data.len())]);
            }
            Member::Other => {}
        }
    }

    /// What the members seen say, or what is missing.
    ///
    /// # Errors
    /// A message naming the member missing or unreadable.
    pub fn describe(
        &self,
        cluster: &str,
        start_time: jiff::Timestamp,
        stop_time: jiff::Timestamp,
    ) -> Result<BaseBackup, String> {
        let label = String::from_utf8_lossy(&self.label);
        if label.is_empty() {
            return Err("the stream has no backup_label: is it pg_basebackup's tar output?".into());
        }
        let field = |name: &str| {
            label.lines().find_map(|l| l.strip_prefix(name).map(str::trim)).ok_or(format!("backup_label has no {name}"))
        };
        // START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
        let start = field("START WAL LOCATION:")?;
        let (lsn, file) = start.split_once(" (file ").ok_or(format!("backup_label: cannot read `{start}`"))?;
        let start_lsn = parse_lsn(lsn).ok_or(format!("backup_label: `{lsn}` is not a WAL position"))?;
        let file = crate::format::wal::WalName::parse(file.trim_end_matches(')')).map_err(|e| e.to_string())?;
        let segment_size = segment_size_from(start_lsn, &file)
            .ok_or(format!("backup_label: WAL position {lsn} does not fit file {file} at any segment size"))?;
        let timeline =
            field("START TIMELINE:")?.parse::<u32>().map_err(|e| format!("backup_label START TIMELINE: {e}"))?;
        let manifest = String::from_utf8_lossy(&self.manifest_tail);
        let (stop_timeline, stop_lsn) = last_wal_range(&manifest)
            .ok_or("the stream has no backup_manifest with WAL-Ranges (do not pass --no-manifest to pg_basebackup)")?;
        if self.control.len() < 8 {
            return Err("the stream has no global/pg_control".into());
        }
        let mut sysid = [0u8; 8];
        sysid.copy_from_slice(&self.control[..8]);
        Ok(BaseBackup {
            cluster: cluster.to_string(),
            system_identifier: u64::from_ne_bytes(sysid).to_string(),
            timeline,
            start_lsn,
            stop_lsn,
            stop_timeline,
            segment_size,
            start_time,
            stop_time,
        })
    }
}

/// The timeline and end of the last range in a manifest's `WAL-Ranges`.
fn last_wal_range(manifest: &str) -> Option<(u32, u64)> {
    let at = manifest.rfind("\"End-LSN\"")?;
    let value = manifest[at + "\"End-LSN\"".len()..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let lsn = parse_lsn(&value[..value.find('"')?])?;
    let before = &manifest[..at];
    let t = before.rfind("\"Timeline\"")?;
    let tli: String = before[t + "\"Timeline\"".len()..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((tli.parse().ok()?, lsn))
}

/// `pg_basebackup`'s standard output, read by a backup: at its end the process must have
/// succeeded and the stream must have described itself, or the read fails and no snapshot is
/// written.
pub struct BaseBackupStream {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<std::thread::JoinHandle<String>>,
    watch: TarWatch,
    cell: Arc<OnceLock<BaseBackup>>,
    cluster: String,
    started: jiff::Timestamp,
    finished: bool,
    line: String,
}

impl BaseBackupStream {
    /// Starts `pg_basebackup` (the program `program`, with `args` added after the ones that
    /// make it write one tar stream to standard output and leave the WAL to the archive). What
    /// it records goes into `cell` when the stream ends.
    ///
    /// # Errors
    /// [`Error::SourceCommand`] if it cannot be started.
    pub fn start(
        program: &std::path::Path,
        args: &[String],
        cluster: &str,
        cell: Arc<OnceLock<BaseBackup>>,
    ) -> Result<Self> {
        let mut command = Command::new(program);
        command
            .args(["--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast"])
            .args(args)
            .env("LC_MESSAGES", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = format!(
            "{} {}",
            program.display(),
            command.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
        );
        let mut child = command
            .spawn()
            .map_err(|e| Error::SourceCommand { command: line.clone(), status: format!("could not start: {e}") })?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            return Err(Error::Internal("pg_basebackup's pipes were not set up".into()));
        };
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(BaseBackupStream {
            child,
            stdout,
            stderr: Some(stderr),
            watch: TarWatch::default(),
            cell,
            cluster: cluster.to_string(),
            started: jiff::Timestamp::now(),
            finished: false,
            line,
        })
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.finished = true;
        let status = self.child.wait()?;
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if !status.success() {
            let said = stderr.trim();
            return Err(std::io::Error::other(format!(
                "`{}` failed ({status}){}{said}",
                self.line,
                if said.is_empty() { "" } else { ": " }
            )));
        }
        let described = self
            .watch
            .describe(&self.cluster, self.started, jiff::Timestamp::now())
            .map_err(|e| std::io::Error::other(format!("`{}`: {e}", self.line)))?;
        let _ = self.cell.set(described);
        Ok(())
    }
}

impl Read for BaseBackupStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 {
            self.finish()?;
            return Ok(0);
        }
        self.watch.feed(&buf[..n]);
        Ok(n)
    }
}

impl Drop for BaseBackupStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            builder.append_data(&mut header, name, data.as_slice()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn the_label_manifest_and_control_file_are_read_from_the_stream_in_any_pieces() {
        let label = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n".to_vec();
        let mut control = 7_337_000_000_000_000_001u64.to_ne_bytes().to_vec();
        control.resize(8192, 0);
        let big = vec![7u8; 100_000];
        let manifest = br#"{ "PostgreSQL-Backup-Manifest-Version": 1,
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
"Manifest-Checksum": "00"}"#
            .to_vec();
        let stream = tar_of(&[
            ("backup_label", label),
            ("base/1/1234", big),
            ("global/pg_control", control),
            ("backup_manifest", manifest),
        ]);
        for piece in [1, 7, 511, 512, 4096, stream.len()] {
            let mut watch = TarWatch::default();
            for chunk in stream.chunks(piece) {
                watch.feed(chunk);
            }
            let t = jiff::Timestamp::UNIX_EPOCH;
            let b = watch.describe("main", t, t).unwrap();
            assert_eq!((b.timeline, b.start_lsn, b.stop_lsn, b.stop_timeline), (1, 0x2000028, 0x2000100, 1));
            assert_eq!(b.segment_size, 16 << 20);
            assert_eq!(b.system_identifier, "7337000000000000001");
        }
    }

    #[test]
    fn a_stream_without_a_label_or_manifest_is_named_as_such() {
        let t = jiff::Timestamp::UNIX_EPOCH;
        let mut watch = TarWatch::default();
        watch.feed(&tar_of(&[("x", b"y".to_vec())]));
        assert!(watch.describe("main", t, t).unwrap_err().contains("backup_label"));
        let mut watch = TarWatch::default();
        watch.feed(&tar_of(&[(
            "backup_label",
            b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n".to_vec(),
        )]));
        assert!(watch.describe("main", t, t).unwrap_err().contains("manifest"));
    }
}
