//! Pack parity: `parity::decode_header` and `parity::repair` on a fuzzed parity object and a
//! fuzzed "damaged pack", and `parity::encode` on fuzzed pack bytes.
//!
//! Input: `percent:u8 ‖ pack_len:u16le ‖ pack[pack_len] ‖ parity object`. Properties: nothing
//! panics; a repair that succeeds returns exactly `pack_len` bytes whose shards hash as the
//! header records; parity encoded from any pack rebuilds that pack from itself and from a copy
//! with one byte changed.
#![no_main]

use cairn_core::format::parity;
use cairn_core::id::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&percent, rest)) = data.split_first() else { return };
    let Some((len, rest)) = rest.split_first_chunk::<2>() else { return };
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (pack, object) = rest.split_at(len);
    if let Ok(h) = parity::decode_header(object) {
        assert!(h.k >= 1 && h.m >= 1 && h.hashes.len() == h.k + h.m);
        if let Ok(r) = parity::repair(object, pack) {
            assert_eq!(r.pack.len() as u64, h.pack_len);
            for (i, chunk) in r.pack.chunks(h.shard_len).enumerate() {
                let mut shard = chunk.to_vec();
                shard.resize(h.shard_len, 0);
                assert_eq!(Digest::of(&shard).0, h.hashes[i], "rebuilt shard {i}");
            }
        }
    }
    if !pack.is_empty() && (1..=100).contains(&percent) {
        let encoded = parity::encode(pack, percent).expect("encodes");
        assert_eq!(parity::repair(&encoded, pack).expect("repairs").pack, pack);
        let mut damaged = pack.to_vec();
        damaged[pack.len() / 2] ^= 0x5a;
        assert_eq!(parity::repair(&encoded, &damaged).expect("one shard lost").pack, pack);
    }
});
