//! Session markers: `SessionMarker::decode` on fuzzed CBOR, and `SessionMarker::open` on the
//! same bytes as a sealed object (which must not open unless it is a seed).
//!
//! Properties of an accepted marker: it has the one known version, sealing and opening it again
//! gives it back, and its encoding is stable.
#![no_main]

use cairn_core::format::session::{SESSION_VERSION, SessionMarker};
use cairn_core::id::{Digest, ObjectKey, ObjectKind};
use cairn_fuzz::{cbor, master};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let master = master();
    let key = ObjectKey::new(ObjectKind::Session, Digest::default());
    if let Ok(marker) = SessionMarker::decode(&key, data) {
        assert_eq!(marker.version, SESSION_VERSION);
        let reopened = SessionMarker::open(&master, &key, &marker.seal(&master)).expect("a sealed marker opens");
        assert_eq!(reopened, marker);
        let enc = cbor(&marker);
        assert_eq!(cbor(&SessionMarker::decode(&key, &enc).expect("an encoded marker decodes")), enc);
    }
    if let Ok(marker) = SessionMarker::open(&master, &key, data) {
        assert_eq!(SessionMarker::decode(&key, &cbor(&marker)).expect("decodes"), marker);
    }
});
