//! Races of `race.rs` made deterministic: a backup is held at a chosen point while forget and
//! prune run, then let go. Whatever happens, a backup must either fail with "was removed while
//! this backup ran" or commit a snapshot that restores exactly, with `check --read-data` clean.
//! What it must never do is commit a snapshot whose data is gone or no longer indexed.
//!
//! The backups read `--stdin-from-command`: a shell script that prints part of the content, says
//! so with a file, and waits for another file before printing the rest. By the time the script
//! runs, `backup::run` has loaded the index (the command is started by the walk).

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::harness::{Cairn, PROCESS_LIMIT, REMOVED_WHILE_RUNNING, Rng, args, wait_output};

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

/// Lets the held backup go and judges the outcome.
fn release_and_judge(cairn: &Cairn, work: &Path, backup: Child, content: &[u8], scenario: &str) {
    std::fs::write(work.join("GO"), b"").unwrap();
    let out = wait_output(backup, "cairn backup --stdin-from-command … (big.bin)".into(), PROCESS_LIMIT);
    if !out.ok() {
        assert!(
            out.stderr.contains(REMOVED_WHILE_RUNNING),
            "the backup may only fail because a pack it depends on was removed:\n{}",
            out.describe()
        );
        cairn.run(args!["check", "--read-data"]).success();
        return;
    }
    // It committed: then its data must be there.
    let id = out.json()["snapshot"].as_str().unwrap().to_string();
    let check = cairn.run(args!["check", "--read-data"]);
    let target = work.join("restore");
    let restore = cairn.run(args!["restore", &id, "--target", &target]);
    let restored = std::fs::read(target.join("big.bin")).ok();
    let prune = cairn.run(args!["prune", "--grace", "0s"]);
    assert!(
        check.ok() && restore.ok() && restored.as_deref() == Some(content) && prune.ok(),
        "the backup committed snapshot {id} although {scenario}:\n\n{}\n\n{}\n\nrestored content matches: {}\n\n\
         a later prune: {}",
        check.describe(),
        restore.describe(),
        restored.as_deref() == Some(content),
        prune.describe(),
    );
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

    release_and_judge(
        &cairn,
        work,
        backup,
        &big,
        "the pack holding its data was swept while it ran (it deduplicated against the index it loaded at the start)",
    );
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
    // checkpoint naming its first 32 packs (backup.rs CHECKPOINT_PACKS), as a long backup does.
    // While it is held, up to one batch (8 MiB) and the chunker's buffer stay unpacked, so
    // 48 MiB guarantees the checkpoint whatever the timing.
    let mut rng = Rng::new(0xC4EC);
    let (first, rest) = (rng.bytes(48 << 20), rng.bytes(2 << 20));
    let mut backup = held_backup(&cairn, work, &first, &rest);
    wait_until("it wrote an index checkpoint", &mut backup, || index_objects() > 0);

    // A prune now sees packs in the index that no snapshot uses yet.
    let prune = cairn.run(args!["--json", "prune", "--grace", "2s"]).success().json();
    eprintln!("prune during the backup: {prune}");

    let mut content = first;
    content.extend_from_slice(&rest);
    release_and_judge(
        &cairn,
        work,
        backup,
        &content,
        "a prune running meanwhile took the packs of its index checkpoint out of the index \
         (no snapshot used them yet) and they are on a garbage list",
    );
}
