//! The index as a mapped table in the local cache (issue 19, item 5; FORMAT.md §11a): backups
//! deduplicate through it, restores read through it, a prune that replaces index objects makes
//! it be built again, and a damaged table costs time, never bytes: a damaged header is not
//! used, and a blob that fails to read where damaged entries put it is read where the
//! repository's index objects put it.
//!
//! The CLI keeps a table only for indexes of a million blobs or more; these tests lower that
//! to none with `CAIRN_TEST_INDEX_TABLE_MIN=0`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cairn_tests::{TestRepo, args, assert_trees_equal, data};

use crate::restored;

/// A repository whose every run keeps the index as a table.
fn repo() -> TestRepo {
    let mut repo = crate::repo();
    repo.set_env("CAIRN_TEST_INDEX_TABLE_MIN", "0");
    repo
}

/// The table file of the repository (there is one repository id under `cache/index`).
fn table(repo: &TestRepo) -> PathBuf {
    let dir = repo.scratch().join("cache/index");
    let mut ids = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let id = ids.next().expect("a repository's directory").unwrap().path();
    assert!(ids.next().is_none(), "one repository");
    id.join("table")
}

/// Restores `snapshot` into a fresh directory and compares it with `src`.
fn restores_exactly(repo: &TestRepo, snapshot: &str, src: &Path, name: &str) {
    let target = repo.dir(name);
    repo.run(args!["restore", snapshot, "--target", &target]).success();
    assert_trees_equal(src, &restored(&target, src));
}

#[test]
fn backups_restores_prune_and_check_go_through_the_table() {
    let repo = repo();
    let src = repo.dir("src");
    let big = data::write_random(&src.join("big.bin"), 7, 3_000_000);
    data::write_random(&src.join("other.bin"), 8, 1_000_000);
    repo.backup(args![&src]);

    let path = table(&repo);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let written = std::fs::read(&path).unwrap();
    assert_eq!(&written[..8], b"CAIRNIT1");

    // A copy of the big file elsewhere in the tree: found through the table, not stored again.
    std::fs::create_dir_all(src.join("sub")).unwrap();
    data::write(&src.join("sub/copy.bin"), &big);
    data::write(&src.join("sub/new.txt"), b"a new file\n");
    let second = repo.backup(args![&src]);
    let s = &second["summary"];
    assert!(s["bytes_new"].as_u64().unwrap() < 100_000, "the copy is deduplicated: {second}");
    let second_id = second["snapshot"].as_str().unwrap().to_string();
    restores_exactly(&repo, &second_id, &src, "second");

    // The index objects the table holds are replaced by a prune: the next run builds it anew
    // from the objects there now, and everything still restores and checks.
    std::fs::remove_file(src.join("other.bin")).unwrap();
    let third = repo.backup(args![&src]);
    repo.run(args!["forget", "--keep-last", "1"]).success();
    let pruned = repo.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert!(pruned["stats"]["packs_marked"].as_u64().unwrap() > 0, "{pruned}");
    repo.run(args!["check", "--read-data"]).success();
    assert_ne!(std::fs::read(&path).unwrap(), written, "a new table after the prune");
    restores_exactly(&repo, third["snapshot"].as_str().unwrap(), &src, "third");
}

#[test]
fn a_damaged_table_is_built_again_and_restores_stay_exact() {
    let repo = repo();
    let src = repo.dir("src");
    data::write_random(&src.join("a.bin"), 1, 2_000_000);
    data::write(&src.join("b.txt"), b"some text\n");
    let snap = repo.backup(args![&src])["snapshot"].as_str().unwrap().to_string();
    let path = table(&repo);
    let good = std::fs::read(&path).unwrap();

    // Its header damaged: not used, built again, and the restore is exact.
    let mut bad = good.clone();
    bad[100] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();
    restores_exactly(&repo, &snap, &src, "after-header-damage");
    assert_ne!(std::fs::read(&path).unwrap(), bad, "written again");

    // Every entry's offset damaged (the checksum does not cover entries): no read where the
    // table says succeeds, the restore reads each blob where the repository's index objects
    // put it, and is exact; the table is removed, and the next run builds it again.
    let mut bad = std::fs::read(&path).unwrap();
    let entries = entry_count(&bad);
    let entries_at = bad.len() - (entries + alternate_count(&bad)) * 48;
    for e in 0..entries {
        let at = entries_at + e * 48 + 36;
        bad[at] ^= 0x01;
    }
    std::fs::write(&path, &bad).unwrap();
    restores_exactly(&repo, &snap, &src, "after-entry-damage");
    assert!(!path.exists(), "the damaged table is removed");
    restores_exactly(&repo, &snap, &src, "after-rebuild");
    let rebuilt = std::fs::read(&path).unwrap();
    assert_ne!(rebuilt, bad);
    assert_eq!(entry_count(&rebuilt), entries);
}

fn u64_at(table: &[u8], at: usize) -> usize {
    usize::try_from(u64::from_ne_bytes(table[at..at + 8].try_into().unwrap())).unwrap()
}

fn entry_count(table: &[u8]) -> usize {
    u64_at(table, 32)
}

fn alternate_count(table: &[u8]) -> usize {
    u64_at(table, 40)
}
