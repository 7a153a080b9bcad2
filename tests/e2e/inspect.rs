//! Inspection and verification commands against known trees (issue 3): ls --long, find, diff,
//! stats, dump of a directory as tar, check with --read-data-subset and --restore-drill, and
//! repair of a lost index, of snapshots that lost data and of a damaged tree pack.

use cairn_core::store::{ObjectKey, ObjectKind};
use cairn_tests::{args, assert_trees_equal, corrupt, data, exit};

use crate::{repo, restored};

fn known_tree(repo: &cairn_tests::TestRepo) -> std::path::PathBuf {
    let src = repo.dir("src");
    data::write(&src.join("a.txt"), b"alpha\n");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    data::write(&src.join("sub/b.log"), b"beta\n");
    data::write_random(&src.join("sub/c.bin"), 9, 400_000);
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    src
}

#[test]
fn ls_find_diff_stats_and_dump_tar() {
    let repo = repo();
    let src = known_tree(&repo);
    let first = repo.backup(args![&src])["snapshot"].as_str().unwrap().to_string();
    let ls = repo.run(args!["ls", "latest", "--long"]).success().stdout_text();
    assert!(ls.contains("-rw-") && ls.contains("sub/c.bin") && ls.contains("lrwx"), "{ls}");
    let entries = repo.run(args!["--json", "ls", "latest", src.join("sub")]).success().json();
    assert_eq!(entries.as_array().unwrap().len(), 3, "sub, b.log and c.bin: {entries}");

    data::write(&src.join("a.txt"), b"alpha, changed\n");
    std::fs::remove_file(src.join("sub/b.log")).unwrap();
    data::write(&src.join("new.txt"), b"new\n");
    std::fs::set_permissions(src.join("sub/c.bin"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let second = repo.backup(args![&src])["snapshot"].as_str().unwrap().to_string();

    let found = repo.run(args!["--json", "find", "*.txt"]).success().json();
    let paths: Vec<&str> = found.as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths.iter().filter(|p| p.ends_with("/a.txt")).count(), 2, "{found}");
    assert_eq!(paths.iter().filter(|p| p.ends_with("/new.txt")).count(), 1, "{found}");
    repo.run(args!["find", "no-such-name"]).code(1);

    let diff = repo.run(args!["--json", "diff", &first, &second]).success().json();
    let change = |suffix: &str| {
        diff.as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"].as_str().unwrap().ends_with(suffix))
            .map(|d| d["change"].clone())
    };
    assert_eq!(change("/a.txt"), Some("modified".into()), "{diff}");
    assert_eq!(change("/sub/b.log"), Some("removed".into()), "{diff}");
    assert_eq!(change("/new.txt"), Some("added".into()), "{diff}");
    assert_eq!(change("/sub/c.bin"), Some("metadata".into()), "{diff}");
    assert_eq!(change("/link"), None, "{diff}");

    let stats = repo.run(args!["--json", "stats", &second]).success().json();
    let size = stats["restore_size"].as_u64().unwrap();
    assert_eq!(size, 15 + 400_000 + 4, "{stats}");
    assert!(stats["stored_size"].as_u64().unwrap() > 0 && stats["blobs"].as_u64().unwrap() >= 4, "{stats}");

    let tar = repo.run(args!["dump", "latest", src.join("sub")]).success().stdout.clone();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path.ends_with("c.bin") {
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            assert_eq!(content, std::fs::read(src.join("sub/c.bin")).unwrap());
        }
        names.push(path);
    }
    assert_eq!(names, vec!["sub", "sub/c.bin"]);
}

#[test]
fn check_subsets_cover_every_pack_and_the_drill_reports_timing() {
    let repo = crate::repo_with(&["--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = repo.dir("src");
    for i in 0..8 {
        data::write_random(&src.join(format!("f{i}")), i, 700_000);
    }
    repo.backup(args![&src]);
    let packs = corrupt::objects(repo.path(), ObjectKind::Pack).len() as u64;
    let mut read = 0;
    for n in 1..=3 {
        let report = repo.run(args!["--json", "check", "--read-data-subset", format!("{n}/3")]).success().json();
        read += report["check"]["packs_read"].as_u64().unwrap();
    }
    assert_eq!(read, packs, "three slices read every pack exactly once");
    let drill = repo.run(args!["--json", "check", "--restore-drill"]).success().json();
    assert_eq!(drill["restore_drill"]["verified"].as_u64(), Some(8), "{drill}");
    assert!(drill["restore_drill"]["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_damaged_pack_is_named_with_the_files_it_costs_and_repair_recovers() {
    let repo = crate::repo_with(&["--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = repo.dir("src");
    for i in 0..6 {
        data::write_random(&src.join(format!("f{i}")), 50 + i, 900_000);
    }
    repo.backup(args![&src]);
    let data_packs = corrupt::objects(repo.path(), ObjectKind::Pack);
    let victim = corrupt::largest(&data_packs);
    corrupt::flip_middle_byte(&victim);
    let out = repo.run(args!["--json", "check", "--read-data"]);
    out.failure();
    let report = out.json();
    let pack_id = corrupt::object_id(&victim);
    assert!(report["check"]["problems"].to_string().contains(&pack_id), "{report}");
    let affected: Vec<String> = report["check"]["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect();
    assert!(!affected.is_empty() && affected.iter().all(|p| p.contains("/src/f")), "{affected:?}");

    // Restore salvages every other file and names the damaged ones.
    let target = repo.dir("restore");
    let out = repo.run(args!["restore", "latest", "--target", &target]);
    out.failure();
    for path in &affected {
        assert!(out.stderr.contains(path.rsplit('/').next().unwrap()), "{}", out.report());
    }
    let back = restored(&target, &src);
    for i in 0..6 {
        let name = format!("f{i}");
        let p = back.join(&name);
        if affected.iter().any(|a| a.ends_with(&format!("/{name}"))) {
            assert!(!p.exists(), "{name} is damaged and must not be left behind");
        } else {
            assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(src.join(&name)).unwrap());
        }
    }

    // repair snapshots (with --read-data) removes exactly the damaged files.
    let dry = repo.run(args!["repair", "snapshots", "--read-data"]);
    dry.success();
    assert_eq!(repo.snapshots()[0]["tags"], serde_json::json!([]), "dry run changes nothing");
    // Each removal says why, and damage (stored bytes failing authentication) is named as
    // such, not as data missing from the index.
    let said = dry.stdout_text();
    for path in &affected {
        assert!(said.contains(&format!("{path} (its data is damaged)")), "{path}:\n{said}");
    }
    assert!(!said.contains("missing") && !said.contains("no index"), "{said}");
    repo.run(args!["repair", "snapshots", "--read-data", "--apply"]).success();
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["tags"], serde_json::json!(["repaired"]));
    let listed = repo.run(args!["ls", "latest"]).success().stdout_text();
    for path in &affected {
        assert!(!listed.contains(path.as_str()), "{path} still listed:\n{listed}");
    }
}

#[test]
fn repair_index_rebuilds_a_lost_index() {
    let repo = repo();
    let src = known_tree(&repo);
    repo.backup(args![&src]);
    for idx in corrupt::objects(repo.path(), ObjectKind::Index) {
        corrupt::delete(&idx);
    }
    // check says to repair the index, never to prune what is in fact the only copy of the data.
    let check = repo.run(args!["check"]);
    check.failure();
    let said = check.stdout_text();
    assert!(said.contains("run `cairn repair index`") && said.contains("before any prune"), "{said}");
    assert!(!said.contains("interrupted backup; prune removes them"), "{said}");
    repo.run(args!["repair", "index", "--apply"]).success();
    repo.run(args!["check", "--read-data"]).success();
    let target = repo.dir("restore");
    repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    assert_trees_equal(&src, &restored(&target, &src));
}

/// Erasure on request: `rewrite --exclude` removes a path from every snapshot, and after prune
/// its bytes are gone from the repository while everything else still restores.
#[test]
fn rewrite_erases_a_path_from_every_snapshot_and_prune_removes_its_data() {
    let repo = repo();
    let src = repo.dir("src");
    data::write(&src.join("keep.txt"), b"kept\n");
    let secret = data::random_bytes(4711, 300_000);
    data::write(&src.join("customer-4711.csv"), &secret);
    repo.backup(args![&src]);
    data::write(&src.join("keep.txt"), b"kept, version two\n");
    repo.backup(args![&src]);
    repo.run(args!["rewrite", "--exclude", "customer-4711.csv"]).success();
    assert_eq!(repo.run(args!["--json", "find", "customer-4711.csv"]).json().as_array().unwrap().len(), 2, "dry run");
    repo.run(args!["rewrite", "--exclude", "customer-4711.csv", "--apply"]).success();
    repo.run(args!["find", "customer-4711.csv"]).code(1);
    repo.run(args!["prune", "--grace", "0s", "--max-unused", "0%"]).success();
    repo.run(args!["prune", "--grace", "0s", "--max-unused", "0%"]).success();
    repo.run(args!["check", "--read-data"]).success();
    let stats = repo.run(args!["--json", "stats"]).success().json();
    let before_size = 300_000;
    assert!(
        stats["repository_size"].as_u64().unwrap() < before_size / 3,
        "the erased file's 300 kB must leave the repository: {stats}"
    );
    let target = repo.dir("restore");
    repo.run(args!["restore", "latest", "--target", &target]).success();
    let back = restored(&target, &src);
    assert_eq!(std::fs::read(back.join("keep.txt")).unwrap(), b"kept, version two\n");
    assert!(!back.join("customer-4711.csv").exists());
}

/// The repository opened through the library, its index and its newest snapshot.
fn open_latest(
    repo: &cairn_tests::TestRepo,
) -> (cairn_core::Repository, cairn_core::advanced::index::Index, cairn_core::Snapshot) {
    let opened =
        cairn_core::Repository::open_url(&repo.path().display().to_string(), cairn_tests::repo::PASSWORD.as_bytes())
            .expect("open");
    let index = opened.load_index().unwrap();
    let (_, snapshot) = opened.snapshots().unwrap().pop().unwrap();
    (opened, index, snapshot)
}

/// Flips a byte in the middle of both stored copies of the tree `id`.
fn damage_every_copy(
    repo: &cairn_tests::TestRepo,
    index: &cairn_core::advanced::index::Index,
    id: &cairn_core::BlobId,
) {
    let first = *index.get(id).unwrap();
    let copies: Vec<_> = std::iter::once(first).chain(index.alternates(id).iter().copied()).collect();
    assert_eq!(copies.len(), 2, "two copies of the tree");
    for c in &copies {
        let pack = repo.path().join(ObjectKey::new(ObjectKind::Pack, index.pack(c).id.0).path());
        corrupt::flip_byte(&pack, i64::from(c.offset) + i64::from(c.length) / 2);
    }
}

/// Trees are stored twice, in two packs (issue 14, item 7): with the first copy of every tree
/// of a snapshot damaged, the snapshot still restores exactly, `check --read-data` names the
/// damaged pack but no lost file, and `repair snapshots` finds nothing to remove.
#[test]
fn a_damaged_tree_pack_costs_no_file() {
    let repo = repo();
    let src = known_tree(&repo);
    repo.backup(args![&src]);
    let (opened, index, snapshot) = open_latest(&repo);
    // Damage the root tree where the index's first copy lies: the pack every tree read goes
    // to first.
    let root = *index.get(&snapshot.tree).unwrap();
    assert_eq!(index.alternates(&snapshot.tree).len(), 1, "the root tree has a second copy");
    let pack = repo.path().join(ObjectKey::new(ObjectKind::Pack, index.pack(&root).id.0).path());
    corrupt::flip_byte(&pack, i64::from(root.offset) + i64::from(root.length) / 2);
    drop(opened);

    let target = repo.dir("restore");
    repo.run(args!["restore", "latest", "--target", &target, "--verify"]).success();
    assert_trees_equal(&src, &restored(&target, &src));
    let check = repo.run(args!["check", "--read-data"]);
    check.failure();
    let said = format!("{}{}", check.stdout_text(), check.stderr);
    assert!(said.contains("intact copy in another pack: no file is lost"), "{said}");
    assert!(!said.contains("affects"), "no file may be named lost:\n{said}");
    let repair = repo.run(args!["repair", "snapshots", "--read-data"]);
    repair.success();
    assert!(!repair.stdout_text().contains("removed"), "{}", repair.stdout_text());

    // repair packs replaces the damaged pack: its trees written again, the pack gone, every
    // tree with two intact copies, and check clean.
    let fixed = repo.run(args!["--json", "repair", "packs", "--apply"]).success().json();
    assert_eq!(fixed["removed"].as_array().unwrap().len(), 1, "{fixed}");
    assert!(fixed["trees_recopied"].as_u64().unwrap() >= 1, "{fixed}");
    assert!(!pack.exists(), "the damaged pack is deleted");
    repo.run(args!["check", "--read-data"]).success();
    let (_, index, _) = open_latest(&repo);
    assert_eq!(index.alternates(&snapshot.tree).len(), 1, "the root tree has two copies again");
    let again = repo.dir("restore-again");
    repo.run(args!["restore", "latest", "--target", &again, "--verify"]).success();
    assert_trees_equal(&src, &restored(&again, &src));
}

/// Issue 14, item 7: with both copies of a directory's tree lost, `repair snapshots` keeps
/// everything below it: the entry naming the directory records its subdirectories, which come
/// back by name with all they hold. Only the files directly in it are lost, and named so.
#[test]
fn a_tree_lost_in_both_copies_costs_only_the_files_directly_in_it() {
    let repo = repo();
    let src = repo.dir("src");
    data::write(&src.join("top.txt"), b"top\n");
    for (file, seed) in [("a/f1", 1), ("a/f2", 2), ("a/b/g1", 3), ("a/c/h1", 4), ("a/c/d/i1", 5)] {
        std::fs::create_dir_all(src.join(file).parent().unwrap()).unwrap();
        data::write_random(&src.join(file), seed, 20_000);
    }
    repo.backup(args![&src]);
    let (opened, index, snapshot) = open_latest(&repo);
    let walker = cairn_core::advanced::trees::TreeWalker::new(&opened, &index);
    let a = walker.find(&snapshot, &src.join("a")).unwrap();
    let names: Vec<String> = a.subdirs.iter().map(cairn_core::Node::display_name).collect();
    assert_eq!(names, ["b", "c"], "the entry naming a/ records its subdirectories");
    let lost = a.subtree.unwrap();
    damage_every_copy(&repo, &index, &lost);
    drop(opened);

    let fixed = repo.run(args!["--json", "repair", "snapshots", "--read-data", "--apply"]).success().json();
    let said = fixed.to_string();
    assert!(said.contains("/a (directory unreadable") && said.contains("subdirectories b, c are salvaged"), "{said}");
    let target = repo.dir("restore");
    repo.run(args!["restore", "latest", "--target", &target, "--verify"]).success();
    let back = restored(&target, &src);
    for kept in ["top.txt", "a/b/g1", "a/c/h1", "a/c/d/i1"] {
        assert_eq!(std::fs::read(back.join(kept)).ok(), std::fs::read(src.join(kept)).ok(), "{kept}");
    }
    for gone in ["a/f1", "a/f2"] {
        assert!(!back.join(gone).exists(), "{gone} cannot come back: only the lost tree named it");
    }
    // The repaired snapshot needs nothing damaged: a second repair finds nothing to remove.
    let again = repo.run(args!["--json", "repair", "snapshots", "--read-data"]).success().json();
    assert_eq!(again["snapshots"], serde_json::json!([]), "{again}");

    // A rewrite that erases a subdirectory leaves no record of it one level up, and a copy
    // records the target's ids.
    repo.run(args!["rewrite", "--exclude", &src.join("a/c").display().to_string(), "--apply"]).success();
    let copy = crate::repo();
    let mut to = repo.command(args!["copy", "--to", copy.path()]);
    to.env("CAIRN_TO_PASSWORD", cairn_tests::repo::PASSWORD);
    cairn_tests::repo::Output::of(to).success();
    for r in [&repo, &copy] {
        let (opened, index, snapshot) = open_latest(r);
        let a = cairn_core::advanced::trees::TreeWalker::new(&opened, &index).find(&snapshot, &src.join("a")).unwrap();
        let names: Vec<String> = a.subdirs.iter().map(cairn_core::Node::display_name).collect();
        assert_eq!(names, ["b"], "c was erased");
        assert!(a.subdirs.iter().all(|h| index.contains(&h.subtree.unwrap())), "hints name trees of this repository");
    }
}

/// The root tree has no entry naming it: the snapshot records its subdirectories, so with
/// both copies of the root tree lost every file below it still comes back.
#[test]
fn a_lost_root_tree_costs_nothing_below_it() {
    let repo = repo();
    let src = known_tree(&repo);
    repo.backup(args![&src]);
    let (opened, index, snapshot) = open_latest(&repo);
    assert!(!snapshot.subdirs.is_empty(), "the snapshot records the root's subdirectories");
    damage_every_copy(&repo, &index, &snapshot.tree);
    drop(opened);
    repo.run(args!["ls", "latest"]).failure();
    let fixed = repo.run(args!["--json", "repair", "snapshots", "--read-data", "--apply"]).success().json();
    assert!(fixed.to_string().contains("are salvaged"), "{fixed}");
    let target = repo.dir("restore");
    repo.run(args!["restore", "latest", "--target", &target, "--verify"]).success();
    assert_trees_equal(&src, &restored(&target, &src));
}

/// Issue 17, item 4: `status` holds each source's newest snapshot against the objective; a
/// snapshot dated in the future (a wrong clock, `--time`) is reported and never counted as
/// fresh, so it cannot hide a source whose backups stopped.
#[test]
fn status_never_counts_a_snapshot_from_the_future_as_fresh() {
    let repo = repo();
    let src = known_tree(&repo);
    repo.backup(args![&src, "--time", "2020-01-01T00:00:00Z"]);
    let late = repo.run(args!["--json", "status", "--max-age", "6h"]);
    late.code(1);
    assert_eq!(late.json()["ok"], false);
    repo.backup(args![&src, "--time", "2099-01-01T00:00:00Z"]);
    let out = repo.run(args!["status", "--max-age", "6h"]);
    out.code(1).stderr_has("dated in the future");
    let json = repo.run(args!["--json", "status", "--max-age", "6h"]).code(1).json();
    let source = &json["sources"][0];
    assert_eq!(source["ok"], false, "{json}");
    assert_eq!(source["dated_in_future"].as_array().unwrap().len(), 1, "{json}");
    assert!(source["time"].as_str().unwrap().starts_with("2020"), "the recovery point is the 2020 snapshot: {json}");
    repo.backup(args![&src]);
    repo.run(args!["status", "--max-age", "6h"]).success().stderr_has("dated in the future");
}

/// Issue 17, item 4: prune says what it held back and why, and when the space it marked is
/// freed.
#[test]
fn prune_says_what_it_held_back_and_when_space_is_freed() {
    let repo = repo();
    let src = known_tree(&repo);
    repo.backup(args![&src]);
    data::write_random(&src.join("sub/c.bin"), 10, 400_000);
    repo.backup(args![&src]);
    repo.run(args!["forget", "--keep-last", "1"]).success();
    // A pack a backup is still writing: in no index object, younger than the grace period.
    let bytes = b"a pack being uploaded by a backup that runs now".to_vec();
    let id = cairn_core::id::Digest::of(&bytes);
    let path = repo.path().join(ObjectKey::new(ObjectKind::Pack, id).path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    // Everything is younger than the default grace period of an hour: held back, and said so.
    let out = repo.run(args!["prune"]).success().stdout_text();
    assert!(out.contains("packs younger than the grace period (1h) are neither marked nor repacked"), "{out}");
    assert!(path.exists(), "the young pack is kept");
    let json = repo.run(args!["--json", "prune", "--dry-run"]).success().json();
    let young = json["stats"]["packs_young"].as_u64().unwrap();
    assert!(young >= 2, "the young pack in no index object is counted with the young indexed ones: {json}");
    // With no grace period the forgotten snapshot's data is marked, and the output says when
    // it will be freed.
    let out = repo.run(args!["prune", "--grace", "0s"]).success().stdout_text();
    assert!(out.contains("freed by the first prune after"), "{out}");
}

/// Issue 17, item 4: `dump` of a directory as tar carries FIFOs, devices and symbolic links
/// (it dropped FIFOs and devices with exit 0); GNU tar reads them back as what they were.
#[test]
fn dump_as_tar_carries_fifos_devices_and_symlinks() {
    use std::os::unix::fs::FileTypeExt;
    let repo = repo();
    let src = repo.dir("special");
    data::write(&src.join("file.txt"), b"data\n");
    std::os::unix::fs::symlink("file.txt", src.join("link")).unwrap();
    let made =
        |cmd: &str, args: &[&str]| std::process::Command::new(cmd).args(args).status().is_ok_and(|s| s.success());
    assert!(made("mkfifo", &[&src.join("fifo").display().to_string()]));
    // A character device (1, 3), when this process may make one (as root).
    let device = made("mknod", &[&src.join("null-like").display().to_string(), "c", "1", "3"]);
    repo.backup(args![&src]);
    let tar = repo.dump("latest", &src.display().to_string());
    let out = repo.dir("untar");
    let mut untar = std::process::Command::new("tar");
    untar.arg("-x").arg("-C").arg(&out).stdin(std::process::Stdio::piped());
    let mut child = untar.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar).unwrap();
    assert!(child.wait().unwrap().success());
    let back = out.join("special");
    assert!(std::fs::symlink_metadata(back.join("fifo")).unwrap().file_type().is_fifo());
    assert_eq!(std::fs::read_link(back.join("link")).unwrap(), std::path::Path::new("file.txt"));
    assert_eq!(std::fs::read(back.join("file.txt")).unwrap(), b"data\n");
    if device {
        let meta = std::fs::symlink_metadata(back.join("null-like")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(std::os::unix::fs::MetadataExt::rdev(&meta), (1 << 8) | 3, "major 1, minor 3");
    }
}

/// Issue 17, item 4: `latest` is the newest snapshot among those the filters pass.
#[test]
fn latest_is_the_newest_among_the_filtered_snapshots() {
    let repo = repo();
    let src = repo.dir("src");
    data::write(&src.join("f"), b"from host b\n");
    repo.backup(args![&src, "--host", "hostb", "--tag", "b"]);
    data::write(&src.join("f"), b"from host a\n");
    repo.backup(args![&src, "--host", "hosta"]);
    let file = src.join("f").display().to_string();
    assert_eq!(repo.dump("latest", &file), b"from host a\n");
    for filter in [["--host", "hostb"], ["--tag", "b"]] {
        let out = repo.run(args!["dump", "latest", &file, filter[0], filter[1]]);
        out.success();
        assert_eq!(out.stdout, b"from host b\n", "{filter:?}");
    }
    repo.run(args!["dump", "latest", &file, "--host", "nohost"])
        .code(exit::NOT_FOUND)
        .stderr_has("no snapshot matches");
}

/// Issue 17, item 5: `tag` changes the tags of existing snapshots (written anew, the old ones
/// gone, the data the same); `snapshots --latest N` and `--group-by`; `find --oldest/--newest`.
#[test]
fn tags_groups_latest_and_find_by_modification_time() {
    let repo = repo();
    let src = known_tree(&repo);
    filetime::set_file_mtime(src.join("a.txt"), filetime::FileTime::from_unix_time(1_700_000_000, 0)).unwrap();
    for (host, tag) in [("h1", "daily"), ("h1", "daily"), ("h2", "weekly")] {
        repo.backup(args![&src, "--host", host, "--tag", tag]);
    }

    // tag
    let before = repo.snapshots();
    let out = repo.run(args!["--json", "tag", "--host", "h1", "--add", "keep", "--remove", "daily"]).success().json();
    assert_eq!(out.as_array().unwrap().len(), 2, "{out}");
    let after = repo.snapshots();
    assert_eq!(after.len(), 3);
    let tags = |host: &str| -> Vec<serde_json::Value> {
        after.iter().filter(|s| s["host"] == host).map(|s| s["tags"].clone()).collect()
    };
    assert_eq!(tags("h1"), vec![serde_json::json!(["keep"]); 2]);
    assert_eq!(tags("h2"), vec![serde_json::json!(["weekly"])]);
    let old_ids: Vec<&serde_json::Value> = before.iter().filter(|s| s["host"] == "h1").map(|s| &s["id"]).collect();
    assert!(after.iter().all(|s| !old_ids.contains(&&s["id"])), "the old snapshots are gone");
    // Retagging writes new snapshot objects over the same trees. (Not one tree for all three: the
    // backups record the metadata of the directories above the source, which tests running
    // beside this one change.)
    let trees = |list: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        list.iter().map(|s| s["tree"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(trees(&after), trees(&before), "the same trees: nothing was backed up again");
    repo.run(args!["tag", "--host", "h2", "--set", "monthly"]).success();
    assert!(repo.snapshots().iter().any(|s| s["tags"] == serde_json::json!(["monthly"])));
    repo.run(args!["tag"]).code(exit::USAGE).stderr_has("nothing to change");
    repo.run(args!["check"]).success();

    // snapshots --latest and --group-by
    let latest = repo.run(args!["--json", "snapshots", "--latest", "1"]).success().json();
    assert_eq!(latest.as_array().unwrap().len(), 2, "one per host and paths: {latest}");
    let grouped = repo.run(args!["--json", "snapshots", "--group-by", "host"]).success().json();
    let groups = grouped.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{grouped}");
    assert_eq!(groups[0]["group_key"]["host"], "h1");
    assert_eq!(groups[0]["snapshots"].as_array().unwrap().len(), 2);
    let text = repo.run(args!["snapshots", "--group-by", "host,tags"]).success().stdout_text();
    assert!(text.contains("host h1, tags keep:") && text.contains("host h2, tags monthly:"), "{text}");
    repo.run(args!["snapshots", "--group-by", "color"]).code(exit::USAGE);

    // find --oldest / --newest, by each entry's modification time
    // (find exits 1 when it finds nothing, as grep does.)
    let found = |extra: &[&str]| -> usize {
        let mut a = args!["--json", "find", "a.txt"];
        a.extend(extra.iter().map(std::ffi::OsString::from));
        let out = repo.run(a);
        assert!(matches!(out.code, Some(0 | 1)), "{}", out.report());
        out.json().as_array().unwrap().len()
    };
    assert_eq!(found(&[]), 3);
    assert_eq!(found(&["--newest", "2023-11-14"]), 3, "a.txt was modified on 2023-11-14 (UTC)");
    assert_eq!(found(&["--oldest", "2023-11-15"]), 0);
    assert_eq!(found(&["--oldest", "2023-11-14T22:13:20Z", "--newest", "2023-11-14T22:13:20Z"]), 3);
    repo.run(args!["find", "a.txt", "--oldest", "yesterday"]).code(exit::USAGE);
}
