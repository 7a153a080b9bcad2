//! Sealed blobs, structured: seal a fuzzed plaintext under the fixed key, check it opens to the
//! same bytes, then change one thing and check `blob::open` fails.
//!
//! Input: mode byte, position (u32le), mask byte, then the plaintext. The mode's low bit picks the
//! blob kind, bit 1 the compression level (0 or 3), and the rest what to tamper with: one byte
//! of the sealed bytes (xor a non-zero mask), the kind, one byte of the id, the codec, the
//! recorded length, a truncation, or the key (another salt).
#![no_main]

use cairn_core::advanced::compress::Codec;
use cairn_core::format::blob::{self, BlobKind};
use cairn_fuzz::{BLOB_SALT, Input, master};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.u8();
    let pos = input.u32() as usize;
    let mask = input.u8().max(1);
    let plain = input.rest();

    let kind = if mode & 1 == 0 { BlobKind::Data } else { BlobKind::Tree };
    let level = if mode & 2 == 0 { 0 } else { 3 };
    let master = master();
    let key = master.subkey(&BLOB_SALT).expect("a full key");
    let id = master.blob_id(plain);
    let s = blob::seal(&key, kind, id, plain, level);
    let opened = blob::open(&master, &key, kind, id, s.codec, s.raw_len, &s.bytes).expect("a sealed blob opens");
    assert_eq!(opened, plain);

    let (mut kind, mut id, mut codec, mut raw_len, mut sealed) = (s.kind, s.id, s.codec, s.raw_len, s.bytes.clone());
    let mut key = key;
    match (mode >> 2) % 7 {
        0 => sealed[pos % s.bytes.len()] ^= mask,
        1 => kind = if kind == BlobKind::Data { BlobKind::Tree } else { BlobKind::Data },
        2 => id.0.0[pos % 32] ^= mask,
        3 => codec = if codec == Codec::None { Codec::Zstd } else { Codec::None },
        // Up to 16 MiB more: `open` allocates the recorded length (trusted up to 256 MiB) before
        // zstd reads the frame, and the run's malloc limit is 64 MiB.
        4 => raw_len ^= u32::from(mask) << (8 * (pos % 3)),
        5 => sealed.truncate(pos % s.bytes.len()),
        _ => {
            let mut salt = BLOB_SALT;
            salt[pos % salt.len()] ^= mask;
            key = master.subkey(&salt).expect("a full key");
        }
    }
    let tampered = blob::open(&master, &key, kind, id, codec, raw_len, &sealed);
    assert!(tampered.is_err(), "tampered blob opened (mode {mode}, pos {pos}, mask {mask})");
});
