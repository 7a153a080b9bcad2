//! Snapshots: `Snapshot::decode_plain(id, plain)` on fuzzed CBOR, and `Snapshot::open` on the
//! same bytes as a sealed object (which must not open unless it is a seed).
//!
//! Properties of an accepted snapshot: sealing and opening it again gives it back
//! (`open(seal(s)) == s`), decoding its plaintext gives it back, and that encoding is stable.
//! `summary.seconds` is an `f64`, so NaN is compared by its bits, not with `==`.
#![no_main]

use cairn_core::id::SnapshotId;
use cairn_core::format::snapshot::Snapshot;
use cairn_fuzz::{cbor, master};
use libfuzzer_sys::fuzz_target;

/// `a == b`, except that a NaN `seconds` equals another NaN `seconds`.
fn same(a: &Snapshot, b: &Snapshot) -> bool {
    if a.summary.seconds.is_nan() && b.summary.seconds.is_nan() {
        let (mut a, mut b) = (a.clone(), b.clone());
        a.summary.seconds = 0.0;
        b.summary.seconds = 0.0;
        a == b
    } else {
        a == b
    }
}

fuzz_target!(|data: &[u8]| {
    let master = master();
    let id = SnapshotId::default();
    if let Ok(snap) = Snapshot::decode_plain(&id, data) {
        let reopened = Snapshot::open(&master, &id, &snap.seal(&master)).expect("a sealed snapshot opens");
        assert!(same(&reopened, &snap), "seal/open changed the snapshot:\n{snap:?}\n{reopened:?}");
        let enc = cbor(&snap);
        let again = Snapshot::decode_plain(&id, &enc).expect("an encoded snapshot decodes");
        assert!(same(&again, &snap), "encode/decode changed the snapshot:\n{snap:?}\n{again:?}");
        assert_eq!(cbor(&again), enc, "snapshot encoding is not stable");
    }
    if let Ok(snap) = Snapshot::open(&master, &id, data) {
        let again = Snapshot::decode_plain(&id, &cbor(&snap)).expect("an encoded snapshot decodes");
        assert!(same(&again, &snap));
    }
});
