//! Write-only keys (issue 15, item 1): a host that backs up with one deduplicates against the
//! repository and skips unchanged files, and can read, forget, prune, rewrite or repair
//! nothing; the full key restores every byte it wrote.

use std::ffi::OsString;

use cairn_tests::{Output, TestRepo, args, assert_trees_equal, data, exit};

use crate::restored;

/// The password of the backup host's write-only key.
const HOST_PASSWORD: &str = "backup host, write only";

/// Runs `cairn ARGS` with the write-only key's password.
fn as_host(repo: &TestRepo, args: Vec<OsString>) -> Output {
    let mut cmd = repo.command(args);
    cmd.env("CAIRN_PASSWORD", HOST_PASSWORD);
    Output::of(cmd)
}

/// `cairn --json backup ARGS` with the write-only key, which must succeed.
fn host_backup(repo: &TestRepo, src: &std::path::Path) -> serde_json::Value {
    as_host(repo, args!["--json", "backup", src]).success().json()
}

/// Adds the write-only key; returns its id.
fn add_write_only_key(repo: &TestRepo) -> String {
    let mut add = repo.command(args!["--json", "key", "add", "--write-only"]);
    add.env("CAIRN_NEW_PASSWORD", HOST_PASSWORD);
    Output::of(add).success();
    let keys = repo.run(args!["--json", "key", "list"]).success().json();
    let keys = keys.as_array().expect("key list is an array");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let kinds: Vec<&str> = keys.iter().map(|k| k["kind"].as_str().unwrap_or_default()).collect();
    assert!(kinds.contains(&"full") && kinds.contains(&"write-only"), "{kinds:?}");
    let host = keys.iter().find(|k| k["kind"] == "write-only").expect("the write-only key is listed");
    host["id"].as_str().expect("an id").to_string()
}

/// What `check` counts: snapshots, index objects, packs and blobs.
fn counts(repo: &TestRepo) -> serde_json::Value {
    let c = repo.run(args!["--json", "check"]).success().json();
    serde_json::json!([c["snapshots"], c["index_objects"], c["packs"], c["blobs"]])
}

#[test]
fn a_write_only_host_backs_up_deduplicates_and_skips_unchanged_files_but_reads_nothing() {
    let repo = crate::repo();
    let src = repo.dir("src");
    let shared = data::write_random(&src.join("shared.bin"), 1, 2_000_000);
    std::fs::create_dir_all(src.join("sub")).unwrap();
    data::write_random(&src.join("sub/own.bin"), 2, 500_000);
    data::write(&src.join("sub/note.txt"), b"version one\n");
    // The full key stored the shared file first, elsewhere: the host finds it in the index.
    let elsewhere = repo.dir("elsewhere");
    data::write(&elsewhere.join("copy.bin"), &shared);
    repo.backup(args![&elsewhere]);
    let host_key = add_write_only_key(&repo);
    data::settle();

    let first = host_backup(&repo, &src);
    let s = &first["summary"];
    assert!(
        s["bytes_new"].as_u64().unwrap() < 700_000,
        "the 2 MB file the full key stored is not stored again: {first}"
    );
    // Nothing to compare with yet: every file is read.
    assert_eq!(s["files_new"], 3, "{first}");

    data::write(&src.join("sub/note.txt"), b"version two\n");
    let second = host_backup(&repo, &src);
    let s = &second["summary"];
    assert_eq!((s["files_unmodified"].as_u64(), s["files_changed"].as_u64()), (Some(2), Some(1)), "{second}");
    assert_eq!(s["bytes_read"], 12, "only the changed file is read, by the host's own record: {second}");
    assert_eq!(second["parent"], first["snapshot"], "{second}");

    // The record is the host's, private, and holds no plaintext.
    let record = repo.scratch().join("cache/own");
    assert_eq!(std::fs::metadata(&record).unwrap().permissions().mode() & 0o777, 0o700);
    let mut files = 0;
    for entry in walk(&record) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!contains(&bytes, b"note.txt") && !contains(&bytes, b"version"), "{} is in clear", entry.display());
        assert_eq!(std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777, 0o600);
        files += 1;
    }
    assert!(files >= 3, "a snapshot and its trees are recorded");

    // Whatever reads or changes what is stored is refused, with the write-only exit code,
    // and changes nothing.
    let before = counts(&repo);
    let snapshots = repo.snapshots();
    let target = repo.dir("host-restore");
    let refused: Vec<Vec<OsString>> = vec![
        args!["snapshots"],
        args!["restore", "latest", "--target", &target],
        args!["ls", "latest"],
        args!["dump", "latest", "/"],
        args!["find", "note.txt"],
        args!["diff", first["snapshot"].as_str().unwrap(), second["snapshot"].as_str().unwrap()],
        args!["forget", "--keep-last", "1", "--prune"],
        args!["prune", "--grace", "0s"],
        args!["rewrite", "--exclude", "sub", "latest"],
        args!["repair", "snapshots"],
        args!["check"],
        args!["key", "list"],
        args!["tenant", "add", "acme"],
    ];
    for command in refused {
        let what = format!("{command:?}");
        let out = as_host(&repo, command);
        out.code(exit::WRITE_ONLY_KEY);
        out.stderr_has("the key is write-only");
        assert!(!target.join("sub").exists(), "{what} restored something");
    }
    // Nor can it copy the backups off elsewhere.
    let offsite = crate::repo();
    let mut copy = repo.command(args!["copy", "--to", offsite.path()]);
    copy.env("CAIRN_PASSWORD", HOST_PASSWORD).env("CAIRN_TO_PASSWORD", cairn_tests::repo::PASSWORD);
    Output::of(copy).code(exit::WRITE_ONLY_KEY);
    assert!(offsite.snapshots().is_empty());
    assert_eq!(repo.snapshots(), snapshots, "nothing was forgotten");
    assert_eq!(counts(&repo), before, "no object was added or removed");

    // The full key reads every snapshot the host wrote, byte for byte.
    repo.run(args!["check", "--read-data"]).success();
    let out = repo.dir("restore");
    repo.run(args!["restore", "latest", "--verify", "--target", &out]).success();
    assert_trees_equal(&src, &restored(&out, &src));
    assert_eq!(
        repo.dump(first["snapshot"].as_str().unwrap(), &format!("{}/sub/note.txt", src.display())),
        b"version one\n"
    );

    // A lost record costs the next backup its change detection, not its deduplication.
    std::fs::remove_dir_all(&record).unwrap();
    let third = host_backup(&repo, &src);
    assert!(third["summary"]["bytes_new"].as_u64().unwrap() < 4096, "no file's data is stored again: {third}");
    assert_eq!(third["summary"]["files_new"], 3, "{third}");

    // The full key revokes the host: its password opens nothing after.
    repo.run(args!["key", "remove", &host_key]).success();
    as_host(&repo, args!["backup", &src]).code(exit::WRONG_PASSWORD);
}

/// A repository made before format version 3 (the version 1 fixture) takes a write-only key
/// after `cairn migrate`, and the host then deduplicates against what was stored before.
#[test]
fn an_older_repository_takes_write_only_keys_after_migrating() {
    let repo = crate::upgrade::fixture_repo();
    let mut add = repo.command(args!["key", "add", "--write-only"]);
    add.env("CAIRN_NEW_PASSWORD", HOST_PASSWORD);
    Output::of(add).code(exit::USAGE).stderr_has("cairn migrate");
    let out = repo.run(args!["--json", "migrate"]);
    out.success();
    assert!(out.json()["indexes_resealed"].as_u64().unwrap() >= 1, "{}", out.json());
    add_write_only_key(&repo);
    // What the fixture holds, restored, backed up again by the host: its data is found.
    let target = repo.dir("fixture");
    repo.run(args!["restore", "latest", "--target", &target]).success();
    let backup = host_backup(&repo, &target);
    let s = &backup["summary"];
    assert!(
        s["bytes_new"].as_u64().unwrap() * 2 < s["total_bytes"].as_u64().unwrap(),
        "the host reads the migrated index and stores none of the files' data again: {backup}"
    );
    let again = repo.dir("again");
    repo.run(args!["restore", "latest", "--verify", "--target", &again]).success();
    assert_trees_equal(&target, &restored(&again, &target));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

use std::os::unix::fs::PermissionsExt;

/// Issue 15, item 5: a copy host writes the off-site copy with a write-only key for it: it
/// copies, skips what it copied before (its own record), stores only new blobs, and cannot read
/// the copy; the copy's full key restores it exactly.
#[test]
fn a_copy_into_a_repository_through_its_write_only_key_adds_and_reads_nothing() {
    let primary = crate::repo();
    let offsite = crate::repo();
    add_write_only_key(&offsite);
    let src = primary.dir("src");
    data::write_random(&src.join("big.bin"), 5, 2_000_000);
    data::write(&src.join("note.txt"), b"one\n");
    primary.backup(args![&src]);
    let copy = |primary: &TestRepo| {
        let mut cmd = primary.command(args!["--json", "copy", "--to", offsite.path()]);
        cmd.env("CAIRN_TO_PASSWORD", HOST_PASSWORD);
        Output::of(cmd).success().json()
    };
    let first = copy(&primary);
    assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first}");
    data::write(&src.join("note.txt"), b"two\n");
    primary.backup(args![&src]);
    let second = copy(&primary);
    assert_eq!((second["copied"].as_array().unwrap().len(), second["skipped"].as_u64()), (1, Some(1)), "{second}");
    assert!(second["bytes_uploaded"].as_u64().unwrap() < 50_000, "only the new blobs are stored: {second}");
    let third = copy(&primary);
    assert_eq!((third["copied"].as_array().unwrap().len(), third["skipped"].as_u64()), (0, Some(2)), "{third}");
    as_host(&offsite, args!["snapshots"]).code(exit::WRITE_ONLY_KEY);
    offsite.run(args!["check", "--read-data"]).success();
    let target = offsite.dir("restore");
    offsite.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    assert_trees_equal(&src, &restored(&target, &src));
}

/// Issue 15, item 6: `key rotate` seals what is written after it under a new key generation.
/// Everything stays readable with the one key left; a key file copied before the rotation (a
/// revoked key's holder) still opens what was written before, and nothing written after.
#[test]
fn a_key_rotation_keeps_everything_readable_and_shuts_a_copied_old_key_out_of_what_follows() {
    let repo = crate::repo();
    let src = repo.dir("src");
    data::write(&src.join("a.txt"), b"before the rotation\n");
    let before = repo.backup(args![&src]);
    add_write_only_key(&repo);
    let saved = repo.dir("saved-keys");
    for entry in std::fs::read_dir(repo.path().join("keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), saved.join(entry.file_name())).unwrap();
    }
    let rotated = repo.run(args!["--json", "key", "rotate"]).success().json();
    assert_eq!(rotated["generation"], 1, "{rotated}");
    assert_eq!(rotated["removed"].as_array().unwrap().len(), 2, "every other key file goes: {rotated}");
    let keys = repo.run(args!["--json", "key", "list"]).success().json();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    as_host(&repo, args!["backup", &src]).code(exit::WRONG_PASSWORD);

    data::write(&src.join("a.txt"), b"after the rotation\n");
    let after = repo.backup(args![&src]);
    let a = format!("{}/a.txt", src.display());
    let id = |v: &serde_json::Value| v["snapshot"].as_str().unwrap().to_string();
    assert_eq!(repo.dump(&id(&before), &a), b"before the rotation\n");
    assert_eq!(repo.dump(&id(&after), &a), b"after the rotation\n");
    repo.run(args!["check", "--read-data"]).success();

    // The old key files put back, as someone who kept a copy would.
    for entry in std::fs::read_dir(&saved).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), repo.path().join("keys").join(entry.file_name())).unwrap();
    }
    let mut old = repo.command(args!["--json", "snapshots"]);
    old.env("CAIRN_PASSWORD", cairn_tests::repo::PASSWORD).env("CAIRN_CACHE_DIR", repo.dir("other-cache"));
    // The same password opens both the new key file and the old one; the old one is tried
    // too when it comes first, so ask with it alone.
    let new_key = keys[0]["id"].as_str().unwrap().to_string();
    std::fs::rename(repo.path().join("keys").join(&new_key), repo.dir("aside").join(&new_key)).unwrap();
    let listed = Output::of(old);
    listed.success().stderr_has("unreadable");
    let ids: Vec<String> =
        listed.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, vec![id(&before)], "the old key reads only what was written before");
    let mut dump = repo.command(args!["dump", id(&after), &a]);
    dump.env("CAIRN_CACHE_DIR", repo.dir("other-cache"));
    Output::of(dump).code(exit::DAMAGED);
}

/// Issue 15 (left over): `cairn run --policy` on a backup host holding a write-only key backs
/// up what is due, judged by its own runs' records since it lists no snapshot, and does nothing
/// that needs a full key; the operator's run with the full key does the rest.
#[test]
fn a_policy_run_with_a_write_only_key_backs_up_and_leaves_the_rest_to_a_full_key() {
    let repo = crate::repo();
    let src = repo.dir("src");
    data::write_random(&src.join("a"), 1, 100_000);
    add_write_only_key(&repo);
    let file = repo.scratch().join("policy.toml");
    let policy = format!(
        "[repository]\nurl = \"{}\"\n[[source]]\nname = \"files\"\npaths = [\"{}\"]\nevery = \"1d\"\nrpo = \"26h\"\n\
         [retention]\ntiers = [\"1d:7d\"]\n[check]\nevery = \"1d\"\n",
        repo.path().display(),
        src.display()
    );
    std::fs::write(&file, policy).unwrap();
    let run = |full: bool, when: &str, json: bool| {
        let mut args = args!["run", "--policy", &file];
        if json {
            args.insert(0, "--json".into());
        }
        let mut cmd = repo.command(args);
        if !full {
            cmd.env("CAIRN_PASSWORD", HOST_PASSWORD);
        }
        cmd.env("CAIRN_TEST_NOW", when);
        let out = Output::of(cmd);
        out.success();
        out
    };
    let kinds = |record: &serde_json::Value| -> Vec<String> {
        let steps = record["steps"].as_array().unwrap();
        steps.iter().map(|s| format!("{} {}", s["kind"].as_str().unwrap(), s["target"].as_str().unwrap())).collect()
    };

    let first = run(false, "2026-01-01T00:00:00Z", false);
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(said.contains("backup files: ") && said.contains("left to a run with a full key"), "{said}");
    let again = run(false, "2026-01-01T06:00:00Z", true).json();
    assert_eq!(kinds(&again), Vec::<String>::new(), "backed up 6 h ago by its own run: {again}");
    let next_day = run(false, "2026-01-02T00:00:00Z", true).json();
    assert_eq!(kinds(&next_day), ["backup files"], "{next_day}");
    assert_eq!(repo.snapshots().len(), 2, "both backups are in the repository");

    // The operator's run: the backup is not due (the host's snapshot is an hour old); the
    // retention, prune and check the host left are.
    let operator = run(true, "2026-01-02T01:00:00Z", true).json();
    assert_eq!(kinds(&operator), ["forget ", "prune ", "check "], "{operator}");
    assert!(operator["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{operator}");
}
