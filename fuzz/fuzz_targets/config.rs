//! The stored config (`repo::decode_stored`): `CAIRNREP ‖ version:u32le ‖ sealed CBOR`.
//!
//! The first input byte picks the mode. Odd: the rest is the CBOR plaintext, sealed here under
//! the fixed master key with the config's associated data (of version 1, or of version 2 when
//! bit 1 is set), so the fuzzer reaches the CBOR decoder and the checks behind authentication.
//! Even: the rest is the stored object as is (it must not open unless it is a seed).
//!
//! Properties of an accepted config: it is usable — the chunker is known, its parameters make a
//! `Cutter` that cuts a buffer within the bounds, the pack size and compression level are in the
//! ranges `init` allows, the sealed version is the clear one — and it round-trips
//! (`decode_stored(stored(cbor(c))) == c`).
#![no_main]

use std::sync::OnceLock;

use cairn_core::advanced::chunk::{CHUNKER_FASTCDC_2020_SEEDED, Cutter};
use cairn_core::format::config::{FORMAT_VERSION, OLDEST_VERSION, decode_stored};
use cairn_fuzz::{cbor, master, stored_config};
use libfuzzer_sys::fuzz_target;

/// Pseudo-random bytes, longer than any accepted maximum chunk size, made once.
fn noise() -> &'static [u8] {
    static NOISE: OnceLock<Vec<u8>> = OnceLock::new();
    NOISE.get_or_init(|| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..=fastcdc::v2020::MAXIMUM_MAX as usize)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let master = master();
    let version = if mode & 2 == 0 { OLDEST_VERSION } else { FORMAT_VERSION };
    let stored = if mode & 1 == 1 { stored_config(&master, version, rest) } else { rest.to_vec() };
    let Ok(config) = decode_stored(&master, &stored) else { return };

    assert_eq!(config.chunker, CHUNKER_FASTCDC_2020_SEEDED);
    assert_eq!(config.version.to_le_bytes(), stored[8..12], "sealed version differs from the clear one");
    assert!((OLDEST_VERSION..=FORMAT_VERSION).contains(&config.version));
    assert!(!config.padding || config.version >= 2, "padding accepted in a version 1 config");
    assert!((0..=22).contains(&config.compression), "compression level {} accepted", config.compression);
    assert!((1 << 16..=1 << 30).contains(&config.pack_size), "pack size {} accepted", config.pack_size);
    let p = config.chunker_params;
    let cutter = Cutter::new(p, master.chunker_seed()).expect("accepted chunker params make a cutter");
    let cut = cutter.cut(&noise()[..p.max_size as usize + 1]);
    assert!(cut >= p.min_size as usize && cut <= p.max_size as usize, "cut {cut} outside {p:?}");

    let again = decode_stored(&master, &stored_config(&master, config.version, &cbor(&config)))
        .expect("a re-encoded config decodes");
    assert_eq!(again, config);
});
