//! Dumps as streams (issue 2, item 5): `--stdin`, `--stdin-from-command`, producers that fail or
//! die (no snapshot, non-zero exit naming the status), and a real `pg_dump`.

use std::process::Command;

use cairn_tests::{TestRepo, args, data, exit};
use serde_json::json;

use crate::repo;

fn snapshot_count(repo: &TestRepo) -> usize {
    repo.snapshots().len()
}

#[test]
fn stdin_dump_round_trips() {
    let repo = repo();
    let mut dump = data::text_bytes(31, 6 << 20);
    dump.extend(data::random_bytes(32, 1 << 20));
    let out =
        repo.run_with_stdin(["--json", "backup", "--stdin", "--stdin-filename", "db.sql"], &dump).success().json();
    assert_eq!(out["summary"]["bytes_read"], json!(dump.len()));
    assert!(repo.dump("latest", "/db.sql") == dump, "dump differs from what was piped in");
    // A relative path names the same file.
    assert!(repo.dump("latest", "db.sql") == dump);
    let snaps = repo.snapshots();
    assert_eq!(snaps[0]["paths"], json!(["/db.sql"]));
    assert_eq!(repo.run(["ls", "latest"]).success().stdout_text(), "/db.sql\n");

    // Restore puts it in a file of that name.
    let target = repo.scratch().join("restore");
    repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
    assert!(std::fs::read(target.join("db.sql")).unwrap() == dump);

    // An empty stream is an empty file, not an error.
    repo.run_with_stdin(["backup", "--stdin", "--stdin-filename", "empty.sql"], b"").success();
    assert_eq!(repo.dump("latest", "/empty.sql"), b"");
}

#[test]
fn command_dump_round_trips() {
    let repo = repo();
    let source = repo.scratch().join("generated.bin");
    let mut bytes = data::random_bytes(41, 3 << 20);
    bytes.extend(data::text_bytes(42, 2 << 20));
    data::write(&source, &bytes);
    repo.backup(args![
        "--stdin-from-command",
        "--stdin-filename",
        "x",
        "--",
        "sh",
        "-c",
        "cat \"$0\"; exit 0",
        &source
    ]);
    assert!(repo.dump("latest", "/x") == bytes, "dump differs from the command's output");

    // A generator whose output we know without a file.
    repo.backup(["--stdin-from-command", "--stdin-filename", "seq.txt", "--", "seq", "1", "200000"]);
    let want: String = (1..=200_000).map(|n| format!("{n}\n")).collect();
    assert!(repo.dump("latest", "/seq.txt") == want.as_bytes());
}

#[test]
fn failing_or_killed_command_writes_no_snapshot() {
    let repo = repo();
    let source = repo.scratch().join("big.bin");
    let big = data::write_random(&source, 51, 4 << 20);
    repo.backup(args!["--stdin-from-command", "--stdin-filename", "x", "--", "cat", &source]);
    assert_eq!(snapshot_count(&repo), 1);

    let attempts: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (args!["sh", "-c", "echo partial; exit 3"], "exit status: 3"),
        // Megabytes already stored when the producer fails: still no snapshot.
        (args!["sh", "-c", "cat \"$0\"; exit 3", &source], "exit status: 3"),
        (args!["sh", "-c", "echo partial; kill -KILL $$"], "signal: 9"),
        (args!["sh", "-c", "cat \"$0\"; kill -TERM $$", &source], "signal: 15"),
        (args!["/nonexistent/dumper", "--all"], "/nonexistent/dumper"),
    ];
    for (command, status) in attempts {
        let mut a = args!["backup", "--stdin-from-command", "--stdin-filename", "x", "--"];
        a.extend(command);
        let out = repo.run(&a);
        out.code(exit::SOURCE_UNREADABLE).stderr_has(status);
        assert_eq!(snapshot_count(&repo), 1, "a failed dump must not become a snapshot\n{}", out.report());
    }

    // Nothing lost: the good snapshot still restores, and the next good dump works.
    assert!(repo.dump("latest", "/x") == big);
    repo.backup(["--stdin-from-command", "--stdin-filename", "x", "--", "sh", "-c", "echo fresh"]);
    assert_eq!(snapshot_count(&repo), 2);
    assert_eq!(repo.dump("latest", "/x"), b"fresh\n");
}

/// The PostgreSQL that scripts/test.sh starts: (pg_dump, host, port).
fn postgres() -> (String, String, String) {
    let get = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the pg_dump tests need the PostgreSQL server that scripts/test.sh starts \
                 (database `shop` on 127.0.0.1:25432). Run scripts/test.sh, or source scripts/pg.sh and call \
                 start_postgres before cargo test."
            )
        })
    };
    let bin = get("CAIRN_TEST_PG_BIN");
    (format!("{bin}/pg_dump"), get("CAIRN_TEST_PG_HOST"), get("CAIRN_TEST_PG_PORT"))
}

/// pg_dump arguments for `database`. Newer pg_dump releases write a random `\restrict` key into
/// every dump; a fixed one keeps two dumps of a static database byte-identical.
fn pg_dump_args(pg_dump: &str, host: &str, port: &str, database: &str) -> Vec<String> {
    let mut a: Vec<String> = [pg_dump, "-h", host, "-p", port, "-U", "postgres"].map(String::from).into();
    let help = Command::new(pg_dump).arg("--help").output().expect("running pg_dump --help");
    if String::from_utf8_lossy(&help.stdout).contains("--restrict-key") {
        a.push("--restrict-key=cairntest".into());
    }
    a.push(database.into());
    a
}

#[test]
fn pg_dump_round_trips() {
    let (pg_dump, host, port) = postgres();
    let argv = pg_dump_args(&pg_dump, &host, &port, "shop");
    let repo = repo();
    let mut a = args!["--stdin-from-command", "--stdin-filename", "shop.sql", "--"];
    a.extend(argv.iter().map(Into::into));
    let report = repo.backup(&a);

    let direct = Command::new(&argv[0]).args(&argv[1..]).output().expect("running pg_dump");
    assert!(direct.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&direct.stderr));
    assert!(direct.stdout.len() > 1 << 20, "the shop database should give a dump of megabytes");
    assert_eq!(report["summary"]["bytes_read"], json!(direct.stdout.len()));
    let restored = repo.dump("latest", "/shop.sql");
    assert!(restored == direct.stdout, "the dump cairn stored differs from a direct pg_dump");
    assert!(String::from_utf8_lossy(&restored).contains("CREATE TABLE public.customers"));
}

#[test]
fn pg_dump_of_a_missing_database_fails_without_snapshot() {
    let (pg_dump, host, port) = postgres();
    let argv = pg_dump_args(&pg_dump, &host, &port, "no_such_database");
    let repo = repo();
    let mut a = args!["backup", "--stdin-from-command", "--stdin-filename", "shop.sql", "--"];
    a.extend(argv.iter().map(Into::into));
    let out = repo.run(&a);
    out.code(exit::SOURCE_UNREADABLE).stderr_has("exit status: 1").stderr_has("no_such_database").stderr_has("pg_dump");
    assert_eq!(snapshot_count(&repo), 0);
}
