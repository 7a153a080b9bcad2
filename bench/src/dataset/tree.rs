//! A file tree of many small and medium files, like a home directory or a project server, and
//! its mutated next version.
//!
//! Sizes are log-uniform within four classes (60 % under 8 KiB, 35 % up to 128 KiB, 4.6 % up to
//! 2 MiB and 0.4 % up to 16 MiB), scaled so the tree has the requested total. Small files are
//! mostly text (source code, prose, JSON, logs), large ones mostly binary: random (already
//! compressed archives and images) or mixed (executables and databases: structured records,
//! zero runs, embedded strings). About 2 % of files are copies of other files, as vendored
//! libraries and duplicated downloads are. Directories nest up to six deep with 10–40 entries.
//!
//! [`mutate`] makes the second version: about 3 % of files changed (text appended or edited in
//! the middle, binary regions overwritten in place), 1 % deleted, 2 % added (some in a new
//! directory).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;

use crate::rng::Rng;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Program source text.
    Source,
    /// Paragraphs of words.
    Prose,
    /// JSON records.
    Json,
    /// Timestamped log lines.
    Log,
    /// Random bytes (compressed archives, images).
    Random,
    /// Records, zero runs and strings (executables, databases).
    Mixed,
}

impl Kind {
    fn extension(self, rng: &mut Rng) -> &'static str {
        let choices: &[&'static str] = match self {
            Kind::Source => &["rs", "py", "js", "c", "go", "java", "ts", "h"],
            Kind::Prose => &["md", "txt", "rst", "tex"],
            Kind::Json => &["json", "json", "yaml"],
            Kind::Log => &["log", "csv"],
            Kind::Random => &["jpg", "png", "zip", "gz", "pdf", "webp"],
            Kind::Mixed => &["bin", "so", "o", "db", "exe", "class"],
        };
        choices[rng.below(choices.len() as u64) as usize]
    }
}

/// One file of the tree.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Path relative to the tree root.
    pub path: PathBuf,
    /// Length in bytes.
    pub size: u64,
    /// Content kind.
    pub kind: Kind,
    /// Content seed (shared by duplicates).
    pub seed: u64,
}

const DIR_WORDS: &[&str] = &[
    "src", "lib", "docs", "assets", "data", "build", "config", "scripts", "tests", "vendor", "images", "reports",
    "archive", "2023", "2024", "2025", "projects", "invoices", "notes", "backup", "music", "exports", "logs", "tmp",
    "shared", "clients", "drafts", "final", "old", "raw", "web", "api", "core", "utils", "models", "views",
];
const FILE_WORDS: &[&str] = &[
    "main",
    "index",
    "util",
    "report",
    "config",
    "readme",
    "notes",
    "data",
    "invoice",
    "summary",
    "test",
    "handler",
    "server",
    "client",
    "model",
    "view",
    "schema",
    "export",
    "import",
    "draft",
    "photo",
    "scan",
    "budget",
    "plan",
    "meeting",
    "todo",
    "release",
    "changelog",
    "license",
    "setup",
    "parser",
    "lexer",
    "cache",
    "queue",
    "worker",
];

/// The files of a tree of about `files` files and `bytes` bytes.
#[must_use]
pub fn plan(seed: u64, files: usize, bytes: u64) -> Vec<FileSpec> {
    let mut rng = Rng::derive(seed, &[0x72EE]);
    let dirs = directories(&mut rng, files);
    let mut specs: Vec<FileSpec> = Vec::with_capacity(files);
    for i in 0..files {
        if i > 10 && rng.chance(0.02) {
            // A duplicate of an earlier file, elsewhere.
            let orig = specs[rng.below(specs.len() as u64) as usize].clone();
            let dir = rng.pick(&dirs);
            let name = orig.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            specs.push(FileSpec { path: dir.join(format!("copy{i}_{name}")), ..orig });
            continue;
        }
        let class = rng.unit();
        let size = if class < 0.60 {
            rng.log_uniform(64, 8 << 10)
        } else if class < 0.95 {
            rng.log_uniform(8 << 10, 128 << 10)
        } else if class < 0.996 {
            rng.log_uniform(128 << 10, 2 << 20)
        } else {
            rng.log_uniform(2 << 20, 16 << 20)
        };
        let k = rng.unit();
        let kind = if size < 64 << 10 {
            match k {
                k if k < 0.40 => Kind::Source,
                k if k < 0.55 => Kind::Prose,
                k if k < 0.70 => Kind::Json,
                k if k < 0.80 => Kind::Log,
                k if k < 0.90 => Kind::Random,
                _ => Kind::Mixed,
            }
        } else {
            match k {
                k if k < 0.45 => Kind::Random,
                k if k < 0.70 => Kind::Mixed,
                k if k < 0.85 => Kind::Log,
                k if k < 0.90 => Kind::Json,
                k if k < 0.95 => Kind::Source,
                _ => Kind::Prose,
            }
        };
        let dir = rng.pick(&dirs);
        let ext = kind.extension(&mut rng);
        let name = format!("{}_{i}.{ext}", rng.pick(FILE_WORDS));
        specs.push(FileSpec { path: dir.join(name), size, kind, seed: rng.next_u64() });
    }
    // Scale to the requested total, keeping the shape of the distribution.
    let total: u64 = specs.iter().map(|s| s.size).sum();
    let factor = bytes as f64 / total.max(1) as f64;
    for s in &mut specs {
        s.size = ((s.size as f64 * factor) as u64).max(1);
    }
    // Duplicates keep their original's size after scaling too.
    specs
}

fn directories(rng: &mut Rng, files: usize) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::new()];
    let mut depth = vec![0u32];
    let want = (files / 20).max(1);
    while dirs.len() < want {
        let parent = rng.below(dirs.len() as u64) as usize;
        if depth[parent] >= 6 {
            continue;
        }
        let name = format!(
            "{}{}",
            rng.pick(DIR_WORDS),
            if rng.chance(0.5) { format!("-{}", dirs.len()) } else { String::new() }
        );
        let path = dirs[parent].join(name);
        if dirs.contains(&path) {
            continue;
        }
        dirs.push(path);
        depth.push(depth[parent] + 1);
    }
    dirs
}

/// Appends `size` bytes of `kind` content from `seed` to `out`.
pub fn content(kind: Kind, seed: u64, size: u64, out: &mut Vec<u8>) {
    let mut rng = Rng::new(seed);
    let end = out.len() + size as usize;
    out.reserve(size as usize);
    while out.len() < end {
        match kind {
            Kind::Source => source_block(&mut rng, out),
            Kind::Prose => prose_block(&mut rng, out),
            Kind::Json => json_block(&mut rng, out),
            Kind::Log => log_block(&mut rng, out),
            Kind::Random => {
                let start = out.len();
                out.resize(end, 0);
                rng.fill(&mut out[start..]);
            }
            Kind::Mixed => mixed_block(&mut rng, out),
        }
    }
    out.truncate(end);
}

const IDENTS: &[&str] = &[
    "buffer", "count", "index", "result", "value", "config", "request", "response", "handler", "state", "items",
    "offset", "length", "error", "context", "options", "parser", "token", "node", "entry", "key", "path", "reader",
    "writer", "stream", "chunk", "hash", "cache", "queue", "worker", "session", "client", "server", "table", "row",
];
const KEYWORDS: &[&str] = &[
    "let", "const", "if", "else", "for", "while", "return", "fn", "def", "function", "match", "struct", "impl", "pub",
    "static", "import", "from", "class", "self", "this", "new", "await", "async", "try", "catch",
];

fn source_block(rng: &mut Rng, out: &mut Vec<u8>) {
    let depth = rng.below(4) as usize;
    out.extend(std::iter::repeat_n(b' ', depth * 4));
    match rng.below(6) {
        0 => {
            out.extend_from_slice(b"// ");
            for _ in 0..rng.range(3, 10) {
                out.extend_from_slice(rng.pick(crate::dataset::sql_words()).as_bytes());
                out.push(b' ');
            }
        }
        1 => {
            out.extend_from_slice(rng.pick(KEYWORDS).as_bytes());
            out.push(b' ');
            out.extend_from_slice(rng.pick(IDENTS).as_bytes());
            out.extend_from_slice(b"_");
            out.extend_from_slice(rng.pick(IDENTS).as_bytes());
            out.extend_from_slice(b"(");
            out.extend_from_slice(rng.pick(IDENTS).as_bytes());
            out.extend_from_slice(b") {");
        }
        2 => out.push(b'}'),
        _ => {
            out.extend_from_slice(rng.pick(KEYWORDS).as_bytes());
            out.push(b' ');
            out.extend_from_slice(rng.pick(IDENTS).as_bytes());
            out.extend_from_slice(b" = ");
            out.extend_from_slice(rng.pick(IDENTS).as_bytes());
            out.push(b'.');
            out.extend_from_slice(rng.pick(IDENTS).as_bytes());
            out.extend_from_slice(b"(");
            out.extend_from_slice(rng.below(100_000).to_string().as_bytes());
            out.extend_from_slice(b");");
        }
    }
    out.push(b'\n');
}

fn prose_block(rng: &mut Rng, out: &mut Vec<u8>) {
    for i in 0..rng.range(5, 25) {
        let w = rng.pick(crate::dataset::sql_words()).as_bytes();
        if i == 0 {
            out.push(w[0].to_ascii_uppercase());
            out.extend_from_slice(&w[1..]);
        } else {
            out.push(b' ');
            out.extend_from_slice(w);
        }
    }
    out.extend_from_slice(if rng.chance(0.2) { b".\n\n" } else { b". " });
}

fn json_block(rng: &mut Rng, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\": ");
    out.extend_from_slice(rng.below(10_000_000).to_string().as_bytes());
    for _ in 0..rng.range(2, 6) {
        out.extend_from_slice(b", \"");
        out.extend_from_slice(rng.pick(IDENTS).as_bytes());
        out.extend_from_slice(b"\": ");
        match rng.below(3) {
            0 => out.extend_from_slice(rng.below(1_000_000).to_string().as_bytes()),
            1 => {
                out.push(b'"');
                out.extend_from_slice(rng.pick(crate::dataset::sql_words()).as_bytes());
                out.push(b'"');
            }
            _ => out.extend_from_slice(if rng.chance(0.5) { b"true" } else { b"null" }),
        }
    }
    out.extend_from_slice(b"},\n");
}

fn log_block(rng: &mut Rng, out: &mut Vec<u8>) {
    let t = 1_748_736_000 + rng.below(86_400 * 30);
    out.extend_from_slice(
        format!(
            "2025-06-{:02}T{:02}:{:02}:{:02}.{:03}Z ",
            1 + t / 86_400 % 30,
            t / 3600 % 24,
            t / 60 % 60,
            t % 60,
            rng.below(1000)
        )
        .as_bytes(),
    );
    out.extend_from_slice(rng.pick(&["INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"]).as_bytes());
    out.extend_from_slice(format!(" [worker-{}] ", rng.below(16)).as_bytes());
    out.extend_from_slice(rng.pick(&["GET", "POST", "PUT", "DELETE"]).as_bytes());
    out.extend_from_slice(
        format!(
            " /api/v{}/{}/{} status={} dur={}ms req={:016x}\n",
            rng.range(1, 3),
            rng.pick(IDENTS),
            rng.below(100_000),
            rng.pick(&[200, 200, 200, 201, 204, 304, 404, 500]),
            rng.log_uniform(1, 5000),
            rng.next_u64()
        )
        .as_bytes(),
    );
}

fn mixed_block(rng: &mut Rng, out: &mut Vec<u8>) {
    let start = out.len();
    match rng.below(4) {
        0 => {
            out.resize(start + 4096, 0);
            rng.fill(&mut out[start..]);
        }
        1 => out.resize(start + rng.range(256, 4096) as usize, 0),
        2 => {
            // Fixed-size records with a counter and a few varying fields.
            let base = rng.next_u64();
            for i in 0..64u64 {
                out.extend_from_slice(&(base + i).to_le_bytes());
                out.extend_from_slice(&(rng.below(1000) as u32).to_le_bytes());
                out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0x7f]);
                out.extend_from_slice(&(rng.next_u64() & 0xFFFF).to_le_bytes());
            }
        }
        _ => {
            for _ in 0..rng.range(8, 40) {
                out.extend_from_slice(rng.pick(IDENTS).as_bytes());
                out.push(b'_');
                out.extend_from_slice(rng.pick(KEYWORDS).as_bytes());
                out.push(0);
            }
        }
    }
}

fn write_spec(root: &Path, spec: &FileSpec) -> anyhow::Result<()> {
    let path = root.join(&spec.path);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut buf = Vec::new();
    content(spec.kind, spec.seed, spec.size, &mut buf);
    fs::write(&path, &buf).with_context(|| format!("writing {}", path.display()))
}

/// Writes the tree under `root`.
///
/// # Errors
/// I/O errors with the path.
pub fn generate(root: &Path, seed: u64, files: usize, bytes: u64) -> anyhow::Result<Vec<FileSpec>> {
    let specs = plan(seed, files, bytes);
    specs.par_iter().try_for_each(|s| write_spec(root, s))?;
    Ok(specs)
}

/// What [`mutate`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mutation {
    /// Files changed in place or appended to.
    pub changed: usize,
    /// Files deleted.
    pub removed: usize,
    /// Files added.
    pub added: usize,
    /// Bytes written (changed regions and new files).
    pub bytes_written: u64,
}

/// Turns the tree written by [`generate`] with the same arguments into its second version.
///
/// # Errors
/// I/O errors with the path.
pub fn mutate(root: &Path, seed: u64, files: usize, bytes: u64) -> anyhow::Result<Mutation> {
    let specs = plan(seed, files, bytes);
    let mut rng = Rng::derive(seed, &[0x72EE, 2]);
    let mut m = Mutation::default();
    let mut seen = std::collections::HashSet::new();
    for spec in &specs {
        if !seen.insert(spec.path.clone()) {
            continue;
        }
        let path = root.join(&spec.path);
        let roll = rng.unit();
        if roll < 0.01 {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            m.removed += 1;
        } else if roll < 0.04 {
            let mut data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let len = data.len();
            match spec.kind {
                Kind::Random | Kind::Mixed => {
                    // Overwrite a region in place (an edited image, a database page).
                    let n = (rng.range(512, 64 << 10) as usize).min(len);
                    let at = rng.below((len - n + 1) as u64) as usize;
                    rng.fill(&mut data[at..at + n]);
                    m.bytes_written += n as u64;
                }
                Kind::Log => {
                    let before = data.len();
                    content(Kind::Log, rng.next_u64(), (len as u64 / 20).max(200), &mut data);
                    m.bytes_written += (data.len() - before) as u64;
                }
                _ => {
                    // Edit in the middle: replace a few lines.
                    let at = rng.below(len as u64 + 1) as usize;
                    let cut = (rng.range(10, 400) as usize).min(len - at);
                    let mut insert = Vec::new();
                    content(spec.kind, rng.next_u64(), rng.range(10, 600), &mut insert);
                    m.bytes_written += insert.len() as u64;
                    data.splice(at..at + cut, insert);
                }
            }
            fs::write(&path, &data).with_context(|| format!("writing {}", path.display()))?;
            m.changed += 1;
        }
    }
    // New files: most next to existing ones, some in a new directory.
    let adds = (files / 50).max(1);
    let avg = bytes / files.max(1) as u64;
    for i in 0..adds {
        let dir = if i % 3 == 0 {
            PathBuf::from("new-project").join(format!("part{}", i % 7))
        } else {
            specs[rng.below(specs.len() as u64) as usize].path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let kind = *rng.pick(&[Kind::Source, Kind::Prose, Kind::Json, Kind::Random, Kind::Mixed]);
        let size = rng.log_uniform(64, avg.max(128) * 3);
        let spec = FileSpec {
            path: dir.join(format!("added_{i}.{}", kind.extension(&mut rng))),
            size,
            kind,
            seed: rng.next_u64(),
        };
        write_spec(root, &spec)?;
        m.added += 1;
        m.bytes_written += size;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_mutation() {
        let specs = plan(3, 2000, 50 << 20);
        let total: u64 = specs.iter().map(|s| s.size).sum();
        assert!(total > 49 << 20 && total <= 50 << 20, "{total}");
        assert!(specs.iter().filter(|s| s.size < 8 << 10).count() > 800);
        let dir = std::env::temp_dir().join(format!("cairn-bench-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        generate(&dir, 3, 300, 3 << 20).unwrap();
        let m = mutate(&dir, 3, 300, 3 << 20).unwrap();
        assert!(m.added > 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn content_has_exact_length() {
        for kind in [Kind::Source, Kind::Prose, Kind::Json, Kind::Log, Kind::Random, Kind::Mixed] {
            let mut out = Vec::new();
            content(kind, 9, 12_345, &mut out);
            assert_eq!(out.len(), 12_345);
        }
    }
}
