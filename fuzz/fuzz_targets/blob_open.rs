//! Sealed blobs: `blob::open(master, key, kind, id, codec, raw_len, sealed)` with every argument
//! fuzzed. Input: kind byte, codec byte, raw_len (u32le), id (32 bytes), then the sealed bytes.
//!
//! Random bytes never authenticate, so `open` must fail for them. The property is stated so that
//! it also holds for the committed seeds, which are genuine blobs sealed under the fixed key: an
//! accepted blob is exactly `raw_len` bytes long and hashes to `id`.
#![no_main]

use cairn_core::advanced::compress::Codec;
use cairn_core::format::blob::{self, BlobKind};
use cairn_core::id::{BlobId, Digest};
use cairn_fuzz::{BLOB_SALT, Input, master};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let kind = if input.u8() & 1 == 0 { BlobKind::Data } else { BlobKind::Tree };
    let codec = Codec::from_byte(input.u8() & 3).unwrap_or(Codec::None);
    // `open` trusts the recorded length up to MAX_BLOB_LEN (256 MiB) and allocates it before
    // zstd reads the frame; keep such claims under libFuzzer's malloc limit. Larger claims are
    // kept as they are: `open` must refuse them before allocating.
    let raw_len = match input.u32() {
        n if n > blob::MAX_BLOB_LEN => n,
        n => n % (16 << 20),
    };
    let id = BlobId(Digest(input.array()));
    let sealed = input.rest();
    let master = master();
    let key = master.subkey(&BLOB_SALT).expect("a full key");
    if let Ok(plain) = blob::open(&master, &key, kind, id, codec, raw_len, sealed) {
        assert_eq!(plain.len(), raw_len as usize, "opened blob has the wrong length");
        assert_eq!(master.blob_id(&plain), id, "opened blob does not hash to its id");
    }
});
