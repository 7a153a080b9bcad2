//! Races of `race.rs` made deterministic: a backup is held at a chosen point while forget and
//! prune run, then let go. Each arrangement has one correct outcome, and the test asserts it:
//! a backup whose reused pack was swept fails with "was removed while this backup ran" and
//! writes no snapshot; a backup whose index checkpoint a prune took out of the index commits a
//! snapshot that restores exactly. Either way `check --read-data` is clean afterwards.
//!
//! The backups read `--stdin-from-command`: a shell script that prints part of the content, says
//! so with a file, and waits for another file before printing the rest. By the time the script
//! runs, `backup::run` has loaded the index (the command is started by the walk).

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::harness::{Cairn, Output, PROCESS_LIMIT, REMOVED_WHILE_RUNNING, Rng, args, wait_output};

/// Waits until `ready()`, failing if the backup exits first.
fn wait_until(what: &str, child: &mut Child, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the backup exited ({status}) before {what}");
        }
        assert!(started.elapsed() < Duration::from_secs(180), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A stream backup of `first` then (after `GO` appears in `work`) `rest`, saved as `big.bin`.
/// `STARTED` appears in `work` once the source command runs.
fn held_backup(cairn: &Cairn, work: &Path, first: &[u8], rest: &[u8]) -> Child {
    let (part1, part2) = (work.join("part1"), work.join("part2"));
    std::fs::write(&part1, first).unwrap();
    std::fs::write(&part2, rest).unwrap();
    let script = format!(
        "touch '{started}'; cat '{part1}'; while [ ! -e '{go}' ]; do sleep 0.05; done; cat '{part2}'",
        started = work.join("STARTED").display(),
        go = work.join("GO").display(),
        part1 = part1.display(),
        part2 = part2.display(),
    );
    let backup =
        args!["--json", "backup", "--stdin-from-command", "--stdin-filename", "big.bin", "--", "sh", "-c", script];
    cairn.command(&backup, &[]).spawn().unwrap()
}

/// Lets the held backup go and waits for it.
fn release(work: &Path, backup: Child) -> Output {
    std::fs::write(work.join("GO"), b"").unwrap();
    wait_output(backup, "cairn backup --stdin-from-command … (big.bin)".into(), PROCESS_LIMIT)
}

/// Asserts that snapshot `id` restores `big.bin` as exactly `content`.
#[track_caller]
fn assert_restores(cairn: &Cairn, work: &Path, id: &str, content: &[u8], when: &str) {
    let target = work.join(format!("restore-{}", when.replace(' ', "-")));
    let restore = cairn.run(args!["restore", id, "--target", &target]);
    assert!(restore.ok(), "snapshot {id} does not restore {when}:\n{}", restore.describe());
    let restored = std::fs::read(target.join("big.bin")).unwrap();
    assert!(
        restored == content,
        "snapshot {id} restores {} bytes {when}, not the {} backed up",
        restored.len(),
        content.len()
    );
}

/// The ids of the snapshots in the repository.
fn snapshot_ids(cairn: &Cairn) -> Vec<String> {
    let list = cairn.run(args!["--json", "snapshots"]).success().json();
    list.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

// See: issue 6 ("a blob a running backup reuses must never be deleted").
#[test]
fn r6_backup_deduplicating_against_a_swept_pack_never_commits_missing_data() {
    let work = tempfile::Builder::new().prefix("cairn-swept-").tempdir().unwrap();
    let work = work.path();
    let cairn = Cairn::local(&work.join("repo"));
    cairn.init();

    // S1 holds `big.bin`; S2 of the same path does not, and forget leaves only S2.
    let src = work.join("src");
    std::fs::create_dir(&src).unwrap();
    let big = Rng::new(0xB16).bytes(600 * 1024);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let s1 = cairn.run(args!["--json", "backup", &src]).success().json()["snapshot"].as_str().unwrap().to_string();
    std::fs::remove_file(src.join("big.bin")).unwrap();
    std::fs::write(src.join("small.txt"), b"only this now").unwrap();
    cairn.run(args!["backup", &src]).success();
    let forget = cairn.run(args!["--json", "forget", "--keep-last", "1"]).success().json();
    assert_eq!(forget["removed"], serde_json::json!([s1]), "forget removes S1 only");

    // A backup of the same bytes starts and loads the index, which still names S1's packs.
    let mut backup = held_backup(&cairn, work, &[], &big);
    wait_until("its source command started", &mut backup, || work.join("STARTED").exists());

    // Meanwhile: prune marks S1's packs, and the next prune (no grace) deletes them.
    let first = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert!(first["stats"]["packs_marked"].as_u64().unwrap() >= 1, "S1's packs are marked: {first}");
    let second = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert!(second["stats"]["packs_deleted"].as_u64().unwrap() >= 1, "S1's packs are swept: {second}");

    // The backup deduplicated every chunk against the index it loaded, whose pack is gone: it
    // must fail (core/src/repository/writer.rs `check_dependencies`), writing no snapshot.
    let out = release(work, backup);
    assert!(
        out.code == Some(cairn_tests::exit::CONFLICT) && out.stderr.contains(REMOVED_WHILE_RUNNING),
        "the pack holding the backup's data was swept while it ran; the backup must fail with \
         {REMOVED_WHILE_RUNNING:?}:\n{}",
        out.describe()
    );
    let snapshots = snapshot_ids(&cairn);
    assert_eq!(snapshots.len(), 1, "only S2 is left: the failed backup wrote no snapshot: {snapshots:?}");
    cairn.run(args!["check", "--read-data"]).success();

    // Nothing claims the swept data any more: the same backup run again stores it anew.
    let again = args![
        "--json",
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "big.bin",
        "--",
        "cat",
        work.join("part2")
    ];
    let id = cairn.run(again).success().json()["snapshot"].as_str().unwrap().to_string();
    cairn.run(args!["check", "--read-data"]).success();
    assert_restores(&cairn, work, &id, &big, "after the backup was run again");
}

// See: issue 6 ("a blob a running backup reuses must never be deleted"): nor one it uploaded.
#[test]
fn r6_prune_during_a_long_backup_keeps_what_the_backup_already_indexed() {
    let work = tempfile::Builder::new().prefix("cairn-checkpoint-").tempdir().unwrap();
    let work = work.path();
    let cairn = Cairn::local(&work.join("repo"));
    cairn.init();
    let index_objects = || std::fs::read_dir(work.join("repo/index")).map_or(0, Iterator::count);
    assert_eq!(index_objects(), 0);

    // Enough incompressible data for more than 32 packs of 1 MiB: the backup writes an index
    // checkpoint naming its first 32 packs (backup/mod.rs CHECKPOINT_PACKS), as a long backup
    // does. While it is held, up to one batch (8 MiB) and the chunker's buffer stay unpacked, so
    // 48 MiB guarantees the checkpoint whatever the timing.
    let mut rng = Rng::new(0xC4EC);
    let (first, rest) = (rng.bytes(48 << 20), rng.bytes(2 << 20));
    let mut backup = held_backup(&cairn, work, &first, &rest);
    wait_until("it wrote an index checkpoint", &mut backup, || index_objects() > 0);

    // Prune measures a pack's age against the newest object in the store, not this machine's
    // clock: another backup finishing 2.5 s after the checkpoint (as another machine's would)
    // makes the checkpoint's packs older than the grace period.
    std::thread::sleep(Duration::from_millis(2500));
    let other = work.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("note.txt"), b"another machine's backup").unwrap();
    cairn.run(args!["backup", &other]).success();

    // A prune now finds the checkpoint's packs old, used by no snapshot: it takes them out of
    // the index and puts them on a garbage list.
    let prune = cairn.run(args!["--json", "prune", "--grace", "2s"]).success().json();
    let marked = prune["stats"]["packs_marked"].as_u64().unwrap();
    assert!(marked >= 32, "the prune should have taken the checkpoint's 32 packs out of the index: {prune}");

    // The backup names them in an index object again before its snapshot (core/src/repository/writer.rs
    // `check_dependencies`): it commits, and the snapshot restores exactly.
    let mut content = first;
    content.extend_from_slice(&rest);
    let out = release(work, backup);
    assert!(
        out.ok(),
        "a prune took the packs of the backup's index checkpoint out of the index (no snapshot used \
         them yet) and put them on a garbage list; they are still stored, so the backup must commit:\n{}",
        out.describe()
    );
    let id = out.json()["snapshot"].as_str().unwrap().to_string();
    cairn.run(args!["check", "--read-data"]).success();
    assert_restores(&cairn, work, &id, &content, "after the prune");

    // The garbage list still names those packs: the next prune (no grace) sweeps it and must
    // delete none of them.
    let sweep = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert_eq!(sweep["stats"]["packs_deleted"], 0, "the sweep deleted packs the snapshot uses: {sweep}");
    cairn.run(args!["check", "--read-data"]).success();
    assert_restores(&cairn, work, &id, &content, "after the sweep");
}
