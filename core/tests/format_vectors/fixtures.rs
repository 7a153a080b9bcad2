//! The fixed inputs of the vectors, and the vectors as FORMAT.md states them.

use super::*;

// ---------------------------------------------------------------------------------------------
// The fixed inputs (FORMAT.md §Test vectors lists them too).
// ---------------------------------------------------------------------------------------------

/// The fixed master key: bytes 0x00, 0x01, …, 0x1f.
pub fn master_bytes() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

pub fn master() -> MasterKey {
    MasterKey::from_bytes(master_bytes())
}

pub const PASSWORD: &[u8] = b"cairn";
pub const KDF: KdfParams = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
pub const KEY_HOST: &str = "vector-host";
pub const KEY_USER: &str = "vector-user";
pub const TIME: &str = "2026-11-23T12:00:00Z";
/// `TIME` as seconds since the epoch.
pub const TIME_SECS: i64 = 1_795_435_200;

/// Data blob 0: 176 bytes that zstd level 3 shrinks by far more than 1/32.
pub fn blob_zstd() -> Vec<u8> {
    b"All work and no play makes Jack a dull boy.\n".repeat(4)
}

/// Data blob 1: shorter than 64 bytes, so always stored as is.
pub const BLOB_STORED: &[u8] = b"hello, cairn\n";

pub fn repo_id() -> Digest {
    Digest(std::array::from_fn(|i| 0xa0 + i as u8))
}

pub fn config() -> Config {
    Config {
        version: 1,
        id: repo_id(),
        chunker: CHUNKER_FASTCDC_2020_SEEDED.into(),
        chunker_params: ChunkerParams::default(),
        pack_size: 16 << 20,
        compression: 3,
        padding: false,
        data_parity: 0,
        data_storage_class: None,
        object_lock: None,
    }
}

/// The version 2 config vector: padding on.
pub fn config_v2() -> Config {
    Config { version: 2, padding: true, ..config() }
}

pub fn key_meta() -> KeyMeta {
    KeyMeta { host: KEY_HOST.into(), user: KEY_USER.into(), created: TIME.into(), write_only: false }
}

/// The made-up id the index vector lists as superseded (no such object exists).
pub fn superseded_id() -> IndexId {
    IndexId(Digest::of(b"an older index object"))
}

pub fn time(secs: i64, nanos: u32) -> Time {
    Time { secs, nanos }
}

/// The tree vector: an empty directory, a symlink and a file made of the two data blobs.
pub fn tree(m: &MasterKey) -> Tree {
    let content = [blob_zstd(), BLOB_STORED.to_vec()].concat();
    let base = Node {
        name: Vec::new(),
        kind: NodeKind::File,
        mode: 0,
        uid: 1000,
        gid: 1000,
        mtime: time(TIME_SECS - 86_400, 123_456_789),
        atime: time(TIME_SECS - 3_600, 0),
        ctime: time(TIME_SECS - 86_400, 123_456_789),
        inode: 0,
        dev: 2049,
        nlink: 1,
        size: 0,
        rdev: 0,
        content: vec![],
        hash: None,
        subtree: None,
        target: None,
        link: None,
        xattrs: vec![],
        flags: 0,
        subdirs: Vec::new(),
    };
    Tree::new(vec![
        Node {
            name: b"notes.txt".to_vec(),
            mode: 0o100_644,
            inode: 131_074,
            size: content.len() as u64,
            content: vec![m.blob_id(&blob_zstd()), m.blob_id(BLOB_STORED)],
            hash: Some(Digest::of(&content)),
            ..base.clone()
        },
        Node {
            name: b"latest".to_vec(),
            kind: NodeKind::Symlink,
            mode: 0o120_777,
            inode: 131_075,
            target: Some(b"notes.txt".to_vec()),
            ..base.clone()
        },
        Node {
            name: b"empty".to_vec(),
            kind: NodeKind::Dir,
            mode: 0o40_755,
            inode: 131_073,
            nlink: 2,
            subtree: Some(m.blob_id(&Tree::new(vec![]).encode())),
            ..base
        },
    ])
}

pub fn snapshot(tree_id: BlobId, pack_len: u64) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        time: TIME.parse().expect("fixed time"),
        host: "vector-host".into(),
        user: "vector-user".into(),
        paths: vec!["/home/vector".into()],
        tags: vec!["format-v1".into()],
        parent: None,
        tree: tree_id,
        summary: Summary {
            files_new: 1,
            files_changed: 0,
            files_unmodified: 0,
            dirs: 2,
            others: 1,
            total_bytes: 189,
            bytes_read: 189,
            bytes_in_holes: 0,
            blobs_new: 2,
            bytes_new: 189,
            bytes_stored: pack_len,
            seconds: 0.25,
            errors: vec![],
            changed: vec![],
        },
        original: None,
        created: None,
        program: "cairn 0.1.0".into(),
        postgres: None,
        subdirs: Vec::new(),
        attributes: None,
    }
}

/// Chunking vectors: the input is the first `len` bytes of BLAKE3's extendable output for
/// `b"cairn chunker test vector"`.
pub fn chunk_input(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"cairn chunker test vector");
    hasher.finalize_xof().fill(&mut out);
    out
}

pub const SMALL_CHUNKS: ChunkerParams = ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 };
pub const SMALL_INPUT: usize = 16 << 10;
pub const DEFAULT_INPUT: usize = 4 << 20;

// ---------------------------------------------------------------------------------------------
// Reading the vectors out of FORMAT.md.
// ---------------------------------------------------------------------------------------------

pub fn format_md_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md")
}

/// Every fenced block tagged `<lang> vector:<name>`, by name, with its lines.
pub fn vector_blocks() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(format_md_path()).expect("docs/FORMAT.md is readable");
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else { continue };
        let Some(name) = info.split_whitespace().find_map(|w| w.strip_prefix("vector:")) else {
            // Skip any other fenced block whole, so a ``` inside it is not taken as an opening.
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
            }
            continue;
        };
        let mut body = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push(l.to_string());
        }
        assert!(out.insert(name.to_string(), body).is_none(), "vector `{name}` appears twice in FORMAT.md");
    }
    out
}

/// The bytes of a `hex` vector: whitespace is ignored, `#` starts a comment to the end of line.
pub fn hex_vector(name: &str) -> Vec<u8> {
    let blocks = vector_blocks();
    let body = blocks.get(name).unwrap_or_else(|| panic!("FORMAT.md has no vector `{name}`"));
    let digits: String = body
        .iter()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    hex::decode(&digits).unwrap_or_else(|e| panic!("vector `{name}` is not hex: {e}"))
}

/// The exact bytes of a `json` vector: its lines joined with `\n`, no final newline.
pub fn text_vector(name: &str) -> Vec<u8> {
    let blocks = vector_blocks();
    let body = blocks.get(name).unwrap_or_else(|| panic!("FORMAT.md has no vector `{name}`"));
    body.join("\n").into_bytes()
}

/// The `name = value` lines of the `expected` vector.
pub fn expected() -> BTreeMap<String, String> {
    let blocks = vector_blocks();
    let body = blocks.get("expected").expect("FORMAT.md has the `expected` vector");
    body.iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("bad expected line `{l}`"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

pub fn expect(name: &str) -> String {
    expected().get(name).cloned().unwrap_or_else(|| panic!("the `expected` vector lacks `{name}`"))
}

pub fn expect_digest(name: &str) -> Digest {
    expect(name).parse().unwrap_or_else(|e| panic!("expected `{name}`: {e}"))
}
