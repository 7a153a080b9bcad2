//! Data packs in an archive storage class (issue 15, item 4). No local server emulates S3's
//! archive tiers, so the fault-injecting store plays one (`archive=DIR,archive_ms=W`): packs put
//! in `DEEP_ARCHIVE` refuse reads until a warm-up is requested and W milliseconds have passed.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use cairn_tests::{Output, TestRepo, args, assert_trees_equal, data, exit};

use crate::restored;

/// Runs `cairn ARGS` against `repo` through the archive emulation kept in `state`.
fn cold(repo: &TestRepo, state: &Path, args: Vec<OsString>) -> Output {
    let mut cmd = repo.command(args);
    cmd.env("CAIRN_TEST_FAULTS", format!("archive={},archive_ms=1500", state.display()));
    Output::of(cmd)
}

/// The packs warm-up was asked for so far (each once, however often it was asked).
fn requested(state: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(state.join("requests")).unwrap_or_default();
    text.lines().map(|l| l.split(' ').next().unwrap_or_default().to_string()).collect()
}

fn archived(state: &Path) -> usize {
    std::fs::read_dir(state)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".archived"))
        .count()
}

#[test]
fn a_restore_warms_up_exactly_the_archived_packs_it_reads_and_resumes() {
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    let state = repo.dir("archive-state");
    let init = args![
        "init",
        "--data-storage-class",
        "DEEP_ARCHIVE",
        "--pack-size-mib",
        "1",
        "--chunk-avg-kib",
        "64",
        "--kdf-memory-kib",
        "64"
    ];
    cold(&repo, &state, init).success();
    let src = repo.dir("src");
    // a.bin is backed up before b.bin exists, so no pack holds chunks of both: two files of
    // one backup are stored side by side and may share packs.
    data::write_random(&src.join("a.bin"), 1, 2_500_000);
    cold(&repo, &state, args!["backup", &src]).success();
    data::write_random(&src.join("b.bin"), 2, 2_500_000);
    cold(&repo, &state, args!["backup", &src]).success();
    let packs = archived(&state);
    assert!(packs >= 4, "the data packs are archived: {packs}");

    // Listing and planning never touch a cold object, so nothing is asked for.
    for command in
        [args!["snapshots"], args!["ls", "latest"], args!["check"], args!["forget", "--keep-last", "5", "--dry-run"]]
    {
        cold(&repo, &state, command).success();
    }
    assert!(requested(&state).is_empty());
    // A command that reads data says what is wrong.
    let dumped = cold(&repo, &state, args!["dump", "latest", src.join("a.bin")]);
    dumped.code(exit::ARCHIVED).stderr_has("archived");

    // Asked without waiting: exactly the packs holding a.bin, none of b.bin's.
    let target = repo.dir("one");
    let one = args!["restore", "latest", "--include", src.join("a.bin"), "--target", &target];
    let mut first = one.clone();
    first.push("--no-wait".into());
    cold(&repo, &state, first).code(exit::ARCHIVED).stderr_has("requested");
    let asked = requested(&state);
    assert!(!asked.is_empty() && asked.len() < packs, "{} of {packs} packs asked for: {asked:?}", asked.len());
    assert!(!restored(&target, &src).join("a.bin").exists(), "no file is written before its packs are warm");

    // Run again, waiting: it asks again (harmless), waits out the rest, and restores a.bin.
    let mut again = one;
    again.extend(args!["--warm-up-poll", "1", "--warm-up-tier", "bulk", "--json"]);
    let out = cold(&repo, &state, again);
    out.success();
    assert_eq!(requested(&state), asked, "no other pack was asked for");
    assert_eq!(out.json()["warmed"]["cold"].as_u64(), Some(asked.len() as u64), "{}", out.json());
    assert!(std::fs::read_to_string(state.join("requests")).unwrap().contains(" Bulk 1"));
    assert_eq!(out.json()["warmed"]["requested"].as_u64(), Some(asked.len() as u64), "asked once each per run");
    let got = restored(&target, &src);
    assert_eq!(std::fs::read(got.join("a.bin")).unwrap(), std::fs::read(src.join("a.bin")).unwrap());
    assert!(!got.join("b.bin").exists());

    // The whole snapshot warms up the rest and comes back exactly.
    let all = repo.dir("all");
    cold(&repo, &state, args!["restore", "latest", "--warm-up-poll", "1", "--target", &all]).success();
    assert_eq!(requested(&state).len(), packs, "every data pack, each asked for");
    assert_trees_equal(&src, &restored(&all, &src));
}
