//! The commands against Azure Blob storage (Azurite) and a password-protected WebDAV server
//! (rclone) on 127.0.0.1, started by scripts/test.sh, as s3.rs runs them against S3 (issue 5);
//! and the errors a user gets for a URL cairn cannot use: an unknown scheme, a cloud store
//! without credentials, a wrong WebDAV password.
//!
//! A missing server is a failure naming the script that starts it, never a skip. GCS has no
//! emulator here that object_store can write to (see README.md, "Repository URLs"), so gs://
//! is covered by its error paths only.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_tests::fixture::build_edge_tree;
use cairn_tests::{Output, TestRepo, args};

use crate::restored;

/// Small chunks and packs, so a small tree still makes several packs for prune to work on.
const INIT_OPTIONS: [&str; 4] = ["--chunk-avg-kib", "64", "--pack-size-mib", "1"];

/// A variable the server scripts export; missing is a failure, not a skip.
fn server_var(name: &str, script: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test.sh, which starts {script} on 127.0.0.1")
    })
}

/// A name no other test or run uses.
fn unique(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("e2e-{test}-{}-{nanos}", std::process::id())
}

/// A repository in Azurite, reached the way a user reaches the emulator: `AZURE_STORAGE_USE_EMULATOR`
/// and `AZURITE_BLOB_STORAGE_URL`, nothing else.
fn azure_repo(test: &str) -> TestRepo {
    let script = "Azurite (scripts/azurite.sh)";
    let container = server_var("AZURE_TEST_CONTAINER", script);
    let blob_url = server_var("AZURE_TEST_BLOB_URL", script);
    let env = [("AZURE_STORAGE_USE_EMULATOR", "true"), ("AZURITE_BLOB_STORAGE_URL", blob_url.as_str())];
    TestRepo::at_url(env!("CARGO_BIN_EXE_cairn"), &format!("az://{container}/{}", unique(test)), &env)
}

const WEBDAV_SCRIPT: &str = "rclone serve webdav (scripts/webdav.sh)";

/// A repository in a fresh folder of the WebDAV server, its user and password in the URL.
fn webdav_repo(test: &str) -> TestRepo {
    let base = server_var("WEBDAV_TEST_URL", WEBDAV_SCRIPT);
    TestRepo::at_url(env!("CARGO_BIN_EXE_cairn"), &format!("{base}/{}", unique(test)), &[])
}

/// init, two backups, restore compared byte for byte, check --read-data, forget + prune,
/// snapshots, and a check without the cache: the whole life of a repository.
fn backup_restore_check_prune(repo: &TestRepo) {
    repo.init_here(&INIT_OPTIONS);
    let tree = build_edge_tree(&repo.scratch().join("src"));
    cairn_tests::data::settle();
    let first = repo.backup(args![&tree.root]);
    let second = repo.backup(args![&tree.root]);
    assert_eq!(second["summary"]["bytes_read"], 0, "unchanged files are not read again: {second}");
    assert_eq!(second["parent"], first["snapshot"]);
    assert_eq!(repo.snapshots().len(), 2);
    let target = repo.dir("restore");
    repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    cairn_tests::assert_trees_equal(&tree.root, &restored(&target, &tree.root));
    repo.run(args!["check", "--read-data"]).success();
    assert_eq!(repo.dump("latest", &tree.root.join("small.txt").display().to_string()), b"hello, cairn\n");
    repo.run(args!["forget", "--keep-last", "1", "--prune", "--grace", "0s"]).success();
    repo.run(args!["prune", "--grace", "0s"]).success();
    repo.run(args!["check", "--read-data"]).success();
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], second["snapshot"], "the newest snapshot is the one kept");
    // Without the cache, from the store alone, the same answers.
    repo.run(args!["--no-cache", "check", "--read-data"]).success();
    let again = repo.dir("restore-again");
    repo.run(args!["--no-cache", "restore", "latest", "--target", &again]).success();
    cairn_tests::assert_trees_equal(&tree.root, &restored(&again, &tree.root));
}

/// A second init finds the config and overwrites nothing.
fn init_twice_is_refused(repo: &TestRepo) {
    repo.init_here(&[]);
    repo.run(args!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"])
        .failure()
        .stderr_has("already holds a repository");
    repo.run(args!["snapshots"]).success();
}

#[test]
fn azure_backup_restore_check_and_prune() {
    backup_restore_check_prune(&azure_repo("life"));
}

#[test]
fn azure_init_twice_is_refused() {
    init_twice_is_refused(&azure_repo("init-twice"));
}

#[test]
fn webdav_backup_restore_check_and_prune() {
    backup_restore_check_prune(&webdav_repo("life"));
}

#[test]
fn webdav_init_twice_is_refused() {
    init_twice_is_refused(&webdav_repo("init-twice"));
}

#[test]
fn webdav_wrong_password_is_refused_and_never_printed() {
    let base = server_var("WEBDAV_TEST_URL", WEBDAV_SCRIPT);
    let password = server_var("WEBDAV_TEST_PASSWORD", WEBDAV_SCRIPT);
    let wrong = base.replacen(&format!(":{password}@"), ":not-the-password@", 1);
    assert_ne!(wrong, base, "WEBDAV_TEST_URL carries the password");
    let repo = TestRepo::at_url(env!("CARGO_BIN_EXE_cairn"), &format!("{wrong}/{}", unique("auth")), &[]);
    let out = repo.run(args!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    out.failure().stderr_has("authentication").stderr_has(":***@");
    assert!(!out.stderr.contains("not-the-password"), "the password is printed:\n{}", out.stderr);
}

/// `cairn init` at `url` with `env` and every cloud credential variable of the caller removed.
fn init_without_credentials(url: &str, env: &[(&str, &str)]) -> Output {
    let repo = TestRepo::at_url(env!("CARGO_BIN_EXE_cairn"), url, env);
    let mut cmd = repo.command(args!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let cloud = ["AZURE_", "AZURITE_", "GOOGLE_", "GCE_METADATA_", "AWS_", "IDENTITY_", "MSI_", "SERVICE_ACCOUNT"]
            .iter()
            .any(|p| name.starts_with(p));
        if cloud && !env.iter().any(|(k, _)| *k == name) {
            cmd.env_remove(name);
        }
    }
    // Where gcloud would have left default credentials: nowhere.
    cmd.env("HOME", repo.scratch());
    Output::of(cmd)
}

#[test]
fn cloud_urls_without_credentials_name_what_is_missing() {
    init_without_credentials("az://container/repo", &[])
        .failure()
        .stderr_has("no Azure storage account")
        .stderr_has("AZURE_STORAGE_ACCOUNT_NAME");
    init_without_credentials("az://container/repo", &[("AZURE_STORAGE_ACCOUNT_NAME", "someaccount")])
        .failure()
        .stderr_has("no Azure credentials")
        .stderr_has("AZURE_STORAGE_ACCOUNT_KEY");
    init_without_credentials("gs://bucket/repo", &[])
        .failure()
        .stderr_has("no GCS credentials")
        .stderr_has("GOOGLE_SERVICE_ACCOUNT");
    init_without_credentials("s3://bucket/repo", &[])
        .failure()
        .stderr_has("no S3 credentials")
        .stderr_has("AWS_ACCESS_KEY_ID");
}

#[test]
fn unknown_url_scheme_is_refused_by_name() {
    init_without_credentials("ftp://127.0.0.1/repo", &[])
        .failure()
        .stderr_has("unsupported repository URL scheme `ftp://`");
}
