//! Pack headers: `pack::decode_header(plain, body_len)` on fuzzed plaintexts, and
//! `pack::read_header(master, id, pack)` on fuzzed whole packs.
//!
//! The first input byte picks the mode. Odd: the next 8 bytes are `body_len` (u64le) and the rest
//! is a header plaintext. Even: the rest is a whole pack (salt, blobs, sealed header, length).
//!
//! Properties of an accepted header: every entry lies inside the pack body, after the salt
//! (`16 ≤ offset`, `offset + length ≤ body_len`) and is at least a sealed empty message long
//! (`length ≥ 28`); the encoding is canonical (`encode_header(decode_header(p)) == p`).
#![no_main]

use cairn_core::advanced::crypto::{SALT_LEN, SEAL_OVERHEAD};
use cairn_core::format::pack::{PackEntry, decode_header, encode_header, read_header, split_header_len};
use cairn_core::id::{Digest, PackId};
use cairn_fuzz::{Input, master};
use libfuzzer_sys::fuzz_target;

fn check_entries(entries: &[PackEntry], body_len: u64) {
    for e in entries {
        let (offset, length) = (u64::from(e.offset), u64::from(e.length));
        assert!(offset >= SALT_LEN as u64, "entry at {offset} overlaps the salt");
        assert!(offset + length <= body_len, "entry {offset}+{length} past the body ({body_len})");
        assert!(offset < body_len, "entry at {offset} outside [16, {body_len})");
        assert!(length >= SEAL_OVERHEAD as u64, "entry shorter than a sealed message: {length}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if input.u8() & 1 == 1 {
        let body_len = input.u64();
        let plain = input.rest();
        if let Ok(entries) = decode_header(plain, body_len) {
            check_entries(&entries, body_len);
            assert_eq!(encode_header(&entries), plain, "pack header encoding is not canonical");
        }
    } else {
        let pack = input.rest();
        let id = PackId(Digest::of(pack));
        if let Ok((seal, entries)) = read_header(&master(), &id, pack) {
            assert_eq!(seal.salt[..], pack[..SALT_LEN]);
            let trailer = split_header_len(pack[pack.len() - 4..].try_into().unwrap());
            assert_eq!(trailer.public, seal.public.is_some());
            assert_eq!(trailer.generation, seal.generation > 0);
            check_entries(&entries, pack.len() as u64 - 4 - u64::from(trailer.header_len) - seal.tail_extra());
        }
    }
});
