use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn seal_open_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..2048), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
        let key = MasterKey::generate().subkey(&random_salt()).unwrap();
        let sealed = key.seal(&plain, &aad);
        prop_assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
        prop_assert_eq!(key.open(&sealed, &aad).unwrap(), plain);
    }

    #[test]
    fn any_flipped_bit_fails(plain in proptest::collection::vec(any::<u8>(), 0..256), pos in any::<usize>(), bit in 0u8..8) {
        let key = MasterKey::generate().subkey(&random_salt()).unwrap();
        let mut sealed = key.seal(&plain, b"aad");
        let i = pos % sealed.len();
        sealed[i] ^= 1 << bit;
        prop_assert_eq!(key.open(&sealed, b"aad"), Err(CryptoError::Authentication));
    }
}

#[test]
fn wrong_aad_and_wrong_key_fail() {
    let master = MasterKey::generate();
    let salt = random_salt();
    let sealed = master.subkey(&salt).unwrap().seal(b"hello", b"a");
    assert!(master.subkey(&salt).unwrap().open(&sealed, b"b").is_err());
    assert!(master.subkey(&random_salt()).unwrap().open(&sealed, b"a").is_err());
    assert!(MasterKey::generate().subkey(&salt).unwrap().open(&sealed, b"a").is_err());
    assert_eq!(master.subkey(&salt).unwrap().open(&sealed[..10], b"a"), Err(CryptoError::TooShort(10)));
}

/// Fixed key, nonce, AAD and plaintexts with the ciphertexts and tags that the `aes-gcm` 0.10
/// crate (the backend before `ring`) produced for them: the byte format must never change.
#[test]
fn known_answer_vectors_from_the_previous_backend() {
    let key = SealKey::new(core::array::from_fn(|i| i as u8));
    let nonce: [u8; NONCE_LEN] = core::array::from_fn(|i| 0xa0 + i as u8);
    let aad = b"cairn kat";
    let plain = |len: usize| (0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>();

    let mut out = Vec::new();
    key.seal_with_nonce(nonce, &plain(100), aad, &mut out);
    let expected = "a0a1a2a3a4a5a6a7a8a9aaab\
        e5126d355aed2f8b5927ce835024a5b203d6d8981d21dfc837bc9f46b865a0dd319cb60750245e2944be2d\
        f83e44c6b5144127200da667facacc92fe03de300c777654b7ef4309140fe0f60898d0e996fe31eaec8a97\
        c41e8507471a3614d8082c2e9a13\
        2661fcde158994701c91b235a7d2541e";
    assert_eq!(hex::encode(&out), expected);
    assert_eq!(key.open(&out, aad).unwrap(), plain(100));

    // Long enough for the wide (many blocks at once) code paths, with a partial last block.
    let len = 65536 + 13;
    let mut out = Vec::new();
    key.seal_with_nonce(nonce, &plain(len), aad, &mut out);
    assert_eq!(out.len(), len + SEAL_OVERHEAD);
    let ciphertext = &out[NONCE_LEN..NONCE_LEN + len];
    assert_eq!(
        blake3::hash(ciphertext).to_hex().as_str(),
        "29ccfa2afa09c48315e6b672f934e58fa1deb545b6f6c537395eda777e82a5ae"
    );
    assert_eq!(hex::encode(&out[NONCE_LEN + len..]), "37eb857730efd064ce9676c1bf35db59");
    assert_eq!(key.open(&out, aad).unwrap(), plain(len));
}

/// Seals with [`SealKey`] and opens with the `aes-gcm` crate, and the reverse, over many sizes.
#[test]
fn interoperates_with_the_aes_gcm_crate() {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    let mut rng = rand::rngs::OsRng;
    let sizes = (0..=600).chain([4095, 4096, 4097, 65_536, 300_001, 1 << 20]);
    for len in sizes {
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut raw);
        let other = Aes256Gcm::new((&raw).into());
        let key = SealKey::new(raw);
        let mut plain = vec![0u8; len];
        rand::RngCore::fill_bytes(&mut rng, &mut plain);
        let aad = &plain[..len.min(40)];

        let sealed = key.seal(&plain, aad);
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let opened = other.decrypt(Nonce::from_slice(nonce), Payload { msg: rest, aad });
        assert_eq!(opened.as_deref(), Ok(&plain[..]), "len {len}");

        let mut theirs = vec![0xa5; NONCE_LEN];
        let ct = other.encrypt(Nonce::from_slice(&theirs), Payload { msg: &plain, aad });
        theirs.extend_from_slice(&ct.unwrap());
        assert_eq!(theirs, {
            let mut ours = Vec::new();
            key.seal_with_nonce([0xa5; NONCE_LEN], &plain, aad, &mut ours);
            ours
        });
        assert_eq!(key.open(&theirs, aad).unwrap(), plain, "len {len}");
    }
}

/// A write-only key chunks and names blobs as the full key does, seals what it writes so
/// that the full key opens it, and opens nothing itself, not even what it sealed.
#[test]
fn a_write_only_key_writes_what_only_the_full_key_reads() {
    let full = MasterKey::generate().for_version(3);
    let w = MasterKey::from_wrapped(&full.write_only().to_wrapped()).unwrap().for_version(3);
    assert!(w.is_write_only() && !full.is_write_only());
    assert_eq!(
        (w.blob_id(b"x"), w.chunker_seed(), w.recipient()),
        (full.blob_id(b"x"), full.chunker_seed(), full.recipient())
    );

    let sealed = w.seal_object(b"snapshot", b"aad");
    assert_eq!(&sealed[..8], PUBLIC_MAGIC);
    assert_eq!(full.open_object(&sealed, b"aad").unwrap(), b"snapshot");
    assert_eq!(w.open_object(&sealed, b"aad"), Err(CryptoError::WriteOnly));
    assert_eq!(w.open_object(&full.seal_object(b"s", b"aad"), b"aad"), Err(CryptoError::WriteOnly));
    assert!(full.open_object(&sealed, b"other aad").is_err());
    assert!(MasterKey::generate().open_object(&sealed, b"aad").is_err(), "another repository's key");
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 1;
        assert!(full.open_object(&bad, b"aad").is_err(), "flipped byte {i}");
    }

    // Packs: a fresh ephemeral key each, agreed again by the full key alone.
    let (salt, public, _, key) = w.new_pack_key();
    let public = public.expect("a write-only key seals packs to the public key");
    let blob = key.seal(b"blob", b"b");
    assert_eq!(full.pack_key(&salt, Some(&public), 0).unwrap().open(&blob, b"b").unwrap(), b"blob");
    assert!(matches!(w.pack_key(&salt, Some(&public), 0), Err(CryptoError::WriteOnly)));
    assert_ne!(w.new_pack_key().1, Some(public));
    assert_eq!(full.new_pack_key().1, None, "a full key keeps sealing under salts");
    // An all-zero (low order) public key agrees on nothing.
    assert!(matches!(full.pack_key(&salt, Some(&[0; 32]), 0), Err(CryptoError::Authentication)));

    // Metadata: both read and write it, from version 3 on.
    let meta = w.seal_meta(b"index", b"i");
    assert_eq!(full.open_meta(&meta, b"i").unwrap(), b"index");
    assert_eq!(w.open_meta(&full.seal_meta(b"index", b"i"), b"i").unwrap(), b"index");
    let v2 = MasterKey::from_bytes(*full.as_bytes().unwrap()).for_version(2);
    assert!(w.open_meta(&v2.seal_meta(b"index", b"i"), b"i").is_err(), "version 2 seals under the secret");
    assert_eq!(full.open_meta(&v2.seal_meta(b"index", b"i"), b"i").unwrap(), b"index");

    assert!(MasterKey::from_wrapped(&[0; 33]).is_none());
    assert!(MasterKey::from_wrapped(&[0; WRITE_ONLY_LEN]).is_none(), "wrong tag");
    assert_eq!(w.notice_mac(b"n"), Err(CryptoError::WriteOnly));
    assert_eq!(w.wal_name_keys("main"), Err(CryptoError::WriteOnly));
}

/// A rotated key seals under its new generation and opens every earlier one; the key
/// before the rotation opens only what was sealed before it; ids, chunking, metadata and
/// names stay those of the first generation.
#[test]
fn a_rotated_key_opens_every_generation_and_the_old_key_only_the_old_ones() {
    let old = MasterKey::generate().for_version(3);
    let new = old.rotated().unwrap();
    assert_eq!((old.generation(), new.generation()), (0, 1));
    let back = MasterKey::from_wrapped(&new.to_wrapped()).unwrap().for_version(3);
    assert_eq!(back.generation(), 1);
    assert_eq!((new.blob_id(b"x"), new.chunker_seed()), (old.blob_id(b"x"), old.chunker_seed()));
    assert_eq!(new.tenant_id("acme").unwrap(), old.tenant_id("acme").unwrap());
    assert_eq!(new.wal_name_keys("main").unwrap(), old.wal_name_keys("main").unwrap());
    assert_ne!(new.recipient(), old.recipient(), "the public key is the new generation's");

    let before = old.seal_object(b"before", b"a");
    let after = back.seal_object(b"after", b"a");
    assert_eq!(back.open_object(&before, b"a").unwrap(), b"before");
    assert_eq!(back.open_object(&after, b"a").unwrap(), b"after");
    assert!(old.open_object(&after, b"a").is_err(), "the old key opens nothing sealed after the rotation");
    assert_eq!(old.open_meta(&back.seal_meta(b"index", b"i"), b"i").unwrap(), b"index");

    let (salt, public, generation, key) = back.new_pack_key();
    assert_eq!((public, generation), (None, 1));
    let blob = key.seal(b"blob", b"b");
    assert_eq!(back.pack_key(&salt, None, 1).unwrap().open(&blob, b"b").unwrap(), b"blob");
    assert!(old.pack_key(&salt, None, 1).is_err(), "the old key has no generation 1");
    assert!(back.pack_key(&salt, None, 0).unwrap().open(&blob, b"b").is_err());
    // A write-only key made after the rotation seals to the new public key.
    let w = MasterKey::from_wrapped(&back.write_only().to_wrapped()).unwrap();
    let (salt, public, generation, key) = w.new_pack_key();
    assert_eq!(generation, 1);
    let sealed = key.seal(b"w", b"b");
    assert_eq!(back.pack_key(&salt, public.as_ref(), 1).unwrap().open(&sealed, b"b").unwrap(), b"w");
    assert!(old.pack_key(&salt, public.as_ref(), 0).is_ok_and(|k| k.open(&sealed, b"b").is_err()));
    assert!(old.open_object(&w.seal_object(b"snap", b"s"), b"s").is_err());
    assert_eq!(back.open_object(&w.seal_object(b"snap", b"s"), b"s").unwrap(), b"snap");
    assert!(MasterKey::from_wrapped(&[GENERATIONS_TAG, 1, 0]).is_none());
}

#[test]
fn blob_ids_are_keyed() {
    let a = MasterKey::generate();
    let b = MasterKey::generate();
    assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
    assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
    assert_ne!(a.blob_id(b"x").0, Digest::of(b"x"));
}
