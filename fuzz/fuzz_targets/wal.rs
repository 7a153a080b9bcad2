//! PostgreSQL archiving's decoders (FORMAT.md §13 `postgres`, §14c): the first byte picks one.
//!
//! - 0: `WalName::parse` on text; an accepted name prints back as the same text.
//! - 1: `WalCodec::name` on a 32-byte id; a name it gives maps back to the same id.
//! - 2: `WalCodec::open` on sealed bytes; what opens seals and opens again to the same bytes.
//! - 3: `TarWatch` on a tar stream cut in two at a fuzzed point, then `describe`; cutting the
//!   stream elsewhere gives the same answer.
//! - 4: `parse_history` on a timeline history file.
#![no_main]

use cairn_core::format::wal::{WalCodec, WalName};
use cairn_core::id::{Digest, ObjectKey, ObjectKind};
use cairn_core::postgres::basebackup::TarWatch;
use cairn_core::postgres::lsn::parse_history;
use cairn_fuzz::master;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let master = master();
    let codec = WalCodec::new(&master, "main").expect("a full key");
    match mode % 5 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(name) = WalName::parse(text)
            {
                assert_eq!(name.to_string(), text);
            }
        }
        1 => {
            if rest.len() >= 32 {
                let mut id = [0u8; 32];
                id.copy_from_slice(&rest[..32]);
                let key = ObjectKey::new(ObjectKind::Wal, Digest(id));
                if let Some(name) = codec.name(&key) {
                    assert_eq!(codec.key(&name), key);
                }
            }
        }
        2 => {
            let name = WalName::segment(1, 0, 3);
            if let Ok(plain) = codec.open(&name, rest) {
                let sealed = codec.seal(&name, &plain, 1).expect("seals");
                assert_eq!(codec.open(&name, &sealed).expect("opens"), plain);
            }
        }
        3 => {
            let Some((&cut, stream)) = rest.split_first() else { return };
            let at = usize::from(cut).min(stream.len());
            let t = jiff::Timestamp::UNIX_EPOCH;
            let mut whole = TarWatch::default();
            whole.feed(stream);
            let mut pieces = TarWatch::default();
            pieces.feed(&stream[..at]);
            pieces.feed(&stream[at..]);
            assert_eq!(whole.describe("main", t, t), pieces.describe("main", t, t));
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = parse_history(text);
            }
        }
    }
});
