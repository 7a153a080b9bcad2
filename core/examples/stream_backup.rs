//! Back up a byte stream the program makes itself, and get it back.
//!
//! A database operator or a service that already holds its data as a stream (a dump it
//! generates, a pipe from another process) backs it up without writing it to a file first:
//! any `Read + Send` is a source. Here the stream is a generated SQL dump; the repository is a
//! new local one in a temporary directory; the restore writes into a `Vec<u8>`.
//!
//! ```sh
//! cargo run -p cairn-core --example stream_backup
//! ```

use std::io::Read;

use cairn_core::backup::{self, BackupOptions, BackupSource};
use cairn_core::{InitOptions, NoProgress, Repository, restore};

/// A SQL dump of `rows` rows, generated as it is read (never whole in memory).
struct GeneratedDump {
    rows: u64,
    next: u64,
    line: Vec<u8>,
    pos: usize,
}

impl Read for GeneratedDump {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.line.len() {
            if self.next == self.rows {
                return Ok(0);
            }
            self.line = format!(
                "INSERT INTO orders VALUES ({0}, 'customer-{1}', {2});\n",
                self.next,
                self.next % 97,
                self.next * 31 % 10_007
            )
            .into_bytes();
            self.pos = 0;
            self.next += 1;
        }
        let n = out.len().min(self.line.len() - self.pos);
        out[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn dump(rows: u64) -> GeneratedDump {
    GeneratedDump { rows, next: 0, line: Vec::new(), pos: 0 }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = dir.path().join("repo").to_string_lossy().into_owned();
    let password = b"correct horse battery staple";

    let repo = Repository::init_url(&url, password, &InitOptions::default())?;
    let rows = 200_000;
    let done =
        backup::run(&repo, BackupSource::reader("orders.sql", dump(rows)), &BackupOptions::default(), &NoProgress)?;
    println!(
        "snapshot {}: {} bytes read, {} new blobs, {} bytes stored",
        done.snapshot.short(),
        done.summary.bytes_read,
        done.summary.blobs_new,
        done.summary.bytes_stored
    );

    // Later, perhaps in another process: open the repository and take the dump back.
    let repo = Repository::open_url(&url, password)?;
    let snapshot = repo.load_snapshot(done.snapshot)?;
    let mut restored = Vec::new();
    restore::file(&repo, &snapshot, "/orders.sql".as_ref(), &mut restored)?;

    let mut original = Vec::new();
    dump(rows).read_to_end(&mut original)?;
    assert_eq!(restored, original, "the restored dump differs from the one backed up");
    println!("restored {} bytes of /orders.sql, identical to the dump", restored.len());
    Ok(())
}
