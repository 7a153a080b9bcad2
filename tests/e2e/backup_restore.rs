//! Backup → restore of the edge-case tree, and the ways of reading a snapshot back: subpaths,
//! include/exclude, `ls`, `dump`, `snapshots --json`, and the options recorded at backup.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use cairn_tests::compare::{CompareOptions, assert_trees_equal_with, compare_trees};
use cairn_tests::fixture::{OTHER_GID, OTHER_UID, build_edge_tree};
use cairn_tests::{args, assert_trees_equal, data};
use serde_json::json;

use crate::{repo, restored, spec};

const CONTENTS_ONLY: CompareOptions =
    CompareOptions { root_metadata: false, sparse_slack: cairn_tests::compare::SPARSE_SLACK };

#[test]
fn edge_tree_round_trips_exactly() {
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    let report = repo.backup([&tree.root]);
    assert_eq!(report["summary"]["errors"], json!([]), "{report:#}");
    assert_eq!(report["summary"]["files_new"], json!(tree.file_inodes), "{report:#}");
    // sparse.img's holes are found with SEEK_HOLE and chunked as zeros without being read.
    let holes = report["summary"]["bytes_in_holes"].as_u64().unwrap_or(0);
    assert!(holes >= cairn_tests::fixture::SPARSE_LEN - (1 << 20), "holes not read: {report:#}");
    let read = report["summary"]["bytes_read"].as_u64().unwrap();
    let total = report["summary"]["total_bytes"].as_u64().unwrap();
    assert!(read + holes <= total, "what holes hold is not also read: {report:#}");

    // With --verify metadata is set after the check; without, by the thread that writes a
    // file's last blob (or, for files with nothing to write, after all content).
    for verify in [true, false] {
        let target = repo.scratch().join(format!("restore-{verify}"));
        let mut a = args!["--json", "restore", "latest", "--target", &target];
        if verify {
            a.push("--verify".into());
        }
        let summary = repo.run(a).success().json();
        assert_eq!(summary["failed"], json!([]), "{summary:#}");
        let checked = if verify { json!(tree.file_inodes) } else { json!(0) };
        assert_eq!(summary["verified"], checked, "every file checked against its hash: {summary:#}");
        let copy = restored(&target, &tree.root);
        assert_trees_equal(&tree.root, &copy);
        check_edge_copy(&copy);
    }
}

/// What the comparison covers, spelled out so a weakened fixture cannot pass silently.
fn check_edge_copy(copy: &std::path::Path) {
    let owned = std::fs::symlink_metadata(copy.join("owned/file")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (OTHER_UID, OTHER_GID));
    let link = std::fs::symlink_metadata(copy.join("owned/link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (OTHER_UID, OTHER_GID));
    assert_eq!(std::fs::metadata(copy.join("modes/setgid-dir")).unwrap().mode() & 0o7777, 0o2775);
    assert_eq!(std::fs::metadata(copy.join("modes/setuid")).unwrap().mode() & 0o7777, 0o4755);
    let sparse = std::fs::metadata(copy.join("sparse.img")).unwrap();
    assert!(sparse.blocks() * 512 < 4 << 20, "sparse.img takes {} bytes on disk", sparse.blocks() * 512);
    let a = std::fs::metadata(copy.join("hard/a")).unwrap();
    assert_eq!(a.nlink(), 3, "hard/a, hard/a2 and hard/other/b are one file");
    assert_eq!(std::fs::read_link(copy.join("links/dangling")).unwrap().as_os_str(), "does/not/exist");
}

#[test]
fn restore_into_the_same_target_twice_gives_the_same_tree() {
    // A second restore over the first with --overwrite always must replace files, not append
    // to or trip over them; without a choice it keeps them all, names them and exits 3.
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    repo.backup([&tree.root]);
    let target = repo.scratch().join("restore");
    // The second time without --verify: files are then written and finished by the restore
    // threads, over the files of the first.
    repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    repo.run(args!["restore", "latest", "--overwrite", "always", "--target", &target]).success();
    assert_trees_equal(&tree.root, &restored(&target, &tree.root));
    repo.run(args!["restore", "latest", "--target", &target]).code(cairn_tests::exit::PARTIAL).stderr_has("were kept");
    assert_trees_equal(&tree.root, &restored(&target, &tree.root));
}

#[test]
fn restores_a_subpath_and_a_single_file() {
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    repo.backup([&tree.root]);

    for sub in ["hard", "deep", "modes", "names", "owned"] {
        let source = tree.root.join(sub);
        let target = repo.scratch().join(format!("restore-{sub}"));
        repo.run(args!["restore", spec("latest", &source), "--verify", "--target", &target]).success();
        assert_trees_equal_with(&source, &target, &CONTENTS_ONLY);
    }

    let target = repo.scratch().join("restore-file");
    repo.run(args!["restore", spec("latest", &tree.root.join("random.bin")), "--target", &target]).success();
    let diffs = compare_trees(&tree.root.join("random.bin"), &target.join("random.bin"));
    assert!(diffs.is_empty(), "{diffs:#?}");
    let names: Vec<_> = std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["random.bin"], "only the file asked for");
}

#[test]
fn restore_include_and_exclude() {
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    repo.backup([&tree.root]);

    // Names matching the include, and the directories leading to them; nothing else.
    let target = repo.scratch().join("include");
    repo.run(args!["restore", spec("latest", &tree.root), "--include", "*.txt", "--target", &target]).success();
    let listed = cairn_tests::compare::list_tree(&target).unwrap();
    let files: BTreeSet<String> =
        listed.iter().filter(|(_, m)| !m.is_dir()).map(|(rel, _)| rel.display().to_string()).collect();
    let mut deep = (0..60).map(|l| format!("l{l:02}")).collect::<Vec<_>>().join("/");
    deep = format!("deep/{deep}/leaf.txt");
    let expected: BTreeSet<String> = ["empty.txt".to_string(), "small.txt".to_string(), deep].into();
    assert_eq!(files, expected);
    assert!(cairn_tests::compare::wrong_files(&tree.root, &target).is_empty());
    assert!(
        !target.join("links").exists() && !target.join("empty-dir").exists(),
        "directories without a match are left out"
    );

    // An include naming a directory by its absolute path brings everything inside it.
    let target = repo.scratch().join("include-dir");
    let hard = tree.root.join("hard");
    repo.run(args!["restore", spec("latest", &tree.root), "--include", &hard, "--target", &target]).success();
    assert_trees_equal_with(&hard, &target.join("hard"), &CompareOptions::default());

    // Excludes: everything but the excluded names is restored exactly.
    let target = repo.scratch().join("exclude");
    repo.run(args![
        "restore",
        spec("latest", &tree.root),
        "--exclude",
        "random.bin",
        "--exclude",
        "deep",
        "--target",
        &target
    ])
    .success();
    let diffs = cairn_tests::compare::compare_trees_with(&tree.root, &target, &CONTENTS_ONLY);
    let unexpected: Vec<_> = diffs
        .iter()
        .filter(|d| !(d.starts_with("random.bin: missing") || (d.starts_with("deep") && d.contains(": missing"))))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert!(diffs.iter().any(|d| d.starts_with("random.bin: missing")), "{diffs:#?}");
    assert!(diffs.iter().any(|d| d.starts_with("deep: missing")), "{diffs:#?}");
}

#[test]
fn ls_lists_the_snapshot() {
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    repo.backup([&tree.root]);
    let root = tree.root.display().to_string();

    let all = repo.run(["ls", "latest"]).success().stdout_text();
    let lines: BTreeSet<&str> = all.lines().collect();
    for rel in ["small.txt", "empty-dir", "links/dangling", "fifo", "sparse.img", "hard/other/b"] {
        assert!(lines.contains(format!("{root}/{rel}").as_str()), "ls lacks {rel}:\n{all}");
    }
    let leaf = format!("{root}/deep/{}/leaf.txt", (0..60).map(|l| format!("l{l:02}")).collect::<Vec<_>>().join("/"));
    assert!(lines.contains(leaf.as_str()), "ls lacks the deepest file");

    let hard = repo.run(["ls", "latest", &format!("{root}/hard")]).success().stdout_text();
    let got: Vec<&str> = hard.lines().collect();
    let want: Vec<String> = ["", "/a", "/a2", "/other", "/other/b"].iter().map(|s| format!("{root}/hard{s}")).collect();
    assert_eq!(got, want);

    let long = repo.run(["ls", "--long", "latest", &format!("{root}/owned")]).success().stdout_text();
    let file_line = long.lines().find(|l| l.ends_with("/owned/file")).expect("owned/file listed");
    let fields: Vec<&str> = file_line.split_whitespace().collect();
    assert_eq!(fields[..4], ["-rw-r--r--", "1234", "5678", "11"], "{file_line}");
    assert!(long.lines().any(|l| l.starts_with('l') && l.ends_with("/owned/link -> file")), "{long}");
    // Set-id and sticky bits as `ls -l` shows them (issue 14, item 1).
    let modes = repo.run(["ls", "--long", "latest", &format!("{root}/modes")]).success().stdout_text();
    let mode_of = |name: &str| {
        let line = modes.lines().find(|l| l.ends_with(&format!("/modes/{name}"))).unwrap_or_else(|| panic!("{modes}"));
        line.split_whitespace().next().unwrap().to_string()
    };
    assert_eq!(mode_of("setuid"), "-rwsr-xr-x");
    assert_eq!(mode_of("setgid-dir"), "drwxrwsr-x");
    assert_eq!(mode_of("sticky-dir"), "drwxrwxrwt");
    assert_eq!(mode_of("none"), "----------");

    let json = repo.run(["--json", "ls", "latest", &root]).success().json();
    let entry = |rel: &str| {
        let path = format!("{root}/{rel}");
        json.as_array().unwrap().iter().find(|e| e["path"] == json!(path)).cloned().unwrap_or_else(|| panic!("{rel}"))
    };
    assert_eq!(entry("fifo")["type"], json!("fifo"));
    assert_eq!(entry("links/dangling")["type"], json!("symlink"));
    assert_eq!(entry("links/dangling")["target"], json!("does/not/exist"));
    assert_eq!(entry("sparse.img")["size"], json!(cairn_tests::fixture::SPARSE_LEN));
    let m = std::fs::symlink_metadata(tree.root.join("small.txt")).unwrap();
    let mtime = entry("small.txt")["mtime"].as_str().unwrap().to_string();
    assert!(
        mtime.contains(&format!(".{:09}", m.mtime_nsec())),
        "mtime {mtime} lacks the nanoseconds {}",
        m.mtime_nsec()
    );
}

#[test]
fn dump_writes_the_original_bytes() {
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    repo.backup([&tree.root]);
    for rel in ["random.bin", "text.log", "empty.txt", "hard/a2", "modes/none", "sparse.img"] {
        let path = tree.root.join(rel);
        let got = repo.dump("latest", &path.display().to_string());
        assert!(got == std::fs::read(&path).unwrap(), "dump of {rel} differs from the original");
    }
    repo.run(args!["dump", "latest", &tree.root.join("no-such-file")])
        .code(cairn_tests::exit::NOT_FOUND)
        .stderr_has("no-such-file");
}

#[test]
fn non_utf8_paths_can_be_named_on_the_command_line() {
    // Names need not be UTF-8 (issue 2, item 3); the commands that take a path in the snapshot
    // must accept them as the shell passes them, as raw bytes.
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    repo.backup([&tree.root]);
    let mut file = tree.root.as_os_str().as_bytes().to_vec();
    file.extend_from_slice(b"/names/caf\xe9");
    let file = OsStr::from_bytes(&file);

    let dumped = repo.run([OsStr::new("dump"), OsStr::new("latest"), file]).success().stdout.clone();
    assert_eq!(dumped, b"latin-1 name\n");
    let listed = repo.run([OsStr::new("ls"), OsStr::new("latest"), file]).success().stdout.clone();
    assert!(listed.windows(4).any(|w| w == b"caf\xe9"), "ls should print the name's bytes: {listed:?}");

    let mut spec = b"latest:".to_vec();
    spec.extend_from_slice(file.as_bytes());
    let target = repo.scratch().join("restore");
    repo.run([OsStr::new("restore"), OsStr::from_bytes(&spec), OsStr::new("--target"), target.as_os_str()]).success();
    assert_eq!(std::fs::read(target.join(OsStr::from_bytes(b"caf\xe9"))).unwrap(), b"latin-1 name\n");
}

#[test]
fn snapshots_json_records_tags_host_time_and_parent() {
    let repo = repo();
    let src = repo.dir("src");
    data::write(&src.join("a.txt"), b"a\n");
    let first =
        repo.backup(args![&src, "--tag", "nightly", "--tag", "db", "--host", "db-1", "--time", "2020-01-02T03:04:05Z"]);
    let second = repo.backup(args![&src, "--host", "db-1"]);

    let list = repo.snapshots();
    assert_eq!(list.len(), 2, "{list:#?}");
    let (s1, s2) = (&list[0], &list[1]);
    for field in ["id", "time", "host", "paths", "tags", "parent", "summary"] {
        assert!(s1.get(field).is_some(), "snapshots --json lacks `{field}`: {s1:#}");
    }
    assert_eq!(s1["id"], first["snapshot"]);
    assert_eq!(s1["id"].as_str().unwrap().len(), 64, "full hex id");
    assert_eq!(s1["time"], json!("2020-01-02T03:04:05Z"));
    assert_eq!(s1["host"], json!("db-1"));
    assert_eq!(s1["paths"], json!([src.display().to_string()]));
    assert_eq!(s1["tags"], json!(["nightly", "db"]));
    assert_eq!(s1["parent"], json!(null));
    assert_eq!(s1["summary"]["files_new"], json!(1));
    assert_eq!(s1["summary"]["total_bytes"], json!(2));

    assert_eq!(s2["id"], second["snapshot"]);
    assert_eq!(s2["parent"], first["snapshot"], "same host and paths: the first is the parent");
    assert_eq!(second["parent"], first["snapshot"]);
    assert_eq!(s2["tags"], json!([]));

    // Filters.
    let tagged = repo.run(["--json", "snapshots", "--tag", "nightly"]).success().json();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    let other_host = repo.run(["--json", "snapshots", "--host", "elsewhere"]).success().json();
    assert_eq!(other_host, json!([]));
    // A snapshot is found by a unique id prefix, and `latest` is the newest.
    let prefix = &s1["id"].as_str().unwrap()[..8];
    assert_eq!(repo.dump(prefix, &src.join("a.txt").display().to_string()), b"a\n");
    let table = repo.run(["snapshots"]).success().stdout_text();
    assert!(table.contains(prefix) && table.contains("2020-01-02 03:04:05") && table.contains("nightly,db"), "{table}");
}

#[test]
fn backup_exclude_and_exclude_file() {
    let repo = repo();
    let src = repo.dir("src");
    for rel in [
        "keep.txt",
        "skip.tmp",
        "sub/keep2.txt",
        "sub/skip.tmp",
        "cache/x",
        "sub/cache/y",
        "by-path/z",
        "sub/by-path/kept",
    ] {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        data::write(&p, rel.as_bytes());
    }
    let list = repo.scratch().join("excludes");
    data::write(&list, format!("# caches\n\ncache\n{}/by-path\n", src.display()).as_bytes());
    repo.backup(args![&src, "--exclude", "*.tmp", "--exclude-file", &list]);

    let out = repo.run(["ls", "latest", &src.display().to_string()]).success().stdout_text();
    let got: BTreeSet<String> =
        out.lines().map(|l| l.strip_prefix(&src.display().to_string()).unwrap().to_string()).collect();
    let want: BTreeSet<String> =
        ["", "/keep.txt", "/sub", "/sub/keep2.txt", "/sub/by-path", "/sub/by-path/kept"].map(String::from).into();
    assert_eq!(got, want);

    let target = repo.scratch().join("restore");
    repo.run(args!["restore", spec("latest", &src), "--target", &target]).success();
    assert!(cairn_tests::compare::wrong_files(&src, &target).is_empty());
}

#[test]
fn several_paths_and_a_single_file_in_one_snapshot() {
    let repo = repo();
    let a = repo.dir("a");
    let b = repo.dir("b");
    data::write_random(&a.join("x.bin"), 5, 300_000);
    std::fs::create_dir(a.join("inner")).unwrap();
    data::write(&a.join("inner/y.txt"), b"y\n");
    data::write(&b.join("single.txt"), b"one file given as a path\n");
    let single = b.join("single.txt");
    repo.backup(args![&a, &single]);
    let snaps = repo.snapshots();
    let mut want = vec![a.display().to_string(), single.display().to_string()];
    want.sort();
    assert_eq!(snaps[0]["paths"], json!(want));

    let target = repo.scratch().join("restore");
    repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    assert_trees_equal(&a, &restored(&target, &a));
    assert_trees_equal(&single, &restored(&target, &single));
    // b itself was not given: only the file in it is in the snapshot.
    let b_listing = repo.run(["ls", "latest", &b.display().to_string()]).success().stdout_text();
    assert_eq!(b_listing.lines().count(), 2, "{b_listing}");
}

#[test]
fn one_file_system_stops_at_mount_points() {
    let repo = repo();
    let src = repo.dir("src");
    data::write(&src.join("here.txt"), b"here\n");
    let mounted = cairn_tests::system::Tmpfs::mount(&src.join("mnt"), "size=1m");
    data::write(&mounted.path().join("elsewhere.txt"), b"on another file system\n");
    let root = src.display().to_string();

    repo.backup(args![&src, "--one-file-system", "--tag", "x"]);
    let listing = repo.run(["ls", "latest", "--tag", "x", &root]).success().stdout_text();
    assert!(listing.contains(&format!("{root}/mnt\n")), "the mount point itself is kept: {listing}");
    assert!(!listing.contains("elsewhere.txt"), "{listing}");

    repo.backup(args![&src, "--tag", "y"]);
    let listing = repo.run(["ls", "latest", "--tag", "y", &root]).success().stdout_text();
    assert!(listing.contains("elsewhere.txt"), "{listing}");
}
