//! Identifiers: a 32-byte [`Digest`] and one newtype per kind of thing it names.
//!
//! - [`BlobId`]: keyed BLAKE3 of a blob's plaintext (FORMAT.md §Ids). The key comes from the master
//!   key, so the store cannot confirm a guessed file.
//! - [`PackId`], [`IndexId`], [`SnapshotId`], [`KeyId`]: plain BLAKE3 of the object's stored bytes,
//!   so anyone can check an object against its name without a key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 32 bytes of hash output.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
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
            let b: serde_bytes::ByteBuf = serde_bytes::ByteBuf::deserialize(d)?;
            let arr: [u8; 32] =
                b.as_slice().try_into().map_err(|_| serde::de::Error::invalid_length(b.len(), &"32 bytes"))?;
            Ok(Digest(arr))
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
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
}
