//! Restores that never destroy (issue 14, item 3): an existing file is replaced only as
//! `--overwrite` allows, `--delete` removes only what the snapshot lacks, a symbolic link in the
//! target is never followed, and a target inside the repository is refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cairn_tests::{TestRepo, args, data, exit};

use crate::{repo, restored};

/// A source with two files and a subdirectory, backed up; returns it.
fn backed_up(repo: &TestRepo) -> PathBuf {
    let src = repo.dir("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    data::write(&src.join("same.txt"), b"in the snapshot and unchanged\n");
    data::write(&src.join("changed.txt"), b"the snapshot's version\n");
    data::write(&src.join("sub/new.txt"), b"only in the snapshot\n");
    repo.backup([&src]);
    src
}

/// A target holding the snapshot's `same.txt` (same bytes and times), a `changed.txt` the user
/// changed since, and `extra.txt` and `extra-dir/` the snapshot does not have.
fn prepared_target(repo: &TestRepo, src: &Path, name: &str) -> PathBuf {
    let target = repo.dir(name);
    let dir = restored(&target, src);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("same.txt"), dir.join("same.txt")).unwrap();
    let times = std::fs::metadata(src.join("same.txt")).unwrap();
    filetime::set_file_mtime(dir.join("same.txt"), filetime::FileTime::from_last_modification_time(&times)).unwrap();
    data::write(&dir.join("changed.txt"), b"the user's newer version, not in any snapshot\n");
    data::write(&dir.join("extra.txt"), b"the user's own file\n");
    std::fs::create_dir_all(dir.join("extra-dir")).unwrap();
    data::write(&dir.join("extra-dir/x"), b"x\n");
    target
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn without_a_choice_existing_files_are_kept_named_and_the_exit_code_says_so() {
    let repo = repo();
    let src = backed_up(&repo);
    let target = prepared_target(&repo, &src, "t");
    let dir = restored(&target, &src);
    let out = repo.run(args!["restore", "latest", "--target", &target]);
    out.code(exit::PARTIAL).stderr_has(&dir.join("changed.txt").display().to_string());
    assert_eq!(read(&dir.join("changed.txt")), b"the user's newer version, not in any snapshot\n");
    assert_eq!(read(&dir.join("sub/new.txt")), b"only in the snapshot\n", "what was missing is restored");
    assert!(dir.join("extra.txt").exists() && dir.join("extra-dir/x").exists(), "nothing is deleted");
}

#[test]
fn never_keeps_existing_files_and_succeeds() {
    let repo = repo();
    let src = backed_up(&repo);
    let target = prepared_target(&repo, &src, "t");
    let dir = restored(&target, &src);
    let out = repo.run(args!["--json", "restore", "latest", "--overwrite", "never", "--target", &target]);
    let skipped = out.success().json()["skipped"].clone();
    assert_eq!(skipped.as_array().unwrap().len(), 2, "same.txt and changed.txt are kept: {skipped}");
    assert_eq!(read(&dir.join("changed.txt")), b"the user's newer version, not in any snapshot\n");
    assert_eq!(read(&dir.join("sub/new.txt")), b"only in the snapshot\n");
}

#[test]
fn if_changed_replaces_changed_files_only() {
    let repo = repo();
    let src = backed_up(&repo);
    let target = prepared_target(&repo, &src, "t");
    let dir = restored(&target, &src);
    let inode = std::fs::metadata(dir.join("same.txt")).unwrap().ino();
    let out = repo.run(args!["--json", "restore", "latest", "--overwrite", "if-changed", "--target", &target]);
    assert_eq!(out.success().json()["unchanged"], 1);
    assert_eq!(read(&dir.join("changed.txt")), read(&src.join("changed.txt")), "the changed file is replaced");
    assert_eq!(std::fs::metadata(dir.join("same.txt")).unwrap().ino(), inode, "the unchanged file is left alone");
    assert!(dir.join("extra.txt").exists());
}

#[test]
fn if_changed_with_verify_existing_compares_content_behind_equal_size_and_time() {
    let repo = repo();
    let src = backed_up(&repo);
    let target = prepared_target(&repo, &src, "t");
    let dir = restored(&target, &src);
    // Same size and modification time as the snapshot's, other bytes.
    let original = read(&src.join("same.txt"));
    let mut forged = original.clone();
    forged[0] ^= 0x20;
    std::fs::write(dir.join("same.txt"), &forged).unwrap();
    let times = std::fs::metadata(src.join("same.txt")).unwrap();
    filetime::set_file_mtime(dir.join("same.txt"), filetime::FileTime::from_last_modification_time(&times)).unwrap();
    repo.run(args!["restore", "latest", "--overwrite", "if-changed", "--target", &target]).success();
    assert_eq!(read(&dir.join("same.txt")), forged, "size and time match: left alone");
    repo.run(args!["restore", "latest", "--overwrite", "if-changed", "--verify-existing", "--target", &target])
        .success();
    assert_eq!(read(&dir.join("same.txt")), original, "the content differs: replaced");
}

#[test]
fn always_replaces_and_delete_removes_only_what_the_snapshot_lacks() {
    let repo = repo();
    let src = backed_up(&repo);
    let target = prepared_target(&repo, &src, "t");
    let dir = restored(&target, &src);
    repo.run(args!["restore", "latest", "--overwrite", "always", "--target", &target]).success();
    assert_eq!(read(&dir.join("changed.txt")), read(&src.join("changed.txt")));
    assert!(dir.join("extra.txt").exists(), "without --delete nothing is removed");
    let out = repo.run(args!["--json", "restore", "latest", "--overwrite", "always", "--delete", "--target", &target]);
    let deleted = out.success().json()["deleted"].clone();
    assert!(!dir.join("extra.txt").exists() && !dir.join("extra-dir").exists(), "{deleted}");
    assert_eq!(deleted.as_array().unwrap().len(), 2, "{deleted}");
    cairn_tests::assert_trees_equal(&src, &dir);
}

#[test]
fn a_symbolic_link_in_the_target_is_never_followed() {
    let repo = repo();
    let src = backed_up(&repo);
    let target = repo.dir("t");
    let outside = repo.dir("outside");
    let dir = restored(&target, &src);
    std::fs::create_dir_all(&dir).unwrap();
    // Where the snapshot has the directory `sub`, the target has a link to elsewhere.
    std::os::unix::fs::symlink(&outside, dir.join("sub")).unwrap();
    repo.run(args!["restore", "latest", "--target", &target]).code(exit::PARTIAL).stderr_has("sub");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing is written through the link");
    repo.run(args!["restore", "latest", "--overwrite", "always", "--target", &target]).success();
    assert!(std::fs::symlink_metadata(dir.join("sub")).unwrap().is_dir(), "the link is replaced by the directory");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn a_target_inside_the_repository_is_refused() {
    let repo = repo();
    let src = backed_up(&repo);
    for target in [repo.path().to_path_buf(), repo.path().join("restore"), repo.path().join("data/new/deeper")] {
        repo.run(args!["restore", "latest", "--target", &target]).code(exit::USAGE).stderr_has("inside the repository");
    }
    let before = std::fs::read_dir(repo.path()).unwrap().count();
    let holder = repo.path().parent().unwrap();
    repo.run(args!["restore", "latest", "--delete", "--overwrite", "always", "--target", holder])
        .code(exit::USAGE)
        .stderr_has("holds the repository");
    assert_eq!(std::fs::read_dir(repo.path()).unwrap().count(), before);
    assert!(src.exists());
}
