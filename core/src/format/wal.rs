//! PostgreSQL WAL objects (FORMAT.md §14c): one per archived file, named by its encrypted file
//! name, holding the file compressed and sealed.
//!
//! A file name PostgreSQL archives (`000000010000000A000000FF`, `00000002.history`,
//! `…​.partial`, `…​.00000028.backup`) is parsed into a [`WalName`], whose 18-byte encoding
//! is encrypted deterministically (a synthetic IV: keyed BLAKE3 of the name, then the name
//! XORed with a keyed BLAKE3 stream under that IV) into the object's 32-byte id. The same name
//! always gives the same id, so `wal-fetch` finds a file by its name alone; the id reveals
//! nothing of the name to someone without the key, and the key holder turns a listing back
//! into names and orders them by timeline and position.

use std::cmp::Ordering;
use std::fmt;

use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, ObjectKey, ObjectKind};

/// Bytes of the encoded name.
const NAME_LEN: usize = 18;
/// Bytes of the synthetic IV at the start of an id.
const SIV_LEN: usize = 32 - NAME_LEN;
/// Associated data of a sealed WAL object, before the cluster and the encoded name.
const WAL_AAD: &[u8] = b"cairn wal v1";
/// The largest file PostgreSQL archives (its largest WAL segment size).
pub const MAX_WAL_FILE: u64 = 1 << 30;
/// Codec byte: stored as is.
const CODEC_RAW: u8 = 0;
/// Codec byte: zstd.
const CODEC_ZSTD: u8 = 1;

/// What kind of file PostgreSQL archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WalKind {
    /// A WAL segment.
    Segment,
    /// A timeline history file (`TTTTTTTT.history`).
    History,
    /// A backup history file (`<segment>.<offset>.backup`).
    BackupHistory,
    /// The last, partial segment of a timeline a promotion left (`<segment>.partial`).
    Partial,
}

impl WalKind {
    fn code(self) -> u8 {
        match self {
            WalKind::Segment => 1,
            WalKind::History => 2,
            WalKind::BackupHistory => 3,
            WalKind::Partial => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => WalKind::Segment,
            2 => WalKind::History,
            3 => WalKind::BackupHistory,
            4 => WalKind::Partial,
            _ => return None,
        })
    }
}

/// The name of an archived file, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalName {
    /// What it is.
    pub kind: WalKind,
    /// Its timeline.
    pub timeline: u32,
    /// The high 32 bits of its position (the `log` part of a segment name); 0 for a history file.
    pub log: u32,
    /// The segment within `log`; 0 for a history file.
    pub seg: u32,
    /// The byte offset a backup history file names; 0 otherwise.
    pub offset: u32,
}

impl WalName {
    /// A WAL segment.
    #[must_use]
    pub fn segment(timeline: u32, log: u32, seg: u32) -> Self {
        WalName { kind: WalKind::Segment, timeline, log, seg, offset: 0 }
    }

    /// Parses a file name PostgreSQL gives `archive_command` or `restore_command`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything else (a path, another file).
    pub fn parse(name: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument(format!("`{name}` is not the name of a WAL file PostgreSQL archives"));
        let hex8 = |s: &str| -> Result<u32> {
            if s.len() == 8 && s.bytes().all(upper_hex) {
                u32::from_str_radix(s, 16).map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        if let Some(tli) = name.strip_suffix(".history") {
            return Ok(WalName { kind: WalKind::History, timeline: hex8(tli)?, log: 0, seg: 0, offset: 0 });
        }
        let (segment, kind, offset) = if let Some(rest) = name.strip_suffix(".partial") {
            (rest, WalKind::Partial, 0)
        } else if let Some(rest) = name.strip_suffix(".backup") {
            let (segment, offset) = rest.split_once('.').ok_or_else(bad)?;
            (segment, WalKind::BackupHistory, hex8(offset)?)
        } else {
            (name, WalKind::Segment, 0)
        };
        // Checked before slicing: a multi-byte character must not be cut.
        if segment.len() != 24 || !segment.bytes().all(upper_hex) {
            return Err(bad());
        }
        Ok(WalName {
            kind,
            timeline: hex8(&segment[..8])?,
            log: hex8(&segment[8..16])?,
            seg: hex8(&segment[16..])?,
            offset,
        })
    }

    /// The segment this name is of or in, as a position comparable across timelines.
    #[must_use]
    pub fn position(&self) -> (u32, u32) {
        (self.log, self.seg)
    }

    fn encode(&self) -> [u8; NAME_LEN] {
        let mut out = [0u8; NAME_LEN];
        out[0] = self.kind.code();
        out[2..6].copy_from_slice(&self.timeline.to_be_bytes());
        out[6..10].copy_from_slice(&self.log.to_be_bytes());
        out[10..14].copy_from_slice(&self.seg.to_be_bytes());
        out[14..18].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8; NAME_LEN]) -> Option<Self> {
        let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        (bytes[1] == 0).then_some(())?;
        Some(WalName {
            kind: WalKind::from_code(bytes[0])?,
            timeline: word(2),
            log: word(6),
            seg: word(10),
            offset: word(14),
        })
    }
}

impl fmt::Display for WalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segment = format!("{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg);
        match self.kind {
            WalKind::Segment => f.write_str(&segment),
            WalKind::History => write!(f, "{:08X}.history", self.timeline),
            WalKind::BackupHistory => write!(f, "{segment}.{:08X}.backup", self.offset),
            WalKind::Partial => write!(f, "{segment}.partial"),
        }
    }
}

impl PartialOrd for WalName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// By position, then timeline, then kind and offset: the order of the write-ahead log, never
/// the order of the names' text.
impl Ord for WalName {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.log, self.seg, self.timeline, self.kind, self.offset).cmp(&(
            other.log,
            other.seg,
            other.timeline,
            other.kind,
            other.offset,
        ))
    }
}

/// Names and seals the WAL files of one cluster.
pub struct WalCodec<'a> {
    master: &'a MasterKey,
    cluster: String,
    siv_key: [u8; 32],
    stream_key: [u8; 32],
}

impl fmt::Debug for WalCodec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalCodec").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

impl Drop for WalCodec<'_> {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.siv_key.zeroize();
        self.stream_key.zeroize();
    }
}

impl<'a> WalCodec<'a> {
    /// The codec of `cluster`'s files under `master`.
    ///
    /// # Errors
    /// [`Error::WriteOnly`] for a write-only key: WAL names are keyed by the secret.
    pub fn new(master: &'a MasterKey, cluster: &str) -> Result<Self> {
        let (siv_key, stream_key) =
            master.wal_name_keys(cluster).map_err(|e| Error::crypto(format!("the WAL archive of {cluster}"), e))?;
        Ok(WalCodec { master, cluster: cluster.to_string(), siv_key, stream_key })
    }

    fn stream(&self, siv: &[u8]) -> [u8; NAME_LEN] {
        let mut out = [0u8; NAME_LEN];
        let mut hasher = blake3::Hasher::new_keyed(&self.stream_key);
        hasher.update(siv);
        hasher.finalize_xof().fill(&mut out);
        out
    }

    /// The object that holds `name`.
    #[must_use]
    pub fn key(&self, name: &WalName) -> ObjectKey {
        let plain = name.encode();
        let mut id = [0u8; 32];
        id[..SIV_LEN].copy_from_slice(&blake3::keyed_hash(&self.siv_key, &plain).as_bytes()[..SIV_LEN]);
        let stream = self.stream(&id[..SIV_LEN]);
        for (i, b) in plain.iter().enumerate() {
            id[SIV_LEN + i] = b ^ stream[i];
        }
        ObjectKey::new(ObjectKind::Wal, Digest(id))
    }

    /// The name an object of this cluster holds; `None` for one of another cluster or key (or
    /// an object that is no WAL file's).
    #[must_use]
    pub fn name(&self, key: &ObjectKey) -> Option<WalName> {
        if key.kind != ObjectKind::Wal {
            return None;
        }
        let (siv, hidden) = key.id.0.split_at(SIV_LEN);
        let stream = self.stream(siv);
        let mut plain = [0u8; NAME_LEN];
        for (i, b) in hidden.iter().enumerate() {
            plain[i] = b ^ stream[i];
        }
        let expected = blake3::keyed_hash(&self.siv_key, &plain);
        if !constant_time_eq(&expected.as_bytes()[..SIV_LEN], siv) {
            return None;
        }
        WalName::decode(&plain)
    }

    fn aad(&self, name: &WalName) -> Vec<u8> {
        let mut aad = Vec::with_capacity(WAL_AAD.len() + self.cluster.len() + 2 + NAME_LEN);
        aad.extend_from_slice(WAL_AAD);
        aad.push(0);
        aad.extend_from_slice(self.cluster.as_bytes());
        aad.push(0);
        aad.extend_from_slice(&name.encode());
        aad
    }

    /// The stored bytes of `name` holding `data`: compressed with zstd at `level` when that
    /// makes it smaller, then sealed with the cluster and the name as associated data.
    ///
    /// # Errors
    /// [`Error::Internal`] if the compressor fails.
    pub fn seal(&self, name: &WalName, data: &[u8], level: i32) -> Result<Vec<u8>> {
        let compressed = zstd::bulk::compress(data, level).map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        let mut plain = Vec::with_capacity(1 + compressed.len().min(data.len()));
        if compressed.len() < data.len() {
            plain.push(CODEC_ZSTD);
            plain.extend_from_slice(&compressed);
        } else {
            plain.push(CODEC_RAW);
            plain.extend_from_slice(data);
        }
        Ok(self.master.seal_object(&plain, &self.aad(name)))
    }

    /// The file `name` from its stored bytes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the object if they do not authenticate or decompress.
    pub fn open(&self, name: &WalName, sealed: &[u8]) -> Result<Vec<u8>> {
        let what = format!("WAL file {name} of cluster {}", self.cluster);
        let plain =
            self.master.open_object(sealed, &self.aad(name)).map_err(|e| Error::corrupt(&what, e.to_string()))?;
        match plain.split_first() {
            Some((&CODEC_RAW, data)) => Ok(data.to_vec()),
            Some((&CODEC_ZSTD, data)) => {
                // A WAL segment is at most 1 GiB (PostgreSQL's limit); the bound stops a forged
                // frame from asking for more.
                use std::io::Read;
                let mut out = Vec::new();
                zstd::stream::read::Decoder::new(data)
                    .and_then(|d| d.take(MAX_WAL_FILE + 1).read_to_end(&mut out))
                    .map_err(|e| Error::corrupt(&what, format!("zstd: {e}")))?;
                if out.len() as u64 > MAX_WAL_FILE {
                    return Err(Error::corrupt(&what, "decompresses to more than 1 GiB"));
                }
                Ok(out)
            }
            _ => Err(Error::corrupt(&what, "unknown codec")),
        }
    }
}

/// PostgreSQL writes its file names in upper-case hex; one name has one spelling.
fn upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for name in [
            "000000010000000A000000FF",
            "00000002.history",
            "000000010000000000000002.00000028.backup",
            "000000020000000000000005.partial",
        ] {
            assert_eq!(WalName::parse(name).unwrap().to_string(), name);
        }
        // Found by the fuzzer: 24 bytes, but a character cut by the fields.
        assert!(WalName::parse("0000\tn\u{fffd}o recovery tar2").is_err());
        for bad in [
            "",
            "0000000100000000055555ed",
            "pg_wal/000000010000000000000001",
            "00000001000000000000000",
            "0000000Z.history",
            "x.backup",
        ] {
            assert!(WalName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_is_by_position_not_text() {
        let a = WalName::parse("000000020000000000000003").unwrap();
        let b = WalName::parse("000000010000000000000004").unwrap();
        let c = WalName::parse("00000001000000010000000A").unwrap();
        assert!(a < b && b < c);
    }

    #[test]
    fn ids_hide_names_and_come_back_only_under_the_same_key_and_cluster() {
        let master = MasterKey::generate();
        let codec = WalCodec::new(&master, "main").unwrap();
        let name = WalName::parse("000000010000000000000003").unwrap();
        let key = codec.key(&name);
        assert_eq!(key, codec.key(&name), "the same name gives the same object");
        assert_ne!(key, codec.key(&WalName::parse("000000010000000000000004").unwrap()));
        assert!(!key.id.to_hex().contains("0003"));
        assert_eq!(codec.name(&key), Some(name));
        assert_eq!(WalCodec::new(&master, "other").unwrap().name(&key), None);
        assert_eq!(WalCodec::new(&MasterKey::generate(), "main").unwrap().name(&key), None);
        let mut flipped = key;
        flipped.id.0[31] ^= 1;
        assert_eq!(codec.name(&flipped), None);
    }

    #[test]
    fn contents_round_trip_and_are_bound_to_their_name() {
        let master = MasterKey::generate();
        let codec = WalCodec::new(&master, "main").unwrap();
        let name = WalName::parse("000000010000000000000003").unwrap();
        let mut data = vec![0u8; 1 << 16];
        data[..5].copy_from_slice(b"hello");
        let sealed = codec.seal(&name, &data, 3).unwrap();
        assert!(sealed.len() < 1 << 12, "a mostly empty segment compresses");
        assert_eq!(codec.open(&name, &sealed).unwrap(), data);
        let other = WalName::parse("000000010000000000000004").unwrap();
        assert!(codec.open(&other, &sealed).is_err(), "moved to another name, it does not open");
        assert!(WalCodec::new(&master, "other").unwrap().open(&name, &sealed).is_err());
    }
}
