//! Incompressible media-like files: a photo library and a few videos.
//!
//! Each file starts with a plausible container header (JPEG/EXIF, MP4 `ftyp`) and continues
//! with random bytes, which is what compressed media looks like to a backup tool: nothing to
//! compress and, between distinct files, nothing to deduplicate. Sizes are drawn so that about
//! 60 % of the bytes are in videos (large single files) and the rest in photos of a few MiB.
//!
//! [`mutate`] is the next day: new photos imported, one deleted, and one video re-tagged (its
//! header rewritten in place, the rest unchanged).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::rng::Rng;

/// One file of the library.
#[derive(Debug, Clone)]
pub struct MediaFile {
    /// Path relative to the library root.
    pub path: PathBuf,
    /// Length in bytes.
    pub size: u64,
    /// Content seed.
    pub seed: u64,
}

/// The files of a library of about `bytes` bytes.
#[must_use]
pub fn plan(seed: u64, bytes: u64) -> Vec<MediaFile> {
    let mut rng = Rng::derive(seed, &[0x3ED1A]);
    let mut files = Vec::new();
    let video_bytes = bytes * 6 / 10;
    let mut total = 0;
    let mut n = 0;
    while total < video_bytes {
        let size = rng.log_uniform(16 << 20, 384 << 20).min(video_bytes - total).max(1 << 20);
        n += 1;
        files.push(MediaFile { path: format!("videos/VID_2025{n:04}.mp4").into(), size, seed: rng.next_u64() });
        total += size;
    }
    n = 0;
    while total < bytes {
        let size = rng.log_uniform(1 << 20, 12 << 20).min(bytes - total).max(1);
        n += 1;
        let album = n / 200;
        files.push(MediaFile { path: format!("photos/{album:03}/IMG_{n:05}.jpg").into(), size, seed: rng.next_u64() });
        total += size;
    }
    files
}

/// Writes one file's content.
///
/// # Errors
/// I/O errors, naming nothing (the caller knows the path).
pub fn write_file<W: Write>(file: &MediaFile, out: &mut W) -> io::Result<()> {
    let mut rng = Rng::new(file.seed);
    let mut header = Vec::with_capacity(4096);
    if file.path.extension().is_some_and(|e| e == "mp4") {
        header.extend_from_slice(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41");
        header.extend_from_slice(b"\x00\x00\x00\x08free");
    } else {
        header.extend_from_slice(b"\xFF\xD8\xFF\xE1\x10\x00Exif\x00\x00MM\x00\x2A\x00\x00\x00\x08");
        header.extend_from_slice(b"Canon\x00EOS R6\x00Ver.1.8.1\x002025:06:01 12:00:00\x00");
    }
    let mut written = 0u64;
    let head = (header.len() as u64).min(file.size) as usize;
    out.write_all(&header[..head])?;
    written += head as u64;
    let mut buf = vec![0u8; 1 << 20];
    while written < file.size {
        let n = (file.size - written).min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        written += n as u64;
    }
    Ok(())
}

/// Writes the library under `root`.
///
/// # Errors
/// I/O errors with the path.
pub fn generate(root: &Path, seed: u64, bytes: u64) -> anyhow::Result<Vec<MediaFile>> {
    let files = plan(seed, bytes);
    files.par_iter().try_for_each(|f| write_at(root, f))?;
    Ok(files)
}

fn write_at(root: &Path, f: &MediaFile) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = root.join(&f.path);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut out = io::BufWriter::with_capacity(
        1 << 20,
        fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    write_file(f, &mut out).and_then(|()| out.flush()).with_context(|| format!("writing {}", path.display()))
}

/// The next version of the library written by [`generate`]: about 3 % new photos, one photo
/// deleted and the first 64 KiB of one video rewritten in place. Returns the new file list.
///
/// # Errors
/// I/O errors with the path.
pub fn mutate(root: &Path, seed: u64, bytes: u64) -> anyhow::Result<Vec<MediaFile>> {
    use anyhow::Context;
    let mut files = plan(seed, bytes);
    let mut rng = Rng::derive(seed, &[0x3ED1A, 1]);
    let photos: Vec<usize> = (0..files.len()).filter(|&i| files[i].path.starts_with("photos")).collect();
    if let Some(&gone) = photos.get(rng.below(photos.len() as u64) as usize) {
        let f = files.remove(gone);
        fs::remove_file(root.join(&f.path)).with_context(|| format!("removing {}", f.path.display()))?;
    }
    if let Some(video) = files.iter().find(|f| f.path.starts_with("videos")) {
        use std::io::{Seek, SeekFrom};
        let path = root.join(&video.path);
        let mut file =
            fs::OpenOptions::new().write(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut patch = vec![0u8; (64 << 10).min(video.size as usize)];
        rng.fill(&mut patch);
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&patch).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut added = 0;
    let target = bytes * 3 / 100;
    let mut n = 0;
    while added < target.max(1) {
        n += 1;
        let size = rng.log_uniform(1 << 20, 12 << 20).min(target.max(1) - added).max(1);
        let f = MediaFile { path: format!("photos/new/IMG_N{n:04}.jpg").into(), size, seed: rng.next_u64() };
        write_at(root, &f)?;
        added += size;
        files.push(f);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_adds_up_and_is_incompressible() {
        let files = plan(5, 100 << 20);
        assert_eq!(files.iter().map(|f| f.size).sum::<u64>(), 100 << 20);
        assert!(files.iter().any(|f| f.path.starts_with("videos")));
        let mut out = Vec::new();
        write_file(&files[0], &mut out).unwrap();
        assert_eq!(out.len() as u64, files[0].size);
        let sample = &out[..1 << 20];
        let z = zstd_len(sample);
        assert!(z > sample.len() * 99 / 100, "{z}");
    }

    fn zstd_len(data: &[u8]) -> usize {
        cairn_core::advanced::compress::compress(data, 3).map_or(data.len(), |c| c.len())
    }
}
