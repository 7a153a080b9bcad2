//! Tree blobs: `Tree::decode(id, bytes)` on fuzzed CBOR.
//!
//! Properties of an accepted tree: it round-trips (`decode(encode(t)) == t`), its encoding is
//! stable (encoding the round-tripped tree gives the same bytes), and lookups by name do not
//! panic whatever the node order.
#![no_main]

use cairn_core::format::tree::Tree;
use cairn_core::id::BlobId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = BlobId::default();
    let Ok(tree) = Tree::decode(&id, data) else { return };
    let enc = tree.encode();
    let again = Tree::decode(&id, &enc).expect("an encoded tree decodes");
    assert_eq!(again, tree);
    assert_eq!(again.encode(), enc, "tree encoding is not stable");
    for node in &tree.nodes {
        let _ = tree.find(&node.name);
    }
});
