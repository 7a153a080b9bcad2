//! Version 1 repositories under this binary (issue 14, item 6): a small repository written by
//! the version 1 code (commit 4a47837) is kept in `tests/fixtures/repo-v1`; it restores
//! exactly, passes `check --read-data`, and `cairn migrate` takes it to version 3.
//!
//! The fixture's snapshots hold [`build_small_tree`] generations 0 and 1, backed up from
//! [`FIXTURE_SOURCE`]; the tests rebuild the same trees and compare.

use std::path::{Path, PathBuf};

use cairn_tests::fixture::build_small_tree;
use cairn_tests::{TestRepo, args, assert_trees_equal};

use crate::restored;

/// The path the fixture's snapshots were taken from.
const FIXTURE_SOURCE: &str = "/tmp/cairn-fixture-v1/tree";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/repo-v1")
}

/// Copies `from` into `to` (a directory tree of regular files), private as `init` makes it.
fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// A copy of the version 1 fixture, to run commands against.
pub(crate) fn fixture_repo() -> TestRepo {
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    copy_tree(&fixture_dir(), repo.path());
    repo
}

fn config_version(repo: &Path) -> u32 {
    let config = std::fs::read(repo.join("config")).unwrap();
    u32::from_le_bytes(config[8..12].try_into().unwrap())
}

/// Restores both snapshots of `repo` and compares them with freshly built trees.
fn assert_restores_exactly(repo: &TestRepo) {
    let snapshots = repo.snapshots();
    assert_eq!(snapshots.len(), 2, "the fixture holds two snapshots: {snapshots:?}");
    for (generation, snapshot) in snapshots.iter().enumerate() {
        let id = snapshot["id"].as_str().unwrap();
        let expected = repo.dir(&format!("expected-{generation}")).join("tree");
        build_small_tree(&expected, generation as u32);
        let target = repo.dir(&format!("restore-{generation}"));
        repo.run(args!["restore", id, "--target", &target]).success();
        let got = restored(&target, Path::new(FIXTURE_SOURCE));
        assert_trees_equal(&expected, &got);
        let mut value = [0u8; 16];
        let n = rustix::fs::lgetxattr(got.join("tagged.txt"), "user.cairn.note", &mut value[..])
            .expect("the extended attribute came back");
        assert_eq!(&value[..n], b"kept");
    }
}

/// Writes the fixture with the binary under test. Run by hand with the version 1 binary only:
/// `CAIRN_WRITE_FIXTURE=1 cargo test -p cairn-cli --test e2e -- --ignored write_v1_fixture`.
#[test]
#[ignore = "writes tests/fixtures/repo-v1; run by hand with a version 1 binary"]
fn write_v1_fixture() {
    if std::env::var_os("CAIRN_WRITE_FIXTURE").is_none() {
        return;
    }
    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    let source = Path::new(FIXTURE_SOURCE);
    let _ = std::fs::remove_dir_all(source.parent().unwrap());
    let repo = TestRepo::init_with(env!("CARGO_BIN_EXE_cairn"), &["--pack-size-mib", "1"]);
    build_small_tree(source, 0);
    repo.backup(args![source, "--tag", "generation-0"]);
    std::fs::remove_dir_all(source).unwrap();
    build_small_tree(source, 1);
    repo.backup(args![source, "--tag", "generation-1"]);
    copy_tree(repo.path(), &out);
    std::fs::remove_dir_all(source.parent().unwrap()).unwrap();
}

/// A version 1 repository restores exactly under this binary, and `check --read-data` finds
/// nothing wrong with it.
#[test]
fn version_1_repository_restores_exactly() {
    let repo = fixture_repo();
    assert_eq!(config_version(repo.path()), 1, "the fixture is a version 1 repository");
    assert_restores_exactly(&repo);
    repo.run(args!["check", "--read-data"]).success();
}

/// The layout version of every key file of `repo`, and whether any still names its host in
/// clear.
fn key_files(repo: &Path) -> (Vec<u64>, bool) {
    let mut versions = Vec::new();
    let mut clear = false;
    for entry in std::fs::read_dir(repo.join("keys")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        versions.push(json["version"].as_u64().unwrap());
        clear |= json.get("host").is_some();
    }
    versions.sort_unstable();
    (versions, clear)
}

fn migrate_with_faults(repo: &TestRepo, faults: &str) -> cairn_tests::Output {
    let mut cmd = repo.command(args!["--json", "migrate"]);
    cmd.env("CAIRN_TEST_FAULTS", faults);
    cairn_tests::Output::of(cmd)
}

/// `cairn migrate` takes the version 1 fixture (with a second key added by this binary, still
/// as version 1) to version 3: every password opens it, key files no longer carry their
/// creator in clear, both snapshots restore exactly, `check --read-data` passes, and a new
/// backup (padded blobs) restores exactly beside them.
#[test]
fn migrate_takes_a_version_1_repository_to_version_3() {
    let repo = fixture_repo();
    let second = repo.scratch().join("second-password");
    std::fs::write(&second, "another password").unwrap();
    repo.run(args!["key", "add", "--new-password-file", &second]).success();
    assert_eq!(key_files(repo.path()), (vec![1, 1], true), "a version 1 repository gets version 1 key files");

    let out = repo.run(args!["--json", "migrate"]);
    out.success();
    let report = out.json();
    assert_eq!((report["from"].as_u64(), report["to"].as_u64()), (Some(1), Some(3)), "{report}");
    assert_eq!(report["keys_upgraded"].as_u64(), Some(2), "{report}");
    assert!(report["indexes_resealed"].as_u64() >= Some(1), "{report}");
    assert_eq!(config_version(repo.path()), 3);
    assert_eq!(key_files(repo.path()), (vec![2, 2], false));
    let mut other = repo.command(args!["snapshots"]);
    other.env("CAIRN_PASSWORD", "another password");
    cairn_tests::Output::of(other).success();

    assert_restores_exactly(&repo);
    repo.run(args!["check", "--read-data"]).success();
    let again = repo.run(args!["--json", "migrate"]);
    again.success();
    assert_eq!(again.json()["config_replaced"].as_bool(), Some(false));

    let src = repo.dir("new-source");
    cairn_tests::data::write_random(&src.join("new.bin"), 7, 900_000);
    cairn_tests::data::write(&src.join("text.txt"), &cairn_tests::data::text_bytes(8, 300_000));
    repo.backup(args![&src]);
    let target = repo.dir("restore-new");
    repo.run(args!["restore", "latest", "--target", &target]).success();
    assert_trees_equal(&src, &restored(&target, &src));
    repo.run(args!["check", "--read-data"]).success();
}

/// A migration stopped at any put leaves a repository that opens and restores, and running
/// `migrate` again finishes it: stopped before the config (nothing changed), after the
/// config but before the key files, and after the key files but before the index objects.
#[test]
fn an_interrupted_migrate_is_finished_by_running_it_again() {
    let repo = fixture_repo();
    migrate_with_faults(&repo, "fail_puts_after=0").failure();
    assert_eq!(config_version(repo.path()), 1, "the config put failed: still version 1");
    migrate_with_faults(&repo, "fail_puts_after=1").failure();
    assert_eq!(config_version(repo.path()), 3, "the config was replaced");
    assert_eq!(key_files(repo.path()), (vec![1], true), "the key file was not");
    assert_eq!(repo.snapshots().len(), 2, "the half-migrated repository opens");
    migrate_with_faults(&repo, "fail_puts_after=1").failure();
    assert_eq!(key_files(repo.path()), (vec![2], false), "the key file was upgraded, the index objects not");
    assert_eq!(repo.snapshots().len(), 2, "the half-migrated repository opens");
    let out = repo.run(args!["--json", "migrate"]);
    out.success();
    assert_eq!(out.json()["config_replaced"].as_bool(), Some(false));
    assert_eq!(out.json()["keys_upgraded"].as_u64(), Some(0));
    assert!(out.json()["indexes_resealed"].as_u64() >= Some(1), "{}", out.json());
    assert_eq!(key_files(repo.path()), (vec![2], false));
    assert_restores_exactly(&repo);
    repo.run(args!["check", "--read-data"]).success();
}

/// `init` creates version 3 repositories, with version 2 key files.
#[test]
fn init_creates_version_3() {
    let repo = crate::repo();
    assert_eq!(config_version(repo.path()), 3);
    assert_eq!(key_files(repo.path()), (vec![2], false));
}

/// `init` without cost flags derives its key with RFC 9106's second recommended setting for
/// Argon2id (64 MiB, 3 passes, 4 lanes, the lanes filled side by side), and the key opens.
#[test]
fn init_derives_with_four_lanes_by_default() {
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    repo.run(args!["init"]).success();
    let keys: Vec<_> = std::fs::read_dir(repo.path().join("keys")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(keys.len(), 1);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&keys[0]).unwrap()).unwrap();
    assert_eq!(json["params"], serde_json::json!({ "memory_kib": 65536, "iterations": 3, "parallelism": 4 }));
    repo.run(args!["snapshots"]).success();
}
