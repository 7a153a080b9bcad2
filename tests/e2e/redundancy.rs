//! Damage stays local (issue 14, item 7): data packs with Reed–Solomon parity
//! (`init --data-parity`) lose no file to a damaged byte range, `check` tells what the parity
//! saves from what is lost, `repair packs` writes the rebuilt pack back, and prune removes a
//! pack's parity with it. A snapshot object holds its sealed bytes twice: one damaged copy
//! costs nothing, and `repair snapshots` writes the object back under its name.

use std::path::{Path, PathBuf};

use cairn_core::store::{ObjectKey, ObjectKind};
use cairn_tests::corrupt::{self, objects};
use cairn_tests::{TestRepo, args, assert_trees_equal, data, exit};

use crate::{repo_with, restored};

/// Six files of random data over several 1 MiB packs, and a small text file.
fn source(repo: &TestRepo) -> PathBuf {
    let src = repo.dir("src");
    for i in 0..6 {
        data::write_random(&src.join(format!("file{i}.bin")), 40 + i, 700_000);
    }
    data::write(&src.join("note.txt"), b"a small file\n");
    src
}

/// The pack file of the parity object at `parity`.
fn pack_of(repo: &TestRepo, parity: &Path) -> PathBuf {
    let id = corrupt::object_id(parity).parse().expect("a parity object is named by its pack's id");
    repo.path().join(ObjectKey::new(ObjectKind::Pack, id).path())
}

fn said(out: &cairn_tests::Output) -> String {
    format!("{}{}", out.stdout_text(), out.stderr)
}

#[test]
fn a_damaged_data_pack_with_parity_costs_no_file_and_repair_writes_it_back() {
    let repo = repo_with(&["--pack-size-mib", "1", "--data-parity", "10"]);
    let src = source(&repo);
    repo.backup(args![&src]);
    let parities = objects(repo.path(), ObjectKind::Parity);
    assert!(parities.len() >= 4, "every data pack has its parity: {}", parities.len());
    let victim = pack_of(&repo, &corrupt::largest(&parities));
    let original = std::fs::read(&victim).unwrap();
    // A flipped byte and a 20 KiB range overwritten: three or four shards of about twenty.
    corrupt::flip_middle_byte(&victim);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[1000..21_480].fill(0x55);
    corrupt::write_over(&victim, &bytes);

    // Restore and dump read through the damage.
    let target = repo.dir("restore");
    let out = repo.run(args!["restore", "latest", "--target", &target, "--verify"]);
    out.success();
    assert_trees_equal(&src, &restored(&target, &src));
    for i in 0..6 {
        let file = src.join(format!("file{i}.bin"));
        assert!(repo.dump("latest", &file.display().to_string()) == std::fs::read(&file).unwrap(), "dump of {i}");
    }

    // check names the damage and that it costs nothing.
    let check = repo.run(args!["check", "--read-data"]);
    check.failure();
    let text = said(&check);
    assert!(text.contains(&corrupt::object_id(&victim)), "{text}");
    assert!(text.contains("its parity rebuilds it, so no file is lost"), "{text}");
    assert!(!text.contains("affects"), "no file may be named lost:\n{text}");

    // repair packs: a dry run changes nothing, --apply writes the pack back byte for byte.
    let dry = repo.run(args!["repair", "packs"]);
    dry.success();
    assert!(dry.stdout_text().contains("rebuilt from its parity"), "{}", said(&dry));
    assert_ne!(std::fs::read(&victim).unwrap(), original, "a dry run writes nothing");
    repo.run(args!["repair", "packs", "--apply"]).success();
    assert_eq!(std::fs::read(&victim).unwrap(), original);
    repo.run(args!["check", "--read-data"]).success();
}

#[test]
fn damage_beyond_the_parity_is_named_lost_and_nothing_wrong_is_restored() {
    let repo = repo_with(&["--pack-size-mib", "1", "--data-parity", "5"]);
    let src = source(&repo);
    repo.backup(args![&src]);
    let victim = pack_of(&repo, &corrupt::largest(&objects(repo.path(), ObjectKind::Parity)));
    let pack_id = corrupt::object_id(&victim);
    // Half the pack overwritten: far more than 5 % parity covers.
    let mut bytes = std::fs::read(&victim).unwrap();
    let half = bytes.len() / 2;
    bytes[..half].fill(0);
    corrupt::write_over(&victim, &bytes);

    let check = repo.run(args!["check", "--read-data"]);
    check.failure();
    let text = said(&check);
    assert!(text.contains("its parity cannot rebuild it") && text.contains("too few to rebuild"), "{text}");
    assert!(text.contains("affects"), "the files it costs are named:\n{text}");
    let target = repo.dir("restore");
    let out = repo.run(args!["restore", "latest", "--target", &target]);
    out.code(exit::FAILED).stderr_has(&pack_id);
    let wrong = cairn_tests::compare::wrong_files(&src, &restored(&target, &src));
    assert!(wrong.is_empty(), "damaged files left in the target: {wrong:#?}");
    repo.run(args!["repair", "packs", "--apply"])
        .code(exit::DAMAGED)
        .stderr_has(&pack_id)
        .stderr_has("repair snapshots");
}

#[test]
fn missing_parity_is_reported_and_written_and_prune_removes_parity_with_its_pack() {
    let repo = repo_with(&["--pack-size-mib", "1", "--data-parity", "10"]);
    let src = source(&repo);
    repo.backup(args![&src]);
    let parities = objects(repo.path(), ObjectKind::Parity);
    corrupt::delete(&parities[0]);
    let check = repo.run(args!["check"]);
    check.failure();
    assert!(said(&check).contains("has no parity object"), "{}", said(&check));
    let fixed = repo.run(args!["--json", "repair", "packs", "--apply"]).success().json();
    assert_eq!(fixed["parity_written"].as_array().unwrap().len(), 1, "{fixed}");
    assert!(parities[0].exists());
    repo.run(args!["check"]).success();

    // New data, then the first snapshot forgotten: its packs and their parity go together.
    std::fs::remove_file(src.join("file0.bin")).unwrap();
    std::fs::remove_file(src.join("file1.bin")).unwrap();
    data::write_random(&src.join("file9.bin"), 99, 700_000);
    repo.backup(args![&src]);
    repo.run(args!["forget", "--keep-last", "1"]).success();
    // The first prune lists the packs; the next deletes them, the grace period over.
    repo.run(args!["prune", "--grace", "0s", "--max-unused", "0%"]).success();
    let pruned = repo.run(args!["--json", "prune", "--grace", "0s", "--max-unused", "0%"]).success().json();
    assert!(pruned["stats"]["parity_deleted"].as_u64().unwrap() > 0, "{pruned}");
    let packs: Vec<String> = objects(repo.path(), ObjectKind::Pack).iter().map(|p| corrupt::object_id(p)).collect();
    for parity in objects(repo.path(), ObjectKind::Parity) {
        assert!(packs.contains(&corrupt::object_id(&parity)), "parity without its pack: {}", parity.display());
    }
    repo.run(args!["check", "--read-data"]).success();
    let target = repo.dir("restore");
    repo.run(args!["restore", "latest", "--target", &target, "--verify"]).success();
    assert_trees_equal(&src, &restored(&target, &src));
}

#[test]
fn data_parity_is_refused_out_of_range() {
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    repo.run(args!["init", "--data-parity", "0"]).code(exit::USAGE).stderr_has("1 to 100");
    repo.run(args!["init", "--data-parity", "101%"]).code(exit::USAGE).stderr_has("1 to 100");
}

#[test]
fn a_damaged_snapshot_object_costs_nothing_and_repair_writes_it_back() {
    let repo = crate::repo();
    let src = repo.dir("src");
    data::write_random(&src.join("a.bin"), 5, 100_000);
    let id = repo.backup(args![&src])["snapshot"].as_str().unwrap().to_string();
    let object = objects(repo.path(), ObjectKind::Snapshot).pop().unwrap();
    assert_eq!(corrupt::object_id(&object), id);
    let original = std::fs::read(&object).unwrap();
    assert_eq!(original[..original.len() / 2], original[original.len() / 2..], "stored twice, byte for byte");
    corrupt::flip_byte(&object, 40);

    let listed = repo.run(args!["--json", "snapshots"]).success().json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    let target = repo.dir("restore");
    repo.run(args!["restore", &id, "--target", &target, "--verify"]).success();
    assert_trees_equal(&src, &restored(&target, &src));
    let check = repo.run(args!["check"]);
    check.failure();
    assert!(said(&check).contains("its second copy is intact, so nothing is lost"), "{}", said(&check));

    let dry = repo.run(args!["repair", "snapshots"]);
    dry.success();
    assert!(dry.stdout_text().contains("would be written back"), "{}", said(&dry));
    assert_ne!(std::fs::read(&object).unwrap(), original);
    repo.run(args!["repair", "snapshots", "--apply"]).success();
    assert_eq!(std::fs::read(&object).unwrap(), original, "the object's own bytes, under its name");
    repo.run(args!["check"]).success();
}
