//! Writes the seed corpora: a few valid inputs per target, as `corpus/<target>/seed-<name>`.
//!
//! ```text
//! cargo run --release --manifest-path fuzz/Cargo.toml --example gen_corpus
//! ```
//! Objects are sealed under the fixed key of `cairn_fuzz::master()` with random salts and nonces,
//! so a rerun writes different (equally valid) bytes; commit only when the formats change.

use std::fs;
use std::path::{Path, PathBuf};

use cairn_core::KdfParams;
use cairn_core::advanced::chunk::{CHUNKER_FASTCDC_2020_SEEDED, ChunkerParams};
use cairn_core::advanced::compress::{self, Codec};
use cairn_core::advanced::crypto::random_salt;
use cairn_core::format::blob::{self, BlobKind};
use cairn_core::format::config::{Config, FORMAT_VERSION};
use cairn_core::format::index::{IndexFile, IndexedPack};
use cairn_core::format::keyfile::{KeyFile, KeyMeta};
use cairn_core::format::pack::{PackEntry, PackSeal, PackWriter, encode_header};
use cairn_core::format::record::{RECORD_VERSION, RunRecord, StepKind, StepRecord};
use cairn_core::format::session::{SESSION_VERSION, SessionMarker};
use cairn_core::format::snapshot::{AttributesRead, SNAPSHOT_VERSION, Snapshot, Summary};
use cairn_core::format::tenant::{TENANT_VERSION, TenantKey};
use cairn_core::format::tree::{Node, NodeKind, TREE_VERSION, TREE_VERSION_EXTENDED, Time, Tree, Xattr};
use cairn_core::id::{BlobId, Digest, IndexId, PackId, SnapshotId};
use cairn_fuzz::{BLOB_SALT, PASSWORD, cbor, master};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir().join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Compressible but not trivial bytes.
fn text(len: usize) -> Vec<u8> {
    b"cairn keeps what you give it; ".iter().cycle().take(len).copied().collect()
}

/// Incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn keyfile() {
    let m = master();
    for (name, memory_kib) in [("8kib", 8), ("1mib", 1024), ("default", KdfParams::default().memory_kib)] {
        let params = KdfParams { memory_kib, iterations: 1, parallelism: 1 };
        let meta = KeyMeta {
            host: "host".into(),
            user: "user".into(),
            created: "2026-11-23T10:00:00Z".into(),
            write_only: false,
        };
        let kf = KeyFile::wrap(&m, PASSWORD, params, &meta, false).unwrap();
        write("keyfile", name, &kf.encode());
        if memory_kib == 8 {
            write("keyfile", "v2-8kib", &KeyFile::wrap(&m, PASSWORD, params, &meta, true).unwrap().encode());
        }
    }
}

fn configs() -> Vec<Config> {
    let base = Config {
        version: 1,
        id: Digest::of(b"fuzz repository"),
        chunker: CHUNKER_FASTCDC_2020_SEEDED.into(),
        chunker_params: ChunkerParams::default(),
        pack_size: 16 << 20,
        compression: 3,
        padding: false,
        data_parity: 0,
        data_storage_class: None,
        object_lock: None,
    };
    let small = Config {
        chunker_params: ChunkerParams { min_size: 64, avg_size: 256, max_size: 1024 },
        pack_size: 1 << 16,
        compression: 0,
        ..base.clone()
    };
    let v2 = Config { version: FORMAT_VERSION, padding: true, ..base.clone() };
    let parity = Config { data_parity: 10, ..v2.clone() };
    vec![base, small, v2, parity]
}

fn config() {
    let m = master();
    for (i, c) in configs().iter().enumerate() {
        let mode = if c.version == 1 { 1 } else { 3 };
        write("config", &format!("plain-{i}"), &cat(&[&[mode], &cbor(c)]));
        write("config", &format!("stored-{i}"), &cat(&[&[0], &c.seal(&m)]));
    }
}

fn entries() -> Vec<PackEntry> {
    (0..3u32)
        .map(|i| PackEntry {
            kind: if i == 2 { BlobKind::Tree } else { BlobKind::Data },
            codec: if i == 1 { Codec::Zstd } else { Codec::None },
            id: BlobId(Digest::of(&i.to_le_bytes())),
            offset: 16 + 100 * i,
            length: 100,
            raw_len: 72 + i,
        })
        .collect()
}

fn pack_header() {
    let e = entries();
    write("pack_header", "plain-3", &cat(&[&[1], &316u64.to_le_bytes(), &encode_header(&e)]));
    write("pack_header", "plain-0", &cat(&[&[1], &16u64.to_le_bytes(), &encode_header(&[])]));
    let m = master();
    let salt = random_salt();
    let key = m.subkey(&salt).expect("a full key");
    let mut w = PackWriter::new(PackSeal::salted(salt), 1 << 16);
    for plain in [text(3000), noise(500, 1), Vec::new()] {
        w.add(blob::seal(&key, BlobKind::Data, m.blob_id(&plain), &plain, 3));
    }
    let pack = w.finish(&key, false);
    write("pack_header", "pack", &cat(&[&[0], &pack.bytes]));
    // A pack written with a write-only key: sealed to the public key, which the tail carries.
    let (salt, public, generation, key) = m.write_only().new_pack_key();
    let mut w = PackWriter::new(PackSeal { salt, public, generation }, 1 << 16);
    let plain = text(2000);
    w.add(blob::seal(&key, BlobKind::Data, m.blob_id(&plain), &plain, 3));
    write("pack_header", "pack-public", &cat(&[&[0], &w.finish(&key, false).bytes]));
}

fn index() {
    let file = IndexFile {
        supersedes: vec![IndexId(Digest::of(b"older"))],
        packs: vec![
            IndexedPack { id: PackId(Digest::of(b"pack 1")), seal: PackSeal::salted([1; 16]), entries: entries() },
            IndexedPack {
                id: PackId(Digest::of(b"pack 2")),
                seal: PackSeal::salted([2; 16]),
                entries: entries()[..1].to_vec(),
            },
        ],
    };
    write("index", "plain", &file.encode());
    write("index", "empty", &IndexFile::default().encode());
    write("index", "sealed", &file.seal(&master()));
    // Version 2: a pack written with a write-only key, beside one sealed under its salt.
    let mut public = file;
    public.packs[1].seal.public = Some([7; 32]);
    write("index", "public", &public.encode());
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    let t = Time { secs: 1_795_000_000, nanos: 123_456_789 };
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o100_644,
        uid: 1000,
        gid: 1000,
        mtime: t,
        atime: t,
        ctime: t,
        inode: 42,
        dev: 2049,
        nlink: 1,
        size: 0,
        rdev: 0,
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

fn tree() {
    let file = Node {
        size: 3000,
        content: vec![BlobId(Digest::of(b"c1")), BlobId(Digest::of(b"c2"))],
        hash: Some(Digest::of(b"whole")),
        link: Some(1),
        ..node(b"file.txt", NodeKind::File)
    };
    let dir = Node { mode: 0o40_755, subtree: Some(BlobId(Digest::of(b"sub"))), ..node(b"dir", NodeKind::Dir) };
    let link = Node { target: Some(b"../\xff\xfe".to_vec()), ..node(b"link", NodeKind::Symlink) };
    let dev = Node { rdev: 0x0801, ..node(b"sda1", NodeKind::BlockDevice) };
    let odd = node(b"\x00name\xff", NodeKind::Fifo);
    write("tree", "full", &Tree::new(vec![file, dir, link, dev, odd]).encode());
    write("tree", "empty", &Tree::new(Vec::new()).encode());
    assert_eq!(Tree::new(Vec::new()).version, TREE_VERSION);
    // Version 2: extended attributes (an ACL's binary value among them) and inode flags.
    let acl = [2u32.to_le_bytes().as_slice(), &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff]].concat();
    let attributed = Node {
        xattrs: vec![
            Xattr { name: b"system.posix_acl_access".to_vec(), value: acl },
            Xattr { name: b"user.origin".to_vec(), value: b"\x00scanner\xff".to_vec() },
        ],
        flags: 0x20,
        ..node(b"doc.txt", NodeKind::File)
    };
    let immutable = Node { flags: 0x10, ..node(b"dir", NodeKind::Dir) };
    let extended = Tree::new(vec![attributed, immutable]);
    assert_eq!(extended.version, TREE_VERSION_EXTENDED);
    write("tree", "extended", &extended.encode());
}

fn snapshot() {
    let s = Snapshot {
        version: SNAPSHOT_VERSION,
        time: "2026-11-23T10:00:00.123456789Z".parse().unwrap(),
        host: "host".into(),
        user: "user".into(),
        paths: vec!["/home/user".into(), "/etc".into()],
        tags: vec!["daily".into()],
        parent: Some(SnapshotId(Digest::of(b"parent"))),
        tree: BlobId(Digest::of(b"root")),
        summary: Summary {
            files_new: 3,
            bytes_read: 4096,
            seconds: 1.5,
            errors: vec!["/x".into()],
            ..Summary::default()
        },
        original: None,
        created: None,
        program: "cairn 0.1.0".into(),
        postgres: None,
        subdirs: Vec::new(),
        attributes: Some(AttributesRead { xattrs: true, acls: true, privileged: false }),
    };
    write("snapshot", "plain", &cbor(&s));
    let base = Snapshot {
        paths: vec!["/base.tar".into()],
        postgres: Some(cairn_core::format::snapshot::BaseBackup {
            cluster: "main".into(),
            system_identifier: "7337000000000000001".into(),
            timeline: 1,
            start_lsn: 0x200_0028,
            stop_lsn: 0x200_0100,
            stop_timeline: 1,
            segment_size: 16 << 20,
            start_time: "2026-12-04T02:00:00Z".parse().unwrap(),
            stop_time: "2026-12-04T02:01:00Z".parse().unwrap(),
        }),
        ..s.clone()
    };
    write("snapshot", "base-backup", &cbor(&base));
    let minimal = Snapshot { parent: None, paths: vec![], tags: vec![], summary: Summary::default(), ..s.clone() };
    write("snapshot", "minimal", &cbor(&minimal));
    write("snapshot", "sealed", &s.seal(&master()));
}

fn session() {
    let marker = SessionMarker {
        version: SESSION_VERSION,
        session: Digest::of(b"a session"),
        seq: 2,
        host: "backup-host".into(),
        pid: 4242,
    };
    write("session", "plain", &cbor(&marker));
    write("session", "sealed", &marker.seal(&master()));
}

fn tenant() {
    let key = TenantKey {
        version: TENANT_VERSION,
        name: "acme".into(),
        key: [0x42; 32],
        created: "2026-12-04T03:00:00Z".into(),
    };
    write("tenant", "plain", &cbor(&key));
    write("tenant", "sealed", &key.seal(&master()));
    write("tenant", "stored", &key.seal_stored(&master()));
}

fn record() {
    let started = "2026-12-04T03:00:00Z".parse().unwrap();
    let step = |kind, target: &str, ok| StepRecord {
        message: "done".into(),
        seconds: 1.25,
        bytes: 1000,
        ..StepRecord::new(kind, target, ok)
    };
    let mut check = step(StepKind::Check, "", true);
    check.slice = Some((2, 7));
    let record = RunRecord {
        version: RECORD_VERSION,
        host: "backup-host".into(),
        started,
        finished: "2026-12-04T03:01:30Z".parse().unwrap(),
        steps: vec![step(StepKind::Backup, "shop-db", false), step(StepKind::Copy, "offsite", true), check],
    };
    write("record", "plain", &cbor(&record));
    write("record", "sealed", &record.seal(&master()));
    let idle = RunRecord { steps: vec![], ..record };
    write("record", "idle", &cbor(&idle));
}

fn parity() {
    use cairn_core::format::parity;
    for (name, len, percent) in [("small", 279usize, 50u8), ("shards", 3000, 10)] {
        let pack = noise(len, 7);
        let object = parity::encode(&pack, percent).unwrap();
        let head = cat(&[&[percent], &u16::try_from(len).unwrap().to_le_bytes()]);
        write("parity", name, &cat(&[&head, &pack, &object]));
        let mut damaged = pack.clone();
        damaged[0] ^= 1;
        write("parity", &format!("{name}-damaged"), &cat(&[&head, &damaged, &object]));
    }
}

fn blobs() {
    let m = master();
    let key = m.subkey(&BLOB_SALT).expect("a full key");
    for (name, kind, plain) in [
        ("text", BlobKind::Data, text(2000)),
        ("noise", BlobKind::Data, noise(300, 2)),
        ("empty", BlobKind::Tree, vec![]),
    ] {
        let s = blob::seal(&key, kind, m.blob_id(&plain), &plain, 3);
        let head = cat(&[&[kind.to_byte(), s.codec.to_byte()], &s.raw_len.to_le_bytes(), &s.id.0.0]);
        write("blob_open", name, &cat(&[&head, &s.bytes]));
        let p = blob::seal_prepared(&key, kind, m.blob_id(&plain), &blob::prepare(&plain, 3, true));
        let head = cat(&[&[kind.to_byte(), p.codec.to_byte()], &p.raw_len.to_le_bytes(), &p.id.0.0]);
        write("blob_open", &format!("padded-{name}"), &cat(&[&head, &p.bytes]));
        // blob_tamper: mode picks kind, level and what to tamper with; one seed per kind of tamper.
        for t in 0..7u8 {
            let mode = (t << 2) | 2 | kind.to_byte();
            write("blob_tamper", &format!("{name}-{t}"), &cat(&[&[mode], &7u32.to_le_bytes(), &[0x40], &plain]));
        }
    }
}

fn decompress() {
    for (name, plain) in [("text", text(5000)), ("zeros", vec![0; 100_000])] {
        let frame = compress::compress(&plain, 3).unwrap();
        let len = u32::try_from(plain.len()).unwrap();
        write("decompress", &format!("zstd-{name}"), &cat(&[&[Codec::Zstd.to_byte()], &len.to_le_bytes(), &frame]));
    }
    let raw = noise(200, 3);
    write("decompress", "none", &cat(&[&[Codec::None.to_byte()], &200u32.to_le_bytes(), &raw]));
    let frame = compress::compress(&text(5000), 3).unwrap();
    let mut padded = frame.clone();
    padded.resize(compress::padded_len(frame.len()), 0);
    write("decompress", "zstd-padded", &cat(&[&[Codec::ZstdPadded.to_byte()], &5000u32.to_le_bytes(), &padded]));
    let mut raw_padded = raw.clone();
    raw_padded.resize(compress::padded_len(200) + 3, 0);
    write("decompress", "none-padded", &cat(&[&[Codec::NonePadded.to_byte()], &200u32.to_le_bytes(), &raw_padded]));
}

/// PostgreSQL archiving (target `wal`: the first byte picks the decoder).
fn wal() {
    use cairn_core::format::wal::{WalCodec, WalName};
    let codec_master = master();
    let codec = WalCodec::new(&codec_master, "main").expect("a full key");
    for (n, name) in
        ["000000010000000A000000FF", "00000002.history", "000000010000000000000002.00000028.backup"].iter().enumerate()
    {
        write("wal", &format!("name-{n}"), &cat(&[&[0], name.as_bytes()]));
        let key = codec.key(&WalName::parse(name).unwrap());
        write("wal", &format!("id-{n}"), &cat(&[&[1], &key.id.0]));
    }
    let segment = WalName::segment(1, 0, 3);
    let mut data = text(5000);
    data.resize(1 << 16, 0);
    write("wal", "sealed", &cat(&[&[2], &codec.seal(&segment, &data, 3).unwrap()]));
    let mut tar = tar::Builder::new(Vec::new());
    let label = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n";
    let manifest = br#"{"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
]}"#;
    for (name, bytes) in
        [("backup_label", &label[..]), ("global/pg_control", &[1u8; 64][..]), ("backup_manifest", &manifest[..])]
    {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).unwrap();
    }
    write("wal", "tar", &cat(&[&[3, 200], &tar.into_inner().unwrap()]));
    write("wal", "history", &cat(&[&[4], b"1\t0/3000000\tno recovery target specified\n"]));
}

fn main() {
    wal();
    keyfile();
    config();
    pack_header();
    index();
    tree();
    snapshot();
    session();
    tenant();
    record();
    parity();
    blobs();
    decompress();
    println!("seeds written under {}", corpus_dir().display());
}
