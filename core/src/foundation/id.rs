//! Identifiers: a 32-byte [`Digest`] and one newtype per kind of thing it names.
//!
//! - [`BlobId`]: keyed BLAKE3 of a blob's plaintext (FORMAT.md §Ids). The key comes from the master
//!   key, so the store cannot confirm a guessed file.
//! - [`PackId`], [`IndexId`], [`SnapshotId`], [`KeyId`]: plain BLAKE3 of the object's stored bytes,
//!   so anyone can check an object against its name without a key.
//! - [`ObjectKey`]: the name of one stored object (its [`ObjectKind`] and id), and the one
//!   function that turns it into a path (FORMAT.md §Layout).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 32 bytes of hash output.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(transparent)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Plain (unkeyed) BLAKE3 of `data`.
    #[must_use]
    pub fn of(data: &[u8]) -> Self {
        Digest(*blake3::hash(data).as_bytes())
    }

    /// Lower-case hex, 64 characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex characters, as shown in listings.
    #[must_use]
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a 64-digit hex id")]
pub struct ParseIdError(pub String);

impl FromStr for Digest {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_string()))?;
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&self.to_hex()) } else { s.serialize_bytes(&self.0) }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            // Read in place: a tree holds one digest per content blob, and a buffer allocated
            // for each was a tenth of decoding a tree.
            Ok(Digest(serde_bytes::ByteArray::<32>::deserialize(d)?.into_array()))
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Default,
            Serialize,
            Deserialize,
            zerocopy::FromBytes,
            zerocopy::IntoBytes,
            zerocopy::Immutable,
            zerocopy::KnownLayout,
        )]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(pub Digest);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short())
            }
        }
        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($name(s.parse()?))
            }
        }
        impl $name {
            /// The first 8 hex characters.
            #[must_use]
            pub fn short(&self) -> String {
                self.0.short()
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a blob's plaintext.
    BlobId
);
id_type!(
    /// BLAKE3 of a pack's stored bytes.
    PackId
);
id_type!(
    /// BLAKE3 of an index object's stored bytes.
    IndexId
);
id_type!(
    /// BLAKE3 of a snapshot object's stored bytes.
    SnapshotId
);
id_type!(
    /// BLAKE3 of a key file's stored bytes.
    KeyId
);

/// The kinds of object in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// The repository config (one object, named `config`).
    Config,
    /// Key files.
    Key,
    /// Snapshot manifests.
    Snapshot,
    /// Index objects.
    Index,
    /// Packs of blobs.
    Pack,
    /// Prune's lists of packs waiting out the grace period before deletion.
    Garbage,
    /// Markers of writers running now (backups, copies, rewrites), refreshed while they run.
    Session,
    /// Reed–Solomon parity of a data pack, named by the pack's id (`init --data-parity`).
    Parity,
    /// Records of policy runs (`cairn run --policy`).
    Record,
    /// PostgreSQL WAL files and timeline histories (`cairn pg wal-push`), named by their
    /// encrypted file names.
    Wal,
    /// Tenants' keys (FORMAT.md §14d), named by the keyed hash of the tenant's name. Each
    /// tenant's repository lives under `tenants/<that name>/`.
    Tenant,
}

impl ObjectKind {
    /// The folder of this kind's objects.
    #[must_use]
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Config => "",
            ObjectKind::Key => "keys",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Index => "index",
            ObjectKind::Pack => "data",
            ObjectKind::Garbage => "garbage",
            ObjectKind::Session => "sessions",
            ObjectKind::Parity => "parity",
            ObjectKind::Record => "records",
            ObjectKind::Wal => "wal",
            ObjectKind::Tenant => "tenant-keys",
        }
    }
}

/// The name of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its id (all zero for the config).
    pub id: Digest,
}

impl ObjectKey {
    /// The config object.
    pub const CONFIG: ObjectKey = ObjectKey { kind: ObjectKind::Config, id: Digest([0; 32]) };

    /// An object of `kind` named `id`.
    #[must_use]
    pub fn new(kind: ObjectKind, id: Digest) -> Self {
        ObjectKey { kind, id }
    }

    /// The object's path below the repository root: `config`, `keys/<id>`, `snapshots/<id>`,
    /// `index/<id>`, `data/<first two hex digits>/<id>`, `parity/<first two hex digits>/<id>`,
    /// `records/<id>`, `wal/<id>`.
    #[must_use]
    pub fn path(&self) -> String {
        let hex = self.id.to_hex();
        match self.kind {
            ObjectKind::Config => "config".to_string(),
            ObjectKind::Pack => format!("data/{}/{hex}", &hex[..2]),
            ObjectKind::Parity => format!("parity/{}/{hex}", &hex[..2]),
            k => format!("{}/{hex}", k.dir()),
        }
    }

    /// Parses a path made by [`ObjectKey::path`] of the given kind.
    #[must_use]
    pub fn parse(kind: ObjectKind, path: &str) -> Option<Self> {
        if kind == ObjectKind::Config {
            return (path == "config").then_some(Self::CONFIG);
        }
        let name = path.rsplit('/').next()?;
        Some(ObjectKey { kind, id: name.parse().ok()? })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ObjectKind::Config => f.write_str("config"),
            ObjectKind::Key => write!(f, "key {}", self.id),
            ObjectKind::Snapshot => write!(f, "snapshot {}", self.id),
            ObjectKind::Index => write!(f, "index {}", self.id),
            ObjectKind::Pack => write!(f, "pack {}", self.id),
            ObjectKind::Garbage => write!(f, "garbage list {}", self.id),
            ObjectKind::Session => write!(f, "session marker {}", self.id),
            ObjectKind::Parity => write!(f, "parity of pack {}", self.id),
            ObjectKind::Record => write!(f, "run record {}", self.id),
            ObjectKind::Wal => write!(f, "WAL object {}", self.id),
            ObjectKind::Tenant => write!(f, "tenant key {}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of(b"cairn");
        let s = d.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert!("xyz".parse::<Digest>().is_err());
        assert_eq!(d.short(), &s[..8]);
    }

    #[test]
    fn paths_round_trip() {
        let id = Digest::of(b"x");
        for kind in [
            ObjectKind::Key,
            ObjectKind::Snapshot,
            ObjectKind::Index,
            ObjectKind::Pack,
            ObjectKind::Garbage,
            ObjectKind::Session,
            ObjectKind::Parity,
        ] {
            let k = ObjectKey::new(kind, id);
            assert_eq!(ObjectKey::parse(kind, &k.path()), Some(k));
        }
        assert_eq!(ObjectKey::CONFIG.path(), "config");
        assert!(ObjectKey::new(ObjectKind::Pack, id).path().starts_with(&format!("data/{}/", &id.to_hex()[..2])));
    }
}
