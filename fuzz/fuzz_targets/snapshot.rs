//! Snapshots: `Snapshot::decode_plain(id, plain)` on fuzzed CBOR, `Snapshot::open` on the
//! same bytes as a sealed object (which must not open unless it is a seed), and
//! `snapshot::open_stored` on them as a stored object (sealed once or twice, maybe damaged):
//! whatever it rebuilds hashes to the object's name.
//!
//! Properties of an accepted snapshot: sealing and opening it again gives it back
//! (`open(seal(s)) == s`), decoding its plaintext gives it back, and that encoding is stable.
//! `summary.seconds` is an `f64`, so NaN is compared by its bits, not with `==`.
#![no_main]

use cairn_core::format::snapshot::{Snapshot, open_stored};
use cairn_core::id::{Digest, SnapshotId};
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
    let named = SnapshotId(Digest::of(data));
    if let Ok(opened) = open_stored(&master, &named, data) {
        assert!(opened.rebuilt.is_none(), "bytes matching their name are not damaged");
    }
    // Under another name the bytes are damaged: a rebuilt object must hash to that name.
    let other = SnapshotId(Digest::of(&data[..data.len() / 2]));
    if let Ok(opened) = open_stored(&master, &other, data) {
        let rebuilt = opened.rebuilt.expect("damaged bytes are rebuilt");
        assert_eq!(Digest::of(&rebuilt), other.0);
    }
});
