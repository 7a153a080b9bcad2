//! The repository config (FORMAT.md §Config): the settings fixed at `init`, stored in front of
//! everything else as `CAIRNREP ‖ version:u32le ‖ sealed CBOR`. The clear version lets a build
//! refuse a repository of another format version with a clear error before any key is tried.

use serde::{Deserialize, Serialize};

use crate::foundation::chunk::{CHUNKER_FASTCDC_2020_SEEDED, ChunkerParams};
use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::Digest;

/// The repository format version `init` creates; [`OLDEST_VERSION`] ..= this are read (and
/// written, each in its own format).
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this build reads.
pub const OLDEST_VERSION: u32 = 1;
/// The first bytes of the stored config.
pub const CONFIG_MAGIC: &[u8; 8] = b"CAIRNREP";
const CONFIG_AAD_V1: &[u8] = b"cairn config v1";
const CONFIG_AAD_V2: &[u8] = b"cairn config v2";

/// The associated data of a config of `version`: version 2 binds the clear magic and version,
/// so changing the clear version makes the config fail to open (FORMAT.md §7).
fn config_aad(version: u32) -> Vec<u8> {
    if version == 1 {
        return CONFIG_AAD_V1.to_vec();
    }
    let mut aad = CONFIG_AAD_V2.to_vec();
    aad.extend_from_slice(CONFIG_MAGIC);
    aad.extend_from_slice(&version.to_le_bytes());
    aad
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// Repository-wide settings, fixed at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// [`FORMAT_VERSION`] (also stored in clear in front of the sealed config).
    pub version: u32,
    /// Random repository id.
    pub id: Digest,
    /// Chunking algorithm, [`CHUNKER_FASTCDC_2020_SEEDED`].
    pub chunker: String,
    /// Chunk size bounds.
    pub chunker_params: ChunkerParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_size: u32,
    /// zstd level for new blobs (0 = none).
    pub compression: i32,
    /// Pad every new blob's payload to its Padmé length (version 2 only; absent = false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub padding: bool,
    /// Reed–Solomon parity written beside every new data pack, in recovery bytes per 100 pack
    /// bytes (FORMAT.md §10a); 0 (or absent) for none. Version 2 only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data_parity: u8,
    /// The storage class new data packs (and their parity) are created in, e.g. S3
    /// `GLACIER_IR`; trees, index objects and snapshots stay in the store's default class.
    /// Absent for the default. Version 2 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_storage_class: Option<String>,
    /// Object lock: every object retained this long (version 3 only; absent for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

/// S3 Object Lock's retention modes (FORMAT.md §7, `object_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` may still delete or shorten it.
    Governance,
    /// No one, the account's root included, may delete the object or shorten its retention.
    Compliance,
}

impl ObjectLock {
    /// Parses `MODE:DURATION` (`governance:30d`, `compliance:1y`).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let (mode, duration) =
            text.split_once(':').ok_or_else(|| format!("`{text}`: expected MODE:DURATION, e.g. governance:30d"))?;
        let mode = match mode.to_ascii_lowercase().as_str() {
            "governance" => LockMode::Governance,
            "compliance" => LockMode::Compliance,
            _ => return Err(format!("`{mode}`: the object lock mode is governance or compliance")),
        };
        let seconds = crate::foundation::duration::parse_duration(duration, 'd')
            .map_err(|e| format!("`{duration}`: {e}"))?
            .as_secs();
        if seconds == 0 || seconds > MAX_LOCK_SECONDS {
            return Err(format!("`{duration}`: the object lock lasts from 1 second to 100 years"));
        }
        Ok(ObjectLock { mode, seconds })
    }

    /// When an object written (or extended) at `now` is retained until.
    #[must_use]
    pub fn until(&self, now: jiff::Timestamp) -> jiff::Timestamp {
        now.saturating_add(jiff::SignedDuration::from_secs(i64::try_from(self.seconds).unwrap_or(i64::MAX)))
            .unwrap_or(jiff::Timestamp::MAX)
    }
}

impl LockMode {
    /// The name S3 uses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// The longest object lock: 100 years (S3's own bound on a retention period).
pub const MAX_LOCK_SECONDS: u64 = 100 * 365 * 86_400;

/// Object lock of a repository (`init --object-lock MODE:DURATION`, FORMAT.md §7): every
/// object but session markers and garbage lists is retained for `seconds` from its write,
/// and prune extends what kept snapshots still need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    /// The retention mode.
    pub mode: LockMode,
    /// How long each object is retained, in seconds.
    pub seconds: u64,
}

/// Storage classes whose objects cannot be read without a warm-up request first (S3 Glacier
/// Flexible Retrieval and Deep Archive, Azure's Archive tier): a restore warms up the data
/// packs it needs first.
pub const CLASSES_NEEDING_WARM_UP: &[&str] = &["GLACIER", "DEEP_ARCHIVE", "Archive"];

/// Checks a storage class for data packs: a plain name (ASCII letters, digits, `_`, `-`), not
/// Azure's Archive tier (whose rehydration cairn cannot ask for yet).
///
/// # Errors
/// A message naming what is wrong.
pub fn check_storage_class(class: &str) -> std::result::Result<(), String> {
    let plain = !class.is_empty()
        && class.len() <= 64
        && class.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !plain {
        return Err(format!("`{class}` is not a storage class name"));
    }
    if class == "Archive" {
        return Err(format!(
            "storage class `{class}` needs a rehydration before every read, which cairn cannot ask Azure for yet; \
             use Cool or Cold, or on S3 GLACIER or DEEP_ARCHIVE (restores warm those up)"
        ));
    }
    Ok(())
}

impl Config {
    /// Whether data packs are created in a class that must be warmed up before reads.
    #[must_use]
    pub fn data_is_archived(&self) -> bool {
        self.data_storage_class.as_deref().is_some_and(|c| CLASSES_NEEDING_WARM_UP.contains(&c))
    }

    /// Encodes and seals the config for storage: `CAIRNREP ‖ version:u32le ‖ sealed CBOR`.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        let mut plain = Vec::new();
        let _ = ciborium::into_writer(self, &mut plain);
        let mut out = CONFIG_MAGIC.to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&master.clone().for_version(self.version).seal_meta(&plain, &config_aad(self.version)));
        out
    }

    /// Reads the clear version in front of a stored config.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the bytes are not a config.
    pub fn stored_version(data: &[u8]) -> Result<u32> {
        if data.len() < 12 || &data[..8] != CONFIG_MAGIC {
            return Err(Error::corrupt("config", "not a cairn repository config"));
        }
        Ok(u32::from_le_bytes([data[8], data[9], data[10], data[11]]))
    }

    /// Authenticates and decodes a stored config whose clear version was checked, and checks
    /// its settings.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for anything malformed, unauthenticated or out of range.
    pub fn open(master: &MasterKey, data: &[u8]) -> Result<Self> {
        let version = Self::stored_version(data)?;
        let sealed = data.get(12..).ok_or_else(|| Error::corrupt("config", "not a cairn repository config"))?;
        let plain = master
            .clone()
            .for_version(version)
            .open_meta(sealed, &config_aad(version))
            .map_err(|e| Error::crypto("config", e))?;
        let config: Config =
            ciborium::from_reader(plain.as_slice()).map_err(|e| Error::corrupt("config", e.to_string()))?;
        if config.chunker != CHUNKER_FASTCDC_2020_SEEDED {
            return Err(Error::corrupt("config", format!("unknown chunker `{}`", config.chunker)));
        }
        config.chunker_params.validate().map_err(|e| Error::corrupt("config", e))?;
        if config.version != version {
            return Err(Error::corrupt("config", "the sealed version differs from the clear one"));
        }
        if config.padding && version < 2 {
            return Err(Error::corrupt("config", "padding in a version 1 config"));
        }
        if let Some(class) = &config.data_storage_class
            && (version < 2 || check_storage_class(class).is_err())
        {
            return Err(Error::corrupt("config", "data storage class out of range"));
        }
        if config.data_parity > 100 || (config.data_parity > 0 && version < 2) {
            return Err(Error::corrupt("config", "data parity out of range"));
        }
        if config.object_lock.is_some_and(|l| l.seconds == 0 || l.seconds > MAX_LOCK_SECONDS || version < 3) {
            return Err(Error::corrupt("config", "object lock out of range"));
        }
        if !(0..=22).contains(&config.compression) {
            return Err(Error::corrupt("config", "compression level out of range"));
        }
        if !(1 << 16..=1 << 30).contains(&config.pack_size) {
            return Err(Error::corrupt("config", "pack size out of range"));
        }
        Ok(config)
    }
}

/// Decodes a stored config object (`CAIRNREP ‖ version:u32le ‖ sealed CBOR`) with `master`: the
/// clear version must be one this build reads, then the sealed part is authenticated, decoded
/// and checked as opening a repository does. Public for the fuzz targets and test vectors.
///
/// # Errors
/// [`Error::Corrupt`] for anything malformed or unauthenticated; [`Error::UnsupportedVersion`]
/// for another format version.
pub fn decode_stored(master: &MasterKey, data: &[u8]) -> Result<Config> {
    check_version(Config::stored_version(data)?)?;
    Config::open(master, data)
}

/// Refuses a format version this build does not read.
///
/// # Errors
/// [`Error::UnsupportedVersion`] naming the version found and the newest this build reads.
pub fn check_version(version: u32) -> Result<()> {
    if (OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Ok(());
    }
    Err(Error::UnsupportedVersion { object: "repository config".into(), found: version, supported: FORMAT_VERSION })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_lock_is_parsed_and_bounded() {
        let lock = ObjectLock::parse("governance:30d").unwrap();
        assert_eq!((lock.mode, lock.seconds), (LockMode::Governance, 30 * 86_400));
        assert_eq!(ObjectLock::parse("COMPLIANCE:8s").unwrap().mode, LockMode::Compliance);
        for bad in ["30d", "forever:1d", "governance:0s", "governance:40000d", "governance:soon"] {
            assert!(ObjectLock::parse(bad).is_err(), "{bad}");
        }
        let t = jiff::Timestamp::from_second(1_000).unwrap();
        assert_eq!(lock.until(t), jiff::Timestamp::from_second(1_000 + 30 * 86_400).unwrap());
    }

    /// Object lock is a version 3 key, and a lock of no time or past 100 years is refused.
    #[test]
    fn a_config_with_object_lock_opens_only_in_range_and_from_version_3() {
        let master = MasterKey::generate();
        let base = Config {
            version: 3,
            id: Digest::of(b"id"),
            chunker: CHUNKER_FASTCDC_2020_SEEDED.into(),
            chunker_params: ChunkerParams::default(),
            pack_size: 16 << 20,
            compression: 1,
            padding: true,
            data_parity: 0,
            data_storage_class: None,
            object_lock: Some(ObjectLock { mode: LockMode::Compliance, seconds: 86_400 }),
        };
        assert_eq!(Config::open(&master, &base.seal(&master)).unwrap(), base);
        for config in [
            Config { version: 2, ..base.clone() },
            Config { object_lock: Some(ObjectLock { mode: LockMode::Governance, seconds: 0 }), ..base.clone() },
            Config {
                object_lock: Some(ObjectLock { mode: LockMode::Governance, seconds: MAX_LOCK_SECONDS + 1 }),
                ..base
            },
        ] {
            assert!(Config::open(&master, &config.seal(&master)).is_err(), "{config:?}");
        }
    }
}
