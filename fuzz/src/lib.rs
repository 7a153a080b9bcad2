//! Shared pieces of the fuzz targets and the seed generator (`examples/gen_corpus.rs`).
//!
//! Every target that needs a key uses [`master`], a fixed master key, so the committed seeds
//! (sealed under it) open and the fuzzer starts from inputs that get past authentication.

use cairn_core::advanced::crypto::MasterKey;

/// The fixed master key of every target and seed.
#[must_use]
pub fn master() -> MasterKey {
    MasterKey::from_bytes([0x5a; 32])
}

/// The fixed salt of blob targets: blobs are sealed under `master().subkey(&BLOB_SALT)`.
pub const BLOB_SALT: [u8; 16] = [0xa5; 16];

/// The password of the key-file seeds.
pub const PASSWORD: &[u8] = b"fuzz";

/// Associated data of a sealed config of `version` (FORMAT.md §5.3): `cairn config v1`, or
/// `cairn config v2` ‖ the clear magic and version. Spelled out here because the function is
/// private to `cairn_core::format::config`; the config seeds only open if the two agree.
#[must_use]
pub fn config_aad(version: u32) -> Vec<u8> {
    if version == 1 {
        return b"cairn config v1".to_vec();
    }
    let mut aad = b"cairn config v2".to_vec();
    aad.extend_from_slice(cairn_core::format::config::CONFIG_MAGIC);
    aad.extend_from_slice(&version.to_le_bytes());
    aad
}

/// The stored bytes of a config whose sealed plaintext is `cbor`:
/// `CAIRNREP ‖ version:u32le ‖ seal_object(cbor)`, as `Config::seal` writes them.
#[must_use]
pub fn stored_config(master: &MasterKey, version: u32, cbor: &[u8]) -> Vec<u8> {
    let mut out = cairn_core::format::config::CONFIG_MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&master.seal_object(cbor, &config_aad(version)));
    out
}

/// CBOR of any serialisable value (as the engine writes trees, snapshots and the config).
#[must_use]
pub fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR into a Vec cannot fail");
    out
}

/// Splits a fuzz input into fixed-size fields without panicking: missing bytes read as zero.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// The next `N` bytes, zero-padded at the end of the input.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        out
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// The next little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// The next little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Everything left.
    #[must_use]
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}
