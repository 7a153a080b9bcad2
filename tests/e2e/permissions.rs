//! Private by default (issue 14, item 4): what cairn creates on local disk, a repository and the
//! metadata cache, is readable by its owner alone whatever the umask, or by its group too with
//! `init --group-readable`; `check` names files of a local repository that others can read.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::{Output, TestRepo, args, data};

/// Runs a prepared command under umask 000, so that only cairn's own choices keep files private.
fn under_umask_000(cmd: Command) -> Output {
    let mut sh = Command::new("sh");
    sh.arg("-c").arg("umask 000; exec \"$0\" \"$@\"").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.stdin(std::process::Stdio::null());
    Output::of(sh)
}

/// Every file and directory below `root` (and `root`), with its permission bits.
fn modes(root: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = vec![(root.to_path_buf(), std::fs::metadata(root).unwrap().permissions().mode() & 0o777, true)];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            out.push((entry.path(), meta.permissions().mode() & 0o777, meta.is_dir()));
            if meta.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    out
}

fn assert_modes(root: &Path, file: u32, dir: u32) {
    let all = modes(root);
    assert!(all.iter().any(|(_, _, is_dir)| !is_dir), "{} holds files", root.display());
    let wrong: Vec<String> = all
        .iter()
        .filter(|(_, mode, is_dir)| *mode != if *is_dir { dir } else { file })
        .map(|(p, mode, _)| format!("{} {mode:o}", p.display()))
        .collect();
    assert!(wrong.is_empty(), "expected files {file:o} and directories {dir:o} under {}:\n{wrong:#?}", root.display());
}

fn source(repo: &TestRepo) -> PathBuf {
    let src = repo.dir("src");
    data::write_random(&src.join("a.bin"), 1, 300_000);
    std::fs::create_dir_all(src.join("sub")).unwrap();
    data::write(&src.join("sub/b.txt"), b"hello\n");
    src
}

#[test]
fn a_repository_is_its_owners_alone_whatever_the_umask() {
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    let src = source(&repo);
    under_umask_000(repo.command(args!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"])).success();
    under_umask_000(repo.command(args!["backup", &src])).success();
    under_umask_000(repo.command(args!["key", "add"])).code(2); // no new password: refused, nothing written
    let mut add = repo.command(args!["key", "add"]);
    add.env("CAIRN_NEW_PASSWORD", "second");
    under_umask_000(add).success();
    assert_modes(repo.path(), 0o600, 0o700);
    let check = repo.run(args!["--json", "check"]);
    assert_eq!(check.success().json()["check"]["exposed"], serde_json::json!([]));
}

#[test]
fn a_group_readable_repository_lets_its_group_read_and_no_one_else() {
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    let src = source(&repo);
    under_umask_000(repo.command(args!["init", "--group-readable", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]))
        .success();
    under_umask_000(repo.command(args!["backup", &src])).success();
    assert_modes(repo.path(), 0o640, 0o750);
}

#[test]
fn the_metadata_cache_is_its_owners_alone() {
    // A store given latency is cached like a remote one, in the scratch directory.
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    let src = source(&repo);
    for a in
        [args!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"], args!["backup", &src], args!["ls", "latest"]]
    {
        let mut cmd = repo.command(a);
        cmd.env("CAIRN_TEST_FAULTS", "delay_ms=1");
        under_umask_000(cmd).success();
    }
    let cache = repo.scratch().join("cache");
    assert!(modes(&cache).iter().any(|(p, _, _)| p.to_string_lossy().contains("keys")), "key files are cached");
    assert_modes(&cache, 0o600, 0o700);
}

#[test]
fn check_names_files_of_the_repository_others_can_read() {
    let repo = TestRepo::init(env!("CARGO_BIN_EXE_cairn"));
    let key = std::fs::read_dir(repo.path().join("keys")).unwrap().flatten().next().unwrap().path();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = repo.run(args!["check"]);
    out.success().stderr_has(&format!("warning: {} can be read by other users", key.display()));
    let json = repo.run(args!["--json", "check"]);
    assert_eq!(json.success().json()["check"]["exposed"], serde_json::json!([key.display().to_string()]));
}
