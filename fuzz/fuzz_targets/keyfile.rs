//! Key files (`KeyFile::decode`, then `unwrap_key`): hostile JSON and hostile argon2 parameters
//! must give `Err`, never a panic, an abort or an unbounded allocation.
//!
//! Properties: decoding is stable (`decode(encode(k))` re-encodes to the same bytes); a layout 2
//! file's sealed `meta` opens under the seeds' master key or fails, never panics; unwrapping
//! with the seed password either fails or yields a key that wraps (in the file's layout) and
//! unwraps again, with the same `meta`.
#![no_main]

use cairn_core::KdfParams;
use cairn_core::format::keyfile::{KeyFile, KeyMeta};
use cairn_fuzz::{PASSWORD, master};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(kf) = KeyFile::decode(data) else { return };
    let enc = kf.encode();
    let again = KeyFile::decode(&enc).expect("an encoded key file decodes");
    assert_eq!(again.encode(), enc, "key file encoding is not stable");
    let meta = kf.meta(&master());

    // Keep each run fast: argon2 with large parameters is rejected or merely slow, and the
    // bounds themselves (`KdfParams::check`) are exercised by the inputs below the cap as well.
    let KdfParams { memory_kib, iterations, parallelism } = kf.params;
    if memory_kib > 1024 || iterations > 4 || parallelism > 8 {
        return;
    }
    if let Ok(key) = kf.unwrap_key(PASSWORD) {
        let fast = KdfParams { memory_kib: 8, iterations: 1, parallelism: 1 };
        let meta = meta.unwrap_or_else(|_| KeyMeta {
            host: "h".into(),
            user: "u".into(),
            created: "t".into(),
            write_only: false,
        });
        let rewrapped = KeyFile::wrap(&key, PASSWORD, fast, &meta, kf.version >= 2).expect("wrap with valid params");
        let back = rewrapped.unwrap_key(PASSWORD).expect("a fresh key file unwraps");
        assert_eq!(back.blob_id(b"probe"), key.blob_id(b"probe"), "rewrapped master key differs");
        assert_eq!(rewrapped.meta(&key).expect("a fresh key file's meta opens"), meta);
    }
});
