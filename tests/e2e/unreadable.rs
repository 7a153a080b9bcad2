//! A source file the backup cannot read: named on stderr, left out of the snapshot, exit code 3
//! (issue 2, item 3; README "Exit codes").
//!
//! Root reads any file whatever its mode, and the suite runs as root, so this one backup runs
//! as `nobody` (setpriv) over a source and repository that user can reach.

use std::os::unix::fs::PermissionsExt;

use cairn_tests::compare::{CompareOptions, assert_trees_equal_with, wrong_files};
use cairn_tests::system::{NOBODY, as_user, chown_tree};
use cairn_tests::{Output, args, data};
use serde_json::json;

use crate::{repo, spec};

#[test]
fn unreadable_file_and_directory_are_named_and_left_out_with_exit_code_3() {
    let repo = repo();
    let src = repo.dir("src");
    let ok = src.join("ok");
    std::fs::create_dir_all(ok.join("sub")).unwrap();
    let big = data::write_random(&ok.join("big.bin"), 21, 3 << 20);
    data::write(&ok.join("sub/small.txt"), b"readable\n");
    data::write(&src.join("secret.key"), b"only root may read this\n");
    std::fs::set_permissions(src.join("secret.key"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::create_dir(src.join("locked")).unwrap();
    data::write(&src.join("locked/inside.txt"), b"behind a closed door\n");
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
    // nobody must reach the source and own the repository.
    std::fs::set_permissions(repo.scratch(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_tree(repo.path(), NOBODY, NOBODY);

    let backup = Output::of(as_user(&repo.command(args!["--json", "backup", &src]), NOBODY, NOBODY));
    backup.code(3).stderr_has("secret.key").stderr_has("locked");
    let report = backup.json();
    let errors = report["summary"]["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 2, "{report:#}");
    assert!(errors.iter().any(|e| e.as_str().unwrap().contains("secret.key")), "{report:#}");
    assert!(errors.iter().any(|e| e.as_str().unwrap().contains("locked")), "{report:#}");
    // The counters count what was stored: the unreadable file is not a new one (issue 17).
    assert_eq!(report["summary"]["files_new"], 2, "big.bin and small.txt: {report:#}");

    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1, "the backup still made its snapshot");
    assert_eq!(snaps[0]["summary"]["errors"], json!(errors));
    let listed = repo.run(["ls", "latest", &src.display().to_string()]).success().stdout_text();
    assert!(!listed.contains("secret.key"), "{listed}");
    assert!(!listed.contains("inside.txt"), "{listed}");
    assert!(listed.contains("ok/big.bin"), "{listed}");

    // Back as root: what was readable restores exactly, the rest is absent.
    let target = repo.scratch().join("restore");
    repo.run(args!["restore", spec("latest", &src), "--verify", "--target", &target]).success();
    assert!(!target.join("secret.key").exists());
    assert!(!target.join("locked/inside.txt").exists());
    assert!(wrong_files(&src, &target).is_empty());
    assert_eq!(std::fs::read(target.join("ok/big.bin")).unwrap(), big);
    assert_trees_equal_with(&ok, &target.join("ok"), &CompareOptions::default());
}

/// A file that keeps changing while it is read (issue 14, item 2): read again, then stored as
/// last read, named on stderr and in the snapshot's summary, and the backup exits 3, never 0
/// over data known to be inconsistent. The other files are stored exactly.
#[test]
fn a_file_changing_while_it_is_read_is_named_and_the_exit_code_is_3() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let repo = repo();
    let src = repo.dir("src");
    data::write_random(&src.join("steady.bin"), 7, 200_000);
    let growing = src.join("growing.log");
    data::write_random(&growing, 8, 4 << 20);
    let stop = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let mut f = std::fs::OpenOptions::new().append(true).open(&growing).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"one more line of log\n").unwrap();
            }
        });
        let out = repo.run(args!["--json", "backup", &src]);
        stop.store(true, Ordering::Relaxed);
        out
    });
    out.code(cairn_tests::exit::PARTIAL)
        .stderr_has("kept changing while they were read")
        .stderr_has(&growing.display().to_string());
    let summary = &out.json()["summary"];
    assert_eq!(summary["changed"], json!([growing.display().to_string()]), "{summary}");
    // The steady file is whole; the growing one holds a prefix of what it holds now.
    let steady = repo.dump("latest", &src.join("steady.bin").display().to_string());
    assert!(steady == std::fs::read(src.join("steady.bin")).unwrap());
    let stored = repo.dump("latest", &growing.display().to_string());
    let now = std::fs::read(&growing).unwrap();
    assert!(stored.len() >= 4 << 20 && now.starts_with(&stored), "stored {} bytes of {}", stored.len(), now.len());
}
