//! Reading a sparse file without reading its holes: [`SparseReader`] reads the data ranges
//! the file system reports (`SEEK_DATA`, `SEEK_HOLE`) and gives zeros for the holes between
//! them, so a 200 GiB disk image holding 4 KiB of data costs 4 KiB of reads, not 200 GiB.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use rustix::fs::{SeekFrom, seek};

/// Whether `file`, of `size` bytes, has a hole before its end by the file system's account (a
/// file system that does not track holes reports none). Asking moves the file's offset: it is
/// put back at the start, where a read of the whole file begins.
///
/// # Errors
/// As `lseek` reports, for the offset put back (a file that cannot seek has no holes).
pub fn has_holes(file: &File, size: u64) -> io::Result<bool> {
    let holes = matches!(seek(file, SeekFrom::Hole(0)), Ok(hole) if hole < size);
    seek(file, SeekFrom::Start(0))?;
    Ok(holes)
}

/// The largest read issued where the file system's answer about a range cannot be trusted (it
/// changed between two questions): the range is then read like any other.
const FALLBACK_READ: u64 = 1 << 20;

/// Reads a file from its start, its holes as zeros without reading them. Reads with
/// `pread`, so the file's offset is left to `lseek`.
#[derive(Debug)]
pub struct SparseReader<'f> {
    file: &'f File,
    pos: u64,
    /// The extent `pos` is in ends here: a hole if `in_hole`, data otherwise.
    end: u64,
    in_hole: bool,
    holes: u64,
}

impl<'f> SparseReader<'f> {
    /// A reader at the start of `file`.
    #[must_use]
    pub fn new(file: &'f File) -> Self {
        SparseReader { file, pos: 0, end: 0, in_hole: false, holes: 0 }
    }

    /// Bytes given as zeros for holes so far, none of them read.
    #[must_use]
    pub fn hole_bytes(&self) -> u64 {
        self.holes
    }

    /// Finds the extent at `pos`: data up to the next hole, or a hole up to the next data
    /// (the end of the file when no data follows).
    fn locate(&mut self) -> io::Result<()> {
        match seek(self.file, SeekFrom::Data(self.pos)) {
            Ok(data) if data > self.pos => {
                self.in_hole = true;
                self.end = data;
            }
            Ok(_) => {
                let hole = seek(self.file, SeekFrom::Hole(self.pos))?;
                self.in_hole = false;
                // A hole at the very offset data was just found at: the file changed between
                // the two questions; read a stretch and ask again after it.
                self.end = if hole > self.pos { hole } else { self.pos + FALLBACK_READ };
            }
            // No data at or after `pos`: a hole to the end of the file.
            Err(rustix::io::Errno::NXIO) => {
                self.in_hole = true;
                self.end = self.file.metadata()?.len();
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

impl Read for SparseReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.end {
            self.locate()?;
            if self.pos >= self.end {
                return Ok(0);
            }
        }
        let n = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX).min(buf.len());
        let n = if self.in_hole {
            buf[..n].fill(0);
            self.holes += n as u64;
            n
        } else {
            self.file.read_at(&mut buf[..n], self.pos)?
        };
        if n == 0 {
            // The file ends before the extent did: it shrank while it was read.
            self.end = self.pos;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, Write};

    use super::*;

    /// A file of `len` bytes with `data` written at each offset, the rest left as holes.
    fn sparse_file(len: u64, data: &[(u64, &[u8])]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.set_len(len).unwrap();
        for (at, bytes) in data {
            f.seek(io::SeekFrom::Start(*at)).unwrap();
            f.write_all(bytes).unwrap();
        }
        f.sync_all().unwrap();
        f
    }

    #[test]
    fn reads_the_same_bytes_as_a_plain_read_without_reading_the_holes() {
        let len = 64 << 20;
        let block = vec![7u8; 8192];
        let f = sparse_file(len, &[(0, b"head"), (20 << 20, &block), (len - 3, b"end")]);
        assert!(
            has_holes(&f, len).unwrap(),
            "the temporary directory's file system keeps holes (ext4, xfs and tmpfs do)"
        );
        let mut plain = Vec::new();
        (&f).seek(io::SeekFrom::Start(0)).unwrap();
        (&f).read_to_end(&mut plain).unwrap();
        let mut reader = SparseReader::new(&f);
        let mut sparse = Vec::new();
        // Small reads, so extents end inside buffers and buffers inside extents.
        let mut buf = vec![0u8; 100_003];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sparse.extend_from_slice(&buf[..n]);
        }
        assert!(sparse == plain, "the same bytes");
        // Only the blocks holding data were read (whole file-system blocks around each).
        assert!(reader.hole_bytes() >= len - (1 << 20), "{} bytes of holes", reader.hole_bytes());
        assert!(reader.hole_bytes() < len);
    }

    #[test]
    fn asking_leaves_the_offset_at_the_start() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[1u8; 10_000]).unwrap();
        assert!(!has_holes(&f, 10_000).unwrap());
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 10_000, "a read after asking starts at the start");
    }

    #[test]
    fn a_file_ending_in_a_hole_reads_to_its_size() {
        let len = 8 << 20;
        let f = sparse_file(len, &[(0, b"only the start")]);
        let mut out = Vec::new();
        SparseReader::new(&f).read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, len);
        assert_eq!(&out[..14], b"only the start");
        assert!(out[14..].iter().all(|&b| b == 0));
    }
}
