//! Index objects: `IndexFile::decode(plain)` on fuzzed plaintexts, and `IndexFile::open` on the
//! same bytes as a sealed object (which must not open unless it is a seed).
//!
//! Properties of an accepted plaintext: the encoding is canonical — `encode(decode(p)) == p` —
//! and so `decode(encode(x)) == x`. A sealed index that opens round-trips the same way.
#![no_main]

use cairn_core::format::index::IndexFile;
use cairn_core::id::IndexId;
use cairn_fuzz::master;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = IndexFile::decode(data) {
        let enc = file.encode();
        assert_eq!(enc, data, "index encoding is not canonical");
        assert_eq!(IndexFile::decode(&enc).expect("an encoded index decodes"), file);
    }
    if let Ok(file) = IndexFile::open(&master(), &IndexId::default(), data) {
        assert_eq!(IndexFile::decode(&file.encode()).expect("an encoded index decodes"), file);
    }
});
