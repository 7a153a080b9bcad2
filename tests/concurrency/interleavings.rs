//! Races of `race.rs` made deterministic: a backup is held at a chosen point while forget and
//! prune run, then let go. Each arrangement has one correct outcome, and the test asserts it:
//! the packs a running backup may reuse are held for it however short the grace period (its
//! session marker), and it commits a snapshot that restores exactly; a killed backup's marker
//! holds nothing once stale; a backup whose index checkpoint a prune took out of the index
//! commits a snapshot that restores exactly. Each time `check --read-data` is clean afterwards.
//!
//! The backups read `--stdin-from-command`: a shell script that prints part of the content, says
//! so with a file, and waits for another file before printing the rest. By the time the script
//! runs, `backup::run` has loaded the index (the command is started by the walk).

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::harness::{Cairn, Output, PROCESS_LIMIT, Rng, args, wait_output};

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

/// S1 holds `big.bin`; S2 of the same path does not, and forget leaves only S2: S1's packs
/// are garbage for the next prune. Returns the content and S1's id.
fn forgotten_big_file(cairn: &Cairn, work: &Path) -> (Vec<u8>, String) {
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
    (big, s1)
}

// See: issue 6 ("a blob a running backup reuses must never be deleted"), and issue 14 item 5
// (a backup that outlives the grace period).
#[test]
fn r6_a_running_backup_holds_the_packs_it_may_reuse_whatever_the_grace() {
    let work = tempfile::Builder::new().prefix("cairn-held-").tempdir().unwrap();
    let work = work.path();
    let cairn = Cairn::local(&work.join("repo"));
    cairn.init();
    let (big, _) = forgotten_big_file(&cairn, work);

    // A backup of the same bytes starts and loads the index, which still names S1's packs.
    let mut backup = held_backup(&cairn, work, &[], &big);
    wait_until("its source command started", &mut backup, || work.join("STARTED").exists());

    // Meanwhile: prune takes S1's packs out of the index; the next prune, with no grace at
    // all, would delete them, but the running backup's session marker holds their list.
    let first = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert!(first["stats"]["packs_marked"].as_u64().unwrap() >= 1, "S1's packs are marked: {first}");
    let second = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert_eq!(second["stats"]["packs_deleted"].as_u64(), Some(0), "nothing is swept under the backup: {second}");
    assert!(second["stats"]["lists_held"].as_u64().unwrap() >= 1, "the list is held for it: {second}");

    // The backup deduplicated every chunk against those packs: it commits a snapshot that
    // restores exactly (its own check indexes them again).
    let out = release(work, backup);
    assert!(out.ok(), "the backup must succeed:\n{}", out.describe());
    let id = out.json()["snapshot"].as_str().unwrap().to_string();
    assert_restores(&cairn, work, &id, &big, "after the prunes");
    assert_eq!(snapshot_ids(&cairn).len(), 2, "S2 and the new snapshot");
    // Once the backup has ended the list is no longer held: the next prune sweeps it, keeping
    // what the new snapshot needs.
    let third = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert_eq!(third["stats"]["lists_held"].as_u64(), Some(0), "{third}");
    cairn.run(args!["check", "--read-data"]).success();
    assert_restores(&cairn, work, &id, &big, "after the sweep");
}

/// A backup killed while it runs leaves its session marker behind; prunes hold the lists it
/// could have needed only until the marker is stale (not refreshed for ten minutes by the
/// store's clock), then delete the marker and sweep as usual: no lock outlives a crash.
#[test]
fn r6_a_crashed_backup_holds_nothing_once_its_marker_is_stale() {
    let work = tempfile::Builder::new().prefix("cairn-crashed-").tempdir().unwrap();
    let work = work.path();
    let cairn = Cairn::local(&work.join("repo"));
    cairn.init();
    let (big, _) = forgotten_big_file(&cairn, work);
    let mut backup = held_backup(&cairn, work, &[], &big);
    wait_until("its source command started", &mut backup, || work.join("STARTED").exists());
    backup.kill().unwrap();
    backup.wait().unwrap();
    std::fs::write(work.join("GO"), b"").unwrap(); // lets the orphaned source command end
    let markers: Vec<_> = std::fs::read_dir(work.join("repo/sessions")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(markers.len(), 1, "the killed backup left its marker");

    cairn.run(args!["prune", "--grace", "0s"]).success();
    let held = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert!(held["stats"]["lists_held"].as_u64().unwrap() >= 1, "a fresh marker holds: {held}");
    // Ten minutes and a second later, by the store's clock (the marker's file time).
    let stale = filetime::FileTime::from_unix_time(filetime::FileTime::now().unix_seconds() - 601, 0);
    filetime::set_file_mtime(&markers[0], stale).unwrap();
    let swept = cairn.run(args!["--json", "prune", "--grace", "0s"]).success().json();
    assert_eq!(swept["stats"]["sessions_stale"].as_u64(), Some(1), "{swept}");
    assert!(swept["stats"]["packs_deleted"].as_u64().unwrap() >= 1, "S1's packs are swept: {swept}");
    assert!(!markers[0].exists(), "the stale marker is deleted");
    cairn.run(args!["check", "--read-data"]).success();
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
