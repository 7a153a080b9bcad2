//! Faults between cairn and its store (issue 5): random transient failures, a permanent
//! failure midway, truncated downloads. Driven through the real binary with the
//! fault-injecting store (`CAIRN_TEST_FAULTS`, see `core/src/store/fault.rs`).

use std::path::{Path, PathBuf};

use cairn_core::store::ObjectKind;
use cairn_tests::corrupt::objects;
use cairn_tests::{Output, TestRepo, args, assert_trees_equal, data};
use serde_json::Value;

use crate::{repo, repo_with, restored};

/// The `init` options of these repositories: 64 KiB chunks, 1 MiB packs (several per backup).
const INIT: [&str; 4] = ["--chunk-avg-kib", "64", "--pack-size-mib", "1"];

fn with_faults(repo: &cairn_tests::TestRepo, faults: &str, a: Vec<std::ffi::OsString>) -> Output {
    let mut cmd = repo.command(a);
    cmd.env("CAIRN_TEST_FAULTS", faults);
    Output::of(cmd)
}

fn tree(repo: &cairn_tests::TestRepo, name: &str, seed: u64) -> std::path::PathBuf {
    let src = repo.dir(name);
    for i in 0..12 {
        data::write_random(&src.join(format!("f{i}.bin")), seed + i, 300_000 + (i as usize) * 7_000);
    }
    data::write(&src.join("notes.txt"), &data::text_bytes(seed, 200_000));
    src
}

/// Backup under 10% random request failures completes, and the snapshot restores exactly.
#[test]
fn backup_and_restore_survive_ten_percent_transient_failures() {
    let repo = repo_with(&["--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = tree(&repo, "src", 1);
    let faults = "fail_rate=0.1,seed=42";
    let out = with_faults(&repo, faults, args!["--json", "--retries", "20", "backup", &src]);
    out.success();
    // As from a local store (threads that read and decode), and from a distant one (a delay
    // on every request: downloads side by side, here through two buffers, feeding decoders).
    for (n, faults) in ["fail_rate=0.1,seed=7", "fail_rate=0.1,seed=8,delay_ms=1"].into_iter().enumerate() {
        let target = repo.dir(&format!("restore-{n}"));
        with_faults(
            &repo,
            faults,
            args!["--retries", "20", "--connections", "2", "restore", "latest", "--verify", "--target", &target],
        )
        .success();
        assert_trees_equal(&src, &restored(&target, &src));
    }
    repo.run(args!["check", "--read-data"]).success();
}

/// A permanent failure midway (a dying network: every put after the second is refused) leaves
/// no snapshot, keeps earlier snapshots intact, and the next backup completes. The failed
/// backup's index object is refused too, so nothing it uploaded can be reused: that is
/// `packs_uploaded_before_a_permanent_failure_are_reused_by_the_next_backup`.
#[test]
fn permanent_failure_midway_writes_no_snapshot_and_loses_nothing() {
    let repo = repo_with(&INIT);
    let first = tree(&repo, "first", 100);
    repo.backup(args![&first]);
    let second = tree(&repo, "second", 200);
    let out = with_faults(&repo, "fail_puts_after=2", args!["--retries", "0", "backup", &second]);
    out.failure().stderr_has("no snapshot was written");
    assert_eq!(repo.snapshots().len(), 1, "the failed backup must not leave a snapshot");
    // The earlier snapshot is whole.
    repo.run(args!["check", "--read-data"]).success();
    let target = repo.dir("restore-first");
    repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    assert_trees_equal(&first, &restored(&target, &first));
    // The next backup completes and restores exactly.
    repo.backup(args![&second]);
    let target2 = repo.dir("restore-second");
    repo.run(args!["restore", "latest", "--verify", "--target", &target2]).success();
    assert_trees_equal(&second, &restored(&target2, &second));
}

/// One pack upload refused for good midway, the store otherwise working: the backup fails
/// without a snapshot, but names the packs it uploaded before the failure in an index object
/// (core/src/repository/writer.rs), and the next backup of the same tree reuses them instead of
/// uploading them again: it stores less than the same backup into a fresh repository, by at
/// least what the failed backup uploaded.
#[test]
fn packs_uploaded_before_a_permanent_failure_are_reused_by_the_next_backup() {
    let repo = repo_with(&INIT);
    let first = tree(&repo, "first", 100);
    repo.backup(args![&first]);
    let second = tree(&repo, "second", 200);
    let n = third_pack_put(&repo, &second);
    let packs_before = objects(repo.path(), ObjectKind::Pack);
    let indexes_before = objects(repo.path(), ObjectKind::Index).len();
    let out = with_faults(&repo, &format!("fail_nth={n},trace=1"), args!["--retries", "0", "backup", &second]);
    out.failure().stderr_has("no snapshot was written");
    let refused = format!("store request {n} end ");
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&refused) && l.contains(" ms failed: put pack ")),
        "request {n} should have been the third pack upload, refused:\n{}",
        out.report()
    );
    assert_eq!(repo.snapshots().len(), 1, "the failed backup must not leave a snapshot");
    let uploaded: Vec<PathBuf> =
        objects(repo.path(), ObjectKind::Pack).into_iter().filter(|p| !packs_before.contains(p)).collect();
    assert_eq!(uploaded.len(), 2, "the packs uploaded before the failure are stored: {uploaded:?}");
    let uploaded_bytes: u64 = uploaded.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(
        objects(repo.path(), ObjectKind::Index).len(),
        indexes_before + 1,
        "the failed backup wrote an index object naming its packs\n{}",
        out.report()
    );
    repo.run(args!["check", "--read-data"]).success();

    // The same tree into a fresh repository created alike: everything is uploaded.
    let control = repo_with(&INIT);
    let fresh = control.backup(args![&second]);
    let report = repo.backup(args![&second]);
    let stored = |r: &Value| r["summary"]["bytes_stored"].as_u64().unwrap();
    // Chunk boundaries differ between repositories (the chunker is seeded per repository),
    // which moves the stored size by a few KiB at most.
    let saved = stored(&fresh).saturating_sub(stored(&report));
    assert!(
        saved + 64 * 1024 >= uploaded_bytes,
        "the next backup stored {} bytes, a fresh repository {}: {saved} saved, but the failed backup had \
         uploaded {uploaded_bytes} bytes that should have been reused\nreport: {report}\nfresh: {fresh}",
        stored(&report),
        stored(&fresh),
    );
    let target = repo.dir("restore-second");
    repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    assert_trees_equal(&second, &restored(&target, &second));
}

/// The number of the request (counting all kinds, as `fail_nth` does) with which a backup of
/// `src` into `repo` uploads its third pack: the backup rehearsed without faults on a copy of
/// the repository, which makes the same requests up to there.
fn third_pack_put(repo: &TestRepo, src: &Path) -> u64 {
    let rehearsal = TestRepo::uninitialized(repo.bin());
    copy_dir(repo.path(), rehearsal.path());
    let out = with_faults(&rehearsal, "trace=1", args!["--retries", "0", "backup", src]);
    out.success();
    let puts: Vec<u64> = out
        .stderr
        .lines()
        .filter(|l| l.contains(" start ") && l.contains(": put pack "))
        .filter_map(|l| l.strip_prefix("store request ")?.split(' ').next()?.parse().ok())
        .collect();
    assert!(puts.len() >= 4, "the backup should upload several packs:\n{}", out.report());
    puts[2]
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Responses cut short (issue 13, item 7) are read again like any transient failure: restore,
/// dump and `check --read-data` give exact bytes and a clean check, from a local store and from
/// a distant one (a delay on every request), whose downloads are a stage of their own.
#[test]
fn short_reads_are_read_again_and_everything_comes_back_exact() {
    let repo = repo_with(&INIT);
    let src = tree(&repo, "src", 3);
    repo.backup(args![&src]);
    for (seed, delay) in (0..4).map(|seed| (seed, if seed % 2 == 0 { "" } else { ",delay_ms=1" })) {
        let faults = format!("short_reads=0.3,seed={seed}{delay}");
        let target = repo.dir(&format!("restore-{seed}"));
        with_faults(&repo, &faults, args!["restore", "latest", "--verify", "--target", &target]).success();
        assert_trees_equal(&src, &restored(&target, &src));
        let dumped = with_faults(&repo, &faults, args!["dump", "latest", src.join("f3.bin")]);
        assert!(dumped.success().stdout == std::fs::read(src.join("f3.bin")).unwrap(), "dump {seed} differs");
        let check = with_faults(&repo, &faults, args!["check", "--read-data"]);
        let said = String::from_utf8_lossy(&check.success().stdout).into_owned();
        assert!(said.contains("no errors were found"), "{}", check.report());
    }
}

/// With no retries, a response cut short fails the command, and the message says what
/// happened: a short read, never a wrong password, tampering, damage or a missing object. What
/// a failed restore leaves behind is exact.
#[test]
fn an_unretried_short_read_is_named_as_one() {
    let repo = repo_with(&INIT);
    let src = tree(&repo, "src", 4);
    repo.backup(args![&src]);
    let mut failed = 0;
    for seed in 0..6 {
        let faults = format!("short_reads=0.2,seed={seed}");
        let target = repo.dir(&format!("restore-{seed}"));
        let out = with_faults(&repo, &faults, args!["--retries", "0", "restore", "latest", "--target", &target]);
        let check = with_faults(&repo, &faults, args!["--retries", "0", "check", "--read-data"]);
        for out in [&out, &check] {
            if out.code == Some(0) {
                continue;
            }
            failed += 1;
            out.stderr_has("short read");
            for blame in ["password", "tamper", "damaged", "corrupt", "not found", "missing"] {
                assert!(
                    !out.stderr.to_lowercase().contains(blame),
                    "a short read blamed as {blame:?}:\n{}",
                    out.report()
                );
            }
        }
        for entry in std::fs::read_dir(restored(&target, &src)).into_iter().flatten().flatten() {
            let original = std::fs::read(src.join(entry.file_name())).unwrap();
            assert!(
                std::fs::read(entry.path()).unwrap() == original,
                "{:?} restored with wrong bytes",
                entry.file_name()
            );
        }
    }
    assert!(failed > 0, "one short read in five must fail some of the twelve commands when nothing is read again");
}

/// A tree of `depth` levels below `root`, `fanout` directories in each, two small files in
/// every directory; returns how many directories it has (`root` included).
fn deep_tree(root: &std::path::Path, depth: u32, fanout: u32, seed: u64) -> usize {
    let mut dirs = 1;
    std::fs::create_dir_all(root).unwrap();
    data::write(&root.join("a.txt"), &data::text_bytes(seed, 3_000));
    data::write_random(&root.join("b.bin"), seed + 1, 5_000);
    if depth > 0 {
        for i in 0..fanout {
            dirs += deep_tree(&root.join(format!("d{i}")), depth - 1, fanout, seed * 31 + u64::from(i) + 2);
        }
    }
    dirs
}

/// Issue 5: restoring from a distant store waits a round trip per level of the hierarchy, not
/// per directory: a level's trees are fetched in coalesced ranged requests. With a delay on
/// every request the bytes are still exact. (Counts requests, not time: the trace names each.)
#[test]
fn r5_restore_fetches_trees_per_level_not_per_directory() {
    let repo = repo();
    let src = repo.dir("src");
    let dirs = deep_tree(&src, 3, 5, 9);
    assert_eq!(dirs, 156);
    repo.backup(args![&src]);
    let target = repo.dir("restore");
    let out = with_faults(&repo, "delay_ms=2,trace=1", args!["restore", "latest", "--verify", "--target", &target]);
    out.success();
    assert_trees_equal(&src, &restored(&target, &src));
    let ranged = out.stderr.lines().filter(|l| l.contains(" start ") && l.contains("get_range pack")).count();
    // One request per level (the levels above `src` included) and one for the file contents.
    let levels = src.components().count() + 4;
    assert!(
        ranged <= levels + 2,
        "{ranged} ranged requests for {dirs} directories in {levels} levels:\n{}",
        out.stderr
    );
    // A new snapshot's trees were written just before its root, in one small pack: they come
    // with the root's own request, and the file contents (one pack) with one more.
    assert!(ranged <= 3, "{ranged} ranged requests, expected the trees with the root's:\n{}", out.stderr);
}

/// Every file under `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() { out.extend(files_below(&path)) } else { out.push(path) }
    }
    out
}

/// Cached tree bytes are a copy, not the truth: when every cached range of a distant
/// repository's trees is damaged (same length, one bit flipped), listing and restoring read
/// the store again and put the cache right, never keeping the damage for the next run to meet.
/// (A local repository given latency is cached like a distant one.)
#[test]
fn damaged_cached_trees_are_read_again_from_the_store() {
    let repo = repo_with(&INIT);
    let src = repo.dir("src");
    deep_tree(&src, 2, 4, 3);
    repo.backup(args![&src]);
    let listing = with_faults(&repo, "delay_ms=1", args!["ls", "latest"]).success().stdout.clone();
    let target = repo.dir("restore");
    with_faults(&repo, "delay_ms=1", args!["restore", "latest", "--target", &target]).success();
    let cached: Vec<PathBuf> = files_below(&repo.scratch().join("cache"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/trees/"))
        .collect();
    assert!(cached.len() >= 2, "tree ranges are cached: {cached:?}");
    let good: Vec<Vec<u8>> = cached.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for (path, bytes) in cached.iter().zip(&good) {
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(path, bad).unwrap();
    }
    assert_eq!(with_faults(&repo, "delay_ms=1", args!["ls", "latest"]).success().stdout, listing);
    let again = repo.dir("restore-again");
    with_faults(&repo, "delay_ms=1", args!["restore", "latest", "--verify", "--target", &again]).success();
    assert_trees_equal(&src, &restored(&again, &src));
    for (path, bytes) in cached.iter().zip(&good) {
        if let Ok(now) = std::fs::read(path) {
            assert_eq!(&now, bytes, "{} is put right or dropped, never kept damaged", path.display());
        }
    }
}

/// Bytes a store hands back wrong for a moment are not damage: with the first two ranged reads
/// of a command (its first tree, from the cache and then from the store) coming back with a byte
/// changed, `ls`, `prune` and a restore read the store again and succeed, and `check` finds
/// nothing wrong. Bytes wrong every time are still damage (the test of damaged packs above).
#[test]
fn bytes_read_wrong_for_a_moment_are_read_again() {
    let repo = repo_with(&INIT);
    let src = repo.dir("src");
    deep_tree(&src, 2, 3, 2);
    repo.backup(args![&src]);
    let listing = repo.run(args!["ls", "latest"]).success().stdout.clone();
    for faults in ["garble_reads=2", "garble_reads=2,delay_ms=1"] {
        assert_eq!(with_faults(&repo, faults, args!["ls", "latest"]).success().stdout, listing, "{faults}");
        with_faults(&repo, faults, args!["prune"]).success();
        let target = repo.dir(&format!("restore-{}", faults.len()));
        with_faults(&repo, faults, args!["restore", "latest", "--verify", "--target", &target]).success();
        assert_trees_equal(&src, &restored(&target, &src));
    }
    repo.run(args!["check", "--read-data"]).success();
}
