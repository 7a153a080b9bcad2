//! Run records: `RunRecord::decode` on fuzzed CBOR, and `RunRecord::open` on the same bytes as
//! a sealed object (which must not open unless it is a seed).
//!
//! Properties of an accepted record: it has the one known version, sealing and opening it again
//! gives it back, and its encoding is stable.
#![no_main]

use cairn_core::format::record::{RECORD_VERSION, RunRecord};
use cairn_core::id::{Digest, ObjectKey, ObjectKind};
use cairn_fuzz::{cbor, master};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let master = master();
    let key = ObjectKey::new(ObjectKind::Record, Digest::default());
    if let Ok(record) = RunRecord::decode(&key, data) {
        assert_eq!(record.version, RECORD_VERSION);
        let reopened = RunRecord::open(&master, &key, &record.seal(&master)).expect("a sealed record opens");
        assert_eq!(cbor(&reopened), cbor(&record));
        let enc = cbor(&record);
        assert_eq!(cbor(&RunRecord::decode(&key, &enc).expect("an encoded record decodes")), enc);
    }
    if let Ok(record) = RunRecord::open(&master, &key, data) {
        assert_eq!(cbor(&RunRecord::decode(&key, &cbor(&record)).expect("decodes")), cbor(&record));
    }
});
