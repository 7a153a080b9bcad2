//! Format version 3 vectors (FORMAT.md §20.10): the repository's public key and an object
//! sealed to it by a write-only key, opened by the engine and by the reader of `spec`.
//!
//! CAIRN_WRITE_VECTORS=1 cargo test -p cairn-core --test format_vectors -- --ignored generate_v3_vectors

use super::*;

const AAD_SNAPSHOT: &[u8] = b"cairn snapshot v1";

/// The snapshot the vector seals: the one of §20.7.
fn the_snapshot() -> Snapshot {
    snapshot(BlobId(expect_digest("tree-id")), expect("pack-len").parse().expect("number"))
}

#[test]
fn public_key_and_sealed_to_it_vectors() {
    // Spec: the recipient secret is derive_key(context, master), its public key X25519's.
    let secret =
        x25519_dalek::StaticSecret::from(blake3::derive_key("cairn 2026-12-04 recipient x25519 v1", &master_bytes()));
    let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
    assert_eq!(public.to_vec(), hex_vector("recipient"));
    assert_eq!(master().recipient(), &public);

    let sealed = hex_vector("sealed-to-recipient");
    assert_eq!(&sealed[..8], b"CAIRNPK1");
    // The engine opens it with the master key, not with the write-only key.
    let plain = master().open_object(&sealed, AAD_SNAPSHOT).expect("the master key opens it");
    assert!(master().write_only().open_object(&sealed, AAD_SNAPSHOT).is_err());
    let id = SnapshotId(Digest::of(&sealed));
    assert_eq!(Snapshot::decode_plain(&id, &plain).expect("decodes"), the_snapshot());
    // Spec: the key agreed with E, then a sealed message.
    let e: [u8; 32] = sealed[8..40].try_into().unwrap();
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(e));
    let mut material = shared.as_bytes().to_vec();
    material.extend_from_slice(&e);
    material.extend_from_slice(&public);
    let key = blake3::derive_key("cairn 2026-12-04 sealed to recipient v1", &material);
    assert_eq!(spec::open(&key, &sealed[40..], AAD_SNAPSHOT).expect("spec opens it"), plain);
    every_flip_fails("sealed to the recipient", &sealed, |b| {
        master().open_object(b, AAD_SNAPSHOT).map(|_| ()).map_err(|e| e.to_string())
    });
}

#[test]
#[ignore = "generates FORMAT.md's version 3 vectors; run by hand (see the module docs)"]
fn generate_v3_vectors() {
    let write_only = master().write_only();
    let sealed = the_snapshot().seal(&write_only);
    let body = hex_lines(&sealed[..8], "CAIRNPK1")
        + &hex_lines(&sealed[8..40], "E, the ephemeral public key")
        + &sealed_lines(&sealed[40..], "snapshot of §20.7");
    write_sections(&[
        (
            "recipient",
            fenced("hex vector:recipient", &hex_lines(master().recipient(), "R, the repository's public key")),
        ),
        ("sealed-to-recipient", fenced("hex vector:sealed-to-recipient", &body)),
    ]);
}
