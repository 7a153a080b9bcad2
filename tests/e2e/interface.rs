//! The operator's interface (issue 17, item 3): shell completions, man pages, and help that
//! keeps the global options apart and names every repository URL scheme.

use cairn_tests::{TestRepo, args};

fn cairn() -> TestRepo {
    TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    let repo = cairn();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef cairn"), ("fish", "complete -c cairn")] {
        let script = repo.run(args!["completions", shell]).success().stdout_text();
        assert!(script.contains(marker), "{shell}: {script:.200}");
        for command in ["backup", "restore", "forget", "policy"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    repo.run(args!["completions", "tcsh"]).code(cairn_tests::exit::USAGE);
}

#[test]
fn man_writes_a_page_per_command_that_man_can_render() {
    let repo = cairn();
    let dir = repo.scratch().join("man1");
    repo.run(args!["man", &dir]).success();
    for page in ["cairn.1", "cairn-backup.1", "cairn-restore.1", "cairn-policy.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page} is not a man page");
    }
    let backup = std::fs::read_to_string(dir.join("cairn-backup.1")).unwrap();
    assert!(backup.contains("exclude"), "the backup page documents its options");
}

#[test]
fn help_sets_global_options_apart_and_names_every_url_scheme() {
    let help = cairn().run(args!["backup", "--help"]).success().stdout_text();
    let (own, global) = help.split_once("Global options:").expect("a heading for the global options");
    assert!(own.contains("--exclude") && !own.contains("--repo"), "{help}");
    assert!(global.contains("--repo") && global.contains("--password-file"), "{help}");
    for scheme in ["file://", "s3://", "gs://", "az://", "http(s)://", "memory://"] {
        assert!(global.contains(scheme), "-r does not mention {scheme}:\n{global}");
    }
}

/// Issue 17, item 1: off a terminal, backup and restore print nothing but the summary unless
/// `--progress` is given; then a status line (with `--json`, a JSON line of
/// `"message_type": "status"`) on stderr, while stdout keeps the summary alone.
#[test]
fn progress_is_reported_on_request_and_never_mixes_into_the_summary() {
    let repo = crate::repo();
    let src = repo.dir("src");
    for i in 0..20 {
        cairn_tests::data::write_random(&src.join(format!("f{i}")), i, 50_000);
    }
    let quiet = repo.run(args!["backup", &src]);
    quiet.success();
    assert!(!quiet.stderr.contains("backup:"), "no progress unless asked: {}", quiet.stderr);

    let out = repo.run(args!["--json", "--progress", "backup", "--force", &src]);
    out.success();
    let summary = out.json();
    assert!(summary["snapshot"].is_string(), "stdout is the summary alone");
    let statuses: Vec<serde_json::Value> = out.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let last = statuses.last().unwrap_or_else(|| panic!("no status line: {}", out.stderr));
    assert_eq!(last["message_type"], "status");
    assert_eq!(last["action"], "backup");
    assert_eq!(last["total_files"], 20, "the walk ahead counted the files: {last}");
    assert_eq!(last["bytes_done"], 1_000_000, "{last}");

    let target = repo.dir("restore");
    let out = repo.run(args!["--progress", "restore", "latest", "--target", &target]);
    out.success();
    let line = out.stderr.lines().find(|l| l.starts_with("restore:")).unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(line.contains("(100 %)") && line.contains("20 files"), "{line}");
}

/// Issue 17, item 1: `check --read-data` reports the packs it reads against their total.
#[test]
fn check_read_data_reports_its_progress_on_request() {
    let repo = crate::repo();
    let src = repo.dir("src");
    cairn_tests::data::write_random(&src.join("big"), 3, 2_000_000);
    repo.backup(args![&src]);
    let out = repo.run(args!["--json", "--progress", "check", "--read-data"]);
    out.success();
    let last: serde_json::Value = out.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).next_back().unwrap();
    assert_eq!(last["action"], "check");
    assert_eq!(last["percent_done"], 100.0, "{last}");
    assert_eq!(last["files_done"], last["total_files"], "every pack read: {last}");
}

/// Issue 17, item 1: `prune` reports the bytes it repacks, pack by pack.
#[test]
fn prune_reports_its_repacking_on_request() {
    let repo = crate::repo_with(&["--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = repo.dir("src");
    for i in 0..4 {
        cairn_tests::data::write_random(&src.join(format!("f{i}")), 10 + i, 300_000);
    }
    repo.backup(args![&src]);
    std::fs::remove_file(src.join("f1")).unwrap();
    repo.backup(args![&src]);
    repo.run(args!["forget", "--keep-last", "1"]).success();
    let out = repo.run(args!["--json", "--progress", "prune", "--grace", "0s", "--max-unused", "0"]);
    out.success();
    assert!(out.json()["stats"]["packs_repacked"].as_u64().unwrap() > 0, "something to repack: {}", out.stdout_text());
    let last: serde_json::Value = out.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).next_back().unwrap();
    assert_eq!(last["action"], "prune");
    assert_eq!(last["percent_done"], 100.0, "{last}");
    assert_eq!(last["files_done"], last["total_files"], "every pack repacked: {last}");
    assert!(last["bytes_done"].as_u64().unwrap() > 0, "{last}");
}

/// Issue 17, item 1: `copy` reports the bytes it copies.
#[test]
fn copy_reports_its_progress_on_request() {
    let from = crate::repo();
    let to = crate::repo();
    let src = from.dir("src");
    cairn_tests::data::write_random(&src.join("big"), 4, 1_000_000);
    from.backup(args![&src]);
    let mut cmd = from.command(args!["--json", "--progress", "copy", "--to", to.path()]);
    cmd.env("CAIRN_TO_PASSWORD", cairn_tests::repo::PASSWORD);
    let out = cairn_tests::Output::of(cmd);
    out.success();
    assert_eq!(out.json()["copied"].as_array().unwrap().len(), 1, "stdout is the summary alone");
    let last: serde_json::Value = out.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).next_back().unwrap();
    assert_eq!(last["action"], "copy");
    assert_eq!(last["bytes_done"], 1_000_000, "{last}");
}

/// Issue 17, item 1: `-v` names each item as it is done (files backed up and restored, packs
/// read); `-q` leaves stdout empty on commands that only summarise; the two together are a
/// usage error.
#[test]
fn verbose_names_each_item_and_quiet_prints_no_summary() {
    let repo = crate::repo();
    let src = repo.dir("src");
    for name in ["a", "b", "c"] {
        cairn_tests::data::write_random(&src.join(name), 7, 50_000);
    }
    cairn_tests::data::settle();
    let out = repo.run(args!["-v", "backup", &src]);
    out.success();
    for name in ["a", "b", "c"] {
        let line = format!("backup: {}", src.join(name).display());
        assert!(out.stderr.lines().any(|l| l.starts_with(&line)), "{line} not named: {}", out.stderr);
    }
    // Only what is read again is named: the changed file, not the two unmodified ones.
    cairn_tests::data::write_random(&src.join("b"), 8, 50_000);
    let out = repo.run(args!["--json", "-v", "backup", &src]);
    out.success();
    let items: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message_type"] == "verbose_status")
        .collect();
    assert_eq!(items.len(), 1, "{}", out.stderr);
    assert_eq!(items[0]["item"], src.join("b").to_string_lossy().as_ref());
    assert_eq!(items[0]["bytes"], 50_000);

    let target = repo.dir("restore");
    let out = repo.run(args!["-v", "restore", "latest", "--target", &target]);
    out.success();
    assert_eq!(out.stderr.lines().filter(|l| l.starts_with("restore: ")).count(), 3, "{}", out.stderr);
    let out = repo.run(args!["-v", "check", "--read-data"]);
    out.success();
    assert!(out.stderr.lines().any(|l| l.starts_with("check: pack ")), "{}", out.stderr);

    for quiet in [args!["-q", "backup", &src], args!["-q", "check", "--read-data"], args!["-q", "key", "add"]] {
        let mut cmd = repo.command(quiet.clone());
        cmd.env("CAIRN_NEW_PASSWORD", "another password");
        let out = cairn_tests::repo::Output::of(cmd);
        out.success();
        assert_eq!(out.stdout_text(), "", "{quiet:?} printed a summary");
    }
    repo.run(args!["-q", "-v", "snapshots"]).code(cairn_tests::exit::USAGE);
}

/// Issue 17, item 1: erasing with `rewrite` reports the snapshots it walks.
#[test]
fn rewrite_reports_its_progress_on_request() {
    let repo = crate::repo();
    let src = repo.dir("src");
    cairn_tests::data::write_random(&src.join("keep"), 1, 100_000);
    cairn_tests::data::write_random(&src.join("secret"), 2, 100_000);
    repo.backup(args![&src]);
    repo.backup(args![&src]);
    let out = repo.run(args!["--json", "--progress", "-v", "rewrite", "--exclude", "secret", "--apply"]);
    out.success();
    let lines: Vec<serde_json::Value> = out.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let named = lines.iter().filter(|v| v["message_type"] == "verbose_status").count();
    assert_eq!(named, 2, "each snapshot named: {}", out.stderr);
    let last = lines.iter().rfind(|v| v["message_type"] == "status").unwrap_or_else(|| panic!("{}", out.stderr));
    assert_eq!(last["action"], "rewrite");
    assert_eq!(last["total_files"], 2, "{last}");
    assert_eq!(last["files_done"], 2, "{last}");
}

/// Issue 17, item 1: on a terminal, backup draws a bar that counts files (the terminal here is
/// the pseudo-terminal of util-linux's `script`).
#[test]
fn backup_draws_a_bar_on_a_terminal() {
    let repo = crate::repo();
    let src = repo.dir("src");
    for i in 0..20 {
        cairn_tests::data::write_random(&src.join(format!("f{i}")), i, 200_000);
    }
    let command = format!("{} -r {} backup {}", repo.bin().display(), repo.path().display(), src.display());
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-q", "-e", "-c", &command, "/dev/null"]).env("CAIRN_PASSWORD", cairn_tests::repo::PASSWORD);
    cmd.env("CAIRN_CACHE_DIR", repo.scratch().join("cache")).stdin(std::process::Stdio::null());
    let out = cmd.output().expect("util-linux `script` runs the backup on a pseudo-terminal");
    assert!(out.status.success(), "{out:?}");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains(" files ["), "no bar counting files was drawn: {screen:?}");
    assert!(screen.contains("snapshot ") && screen.contains(" saved"), "the summary follows the bar: {screen:?}");
}
