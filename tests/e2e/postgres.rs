//! Continuous archiving against a real PostgreSQL (issue 18): a cluster of its own per test,
//! archiving through `cairn pg wal-push` while pgbench runs, base backups with `cairn pg
//! backup`, restores to a point in time in a second data directory, retention with prune, and
//! gaps named by `cairn pg check`.
//!
//! Each cluster listens on a Unix socket in its own directory only (no TCP port), so tests run
//! side by side. PostgreSQL refuses to run as root: as root (CI), the servers and every cairn
//! command PostgreSQL would run go through `runuser -u postgres`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The PostgreSQL programs scripts/test.sh found.
fn pg_bin() -> PathBuf {
    PathBuf::from(std::env::var("CAIRN_TEST_PG_BIN").unwrap_or_else(|_| {
        panic!(
            "CAIRN_TEST_PG_BIN is not set: the PostgreSQL archiving tests need the PostgreSQL programs scripts/test.sh \
             installs. Run scripts/test.sh, or source scripts/pg.sh and call start_postgres before cargo test."
        )
    }))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// A command run as the user PostgreSQL runs as.
fn as_pg_user(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throw-away directory PostgreSQL's user may use.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let s = Scratch { dir };
        for sub in ["repo", "sock", "sock2", "cache", "out", "pg"] {
            s.owned_dir(sub);
        }
        let pw = s.path("password");
        std::fs::write(&pw, "pg archive password\n").unwrap();
        chmod(&pw, 0o600);
        chown_pg(&pw);
        s
    }

    /// A scratch directory whose repository is made (by PostgreSQL's user).
    fn with_repository() -> Self {
        let s = Self::new();
        ok(cairn(&s, &["init"]), "cairn init");
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn owned_dir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).unwrap();
        chown_pg(&p);
        p
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_pg(path: &Path) {
    if is_root() {
        let out = Command::new("chown").arg("postgres").arg(path).output().unwrap();
        ok(out, "chown");
    }
}

/// A running cluster whose WAL goes to a cairn repository.
struct Cluster<'a> {
    _scratch: &'a Scratch,
    data: PathBuf,
    socket: PathBuf,
    running: bool,
}

impl<'a> Cluster<'a> {
    /// A new cluster in `scratch`, archiving into `scratch`'s repository.
    fn archiving(scratch: &'a Scratch) -> Self {
        Self::archiving_with(scratch, "")
    }

    /// As [`Cluster::archiving`], with `global` (e.g. `--tenant acme`) before `pg wal-push`.
    fn archiving_with(scratch: &'a Scratch, global: &str) -> Self {
        let data = scratch.path("pg").join("data");
        ok(
            as_pg_user(pg_bin().join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data)
                .output()
                .unwrap(),
            "initdb",
        );
        let push = format!("{} {global} pg wal-push %p", cairn_line(scratch));
        let conf = format!(
            "\nwal_level = replica\narchive_mode = on\narchive_command = '{push}'\nlisten_addresses = ''\nmax_wal_size = 64MB\n"
        );
        append(&data.join("postgresql.conf"), &conf);
        let mut c = Cluster { _scratch: scratch, data, socket: scratch.path("sock"), running: false };
        c.start();
        c
    }

    /// A restored data directory in `scratch`, run on the second socket.
    fn restored(scratch: &'a Scratch, data: PathBuf) -> Self {
        let mut c = Cluster { _scratch: scratch, data, socket: scratch.path("sock2"), running: false };
        c.start();
        c
    }

    fn start(&mut self) {
        let log = self.data.with_extension("log");
        let out = as_pg_user(pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "-o"])
            .arg(format!("-k {}", self.socket.display()))
            .arg("start")
            .output()
            .unwrap();
        if !out.status.success() {
            panic!("pg_ctl start failed:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        self.running = true;
    }

    fn stop(&mut self) {
        if self.running {
            let _ = as_pg_user(pg_bin().join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"])
                .output();
            self.running = false;
        }
    }

    fn psql(&self, sql: &str) -> String {
        let out = Command::new(pg_bin().join("psql"))
            .arg("-h")
            .arg(&self.socket)
            .args(["-U", "postgres", "-At", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        ok(out, sql).trim().to_string()
    }

    /// Switches to a new WAL segment and waits until the one it left is archived.
    fn switch_and_wait(&self) -> String {
        let segment = self.psql("SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self.psql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver");
            let (last, failed) = status.split_once('|').unwrap();
            assert_eq!(failed, "0", "archive_command failed; server log:\n{}", self.log());
            if last >= segment.as_str() {
                return segment;
            }
            assert!(Instant::now() < deadline, "{segment} was not archived in 2 minutes; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    /// pg_basebackup's connection arguments for this cluster.
    fn connection(&self) -> Vec<String> {
        vec!["-h".into(), self.socket.display().to_string(), "-U".into(), "postgres".into()]
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The cairn command line for `scratch`'s repository, as PostgreSQL's commands run it.
fn cairn_line(scratch: &Scratch) -> String {
    format!(
        "{} -r {} --password-file {}",
        env!("CARGO_BIN_EXE_cairn"),
        scratch.path("repo").display(),
        scratch.path("password").display()
    )
}

/// Runs cairn on `scratch`'s repository as PostgreSQL's user.
fn cairn(scratch: &Scratch, args: &[&str]) -> Output {
    as_pg_user(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(scratch.path("repo"))
        .arg("--password-file")
        .arg(scratch.path("password"))
        .args(args)
        .env("CAIRN_KEY_CACHE", scratch.path("cache").join("keys"))
        .output()
        .unwrap()
}

fn cairn_json(scratch: &Scratch, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(cairn(scratch, &all), &args.join(" "))).unwrap()
}

fn base_backup(scratch: &Scratch, cluster: &Cluster<'_>) -> Value {
    let mut args = vec!["pg", "backup", "--"];
    let conn = cluster.connection();
    args.extend(conn.iter().map(String::as_str));
    cairn_json(scratch, &args)
}

fn wal_objects(scratch: &Scratch) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(scratch.path("repo").join("wal"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Writes a policy file (readable by PostgreSQL's user) for `scratch`'s repository with one
/// `postgres` source for `cluster`, daily with a 10-minute RPO: `source` gives its name (and
/// more keys), `tail` the tables after it. Returns its path.
fn write_policy(scratch: &Scratch, cluster: &Cluster<'_>, source: &str, tail: &str) -> String {
    let policy = scratch.path("out").join("policy.toml");
    let args: Vec<String> = cluster.connection().iter().map(|a| format!("{a:?}")).collect();
    std::fs::write(
        &policy,
        format!(
            "[repository]\nurl = \"{}\"\npassword_file = \"{}\"\n\n[[source]]\n{source}\n\
             postgres = {{ cluster = \"main\", args = [{}], pg_bin = \"{}\" }}\nevery = \"1d\"\nrpo = \"10m\"\n\n{tail}",
            scratch.path("repo").display(),
            scratch.path("password").display(),
            args.join(", "),
            pg_bin().display()
        ),
    )
    .unwrap();
    chown_pg(&policy);
    policy.display().to_string()
}

/// The server's clock now, as RFC 3339.
fn server_now(c: &Cluster<'_>) -> String {
    c.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
}

#[test]
fn archive_restore_to_a_second_and_retention_keep_one_chain() {
    let scratch = Scratch::with_repository();
    let cluster = Cluster::archiving(&scratch);
    cluster.psql("CREATE TABLE orders (id serial PRIMARY KEY, label text, at timestamptz DEFAULT clock_timestamp())");
    ok(
        Command::new(pg_bin().join("pgbench"))
            .arg("-h")
            .arg(&cluster.socket)
            .args(["-U", "postgres", "-i", "-s", "2", "-q", "postgres"])
            .output()
            .unwrap(),
        "pgbench -i",
    );
    // pgbench runs flat out through everything below: archiving must keep up with it.
    let bench = Command::new(pg_bin().join("pgbench"))
        .arg("-h")
        .arg(&cluster.socket)
        .args(["-U", "postgres", "-c", "2", "-j", "2", "-T", "25", "postgres"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let first = base_backup(&scratch, &cluster);
    assert_eq!(first["postgres"]["cluster"], "main");
    cluster.psql("INSERT INTO orders (label) SELECT 'early' FROM generate_series(1, 50)");
    cluster.switch_and_wait();
    let second = base_backup(&scratch, &cluster);

    // Rows on both sides of a target second.
    cluster.psql("INSERT INTO orders (label) SELECT 'before' FROM generate_series(1, 100)");
    std::thread::sleep(Duration::from_millis(1200));
    let target = server_now(&cluster);
    std::thread::sleep(Duration::from_millis(1200));
    cluster.psql("INSERT INTO orders (label) SELECT 'after' FROM generate_series(1, 100)");
    cluster.switch_and_wait();
    let third = base_backup(&scratch, &cluster);
    cluster.psql("INSERT INTO orders (label) SELECT 'latest' FROM generate_series(1, 10)");
    let bench = {
        let out = bench.wait_with_output().unwrap();
        assert!(out.status.success(), "pgbench: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    drop(bench);
    cluster.switch_and_wait();
    let archiver = cluster.psql("SELECT archived_count, failed_count FROM pg_stat_archiver");
    assert!(archiver.ends_with("|0"), "no archive_command failed: {archiver}");

    let check = cairn_json(&scratch, &["pg", "check"]);
    assert_eq!(check["whole"], true, "{check}");
    assert_eq!(check["backups"].as_array().unwrap().len(), 3);

    // Retention: the oldest base backup goes, and the WAL only it needed with it.
    let before_prune = wal_objects(&scratch);
    ok(cairn(&scratch, &["forget", "--keep-last", "2"]), "forget --keep-last 2");
    let pruned = cairn_json(&scratch, &["prune", "--grace", "0s"]);
    let expired = pruned["wal_expired"]["files"].as_u64().unwrap();
    assert!(expired >= 1, "the WAL before the second base backup is expired: {pruned}");
    let after_prune = wal_objects(&scratch);
    assert_eq!(after_prune.len() as u64, before_prune.len() as u64 - expired);
    let check = cairn_json(&scratch, &["pg", "check"]);
    assert_eq!(check["whole"], true, "every kept base backup is still whole after prune: {check}");
    assert_eq!(check["backups"][0]["snapshot"], second["snapshot"]);

    // status: the newest archived WAL's age is the recovery point achieved; the recovery
    // window starts at the oldest kept base backup's end.
    let status = cairn_json(&scratch, &["status", "--max-age", "1d"]);
    let pg = &status["postgres"][0];
    assert_eq!(pg["cluster"], "main");
    assert_eq!(pg["ok"], true, "{status}");
    assert_eq!(pg["window_from"], second["postgres"]["stop_time"], "{status}");
    assert!(pg["newest_wal"].as_str().unwrap().starts_with("00000001"));
    let late = cairn(&scratch, &["status", "--max-age", "1d", "--wal-max-age", "0s"]);
    assert_eq!(late.status.code(), Some(1), "WAL older than the objective fails status");
    assert!(String::from_utf8_lossy(&late.stdout).contains("LATE  postgres cluster main"));

    // Restore to the target second from the newest base backup before it (the second), in a
    // second data directory: exactly the rows committed before the target are there.
    let r1 = scratch.path("pg").join("r1");
    let target_arg = format!("--to-time={target}");
    let restored =
        cairn_json(&scratch, &["pg", "restore", "--no-archive", "--target", &r1.display().to_string(), &target_arg]);
    assert_eq!(restored["snapshot"], second["snapshot"], "the newest base backup before the target");
    let mut copy = Cluster::restored(&scratch, r1);
    wait_promoted(&copy);
    assert_eq!(copy.psql("SELECT count(*) FROM orders WHERE label = 'early'"), "50");
    assert_eq!(copy.psql("SELECT count(*) FROM orders WHERE label = 'before'"), "100");
    assert_eq!(copy.psql("SELECT count(*) FROM orders WHERE label IN ('after', 'latest')"), "0");
    assert_eq!(
        copy.psql(&format!("SELECT count(*) FROM orders WHERE at > '{target}'")),
        "0",
        "nothing committed after the target second"
    );
    copy.stop();

    // --latest from the newest base backup: every row.
    let r2 = scratch.path("pg").join("r2");
    let restored =
        cairn_json(&scratch, &["pg", "restore", "--no-archive", "--latest", "--target", &r2.display().to_string()]);
    assert_eq!(restored["snapshot"], third["snapshot"]);
    let copy = Cluster::restored(&scratch, r2);
    wait_promoted(&copy);
    assert_eq!(copy.psql("SELECT count(*) FROM orders WHERE label = 'latest'"), "10");
}

/// Waits until a restored cluster has replayed and promoted.
fn wait_promoted(c: &Cluster<'_>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while c.psql("SELECT pg_is_in_recovery()") != "f" {
        assert!(Instant::now() < deadline, "the restored cluster did not promote; log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_gap_in_the_archive_is_named_by_pg_check() {
    let scratch = Scratch::with_repository();
    let cluster = Cluster::archiving(&scratch);
    cluster.psql("CREATE TABLE big AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g");
    cluster.psql("VACUUM FREEZE");
    cluster.psql("CHECKPOINT");
    base_backup(&scratch, &cluster);
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let again = base_backup(&scratch, &cluster);
    let (new, read) =
        (again["summary"]["bytes_new"].as_u64().unwrap(), again["summary"]["bytes_read"].as_u64().unwrap());
    assert!(read > 40 << 20, "{again}");
    // The changed pages (the new table, the catalogs, pg_control) cost a chunk each, of 1 MiB
    // on average: in a 40 MiB cluster that is a few of them.
    assert!(new < read / 4, "a second base backup of a barely changed cluster adds little: {again}");
    cluster.switch_and_wait();
    let known = wal_objects(&scratch);
    cluster.psql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g");
    let lost = cluster.switch_and_wait();
    let new: Vec<_> = wal_objects(&scratch).difference(&known).cloned().collect();
    assert_eq!(new.len(), 1, "one segment archived: {new:?}");
    cluster.psql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g");
    cluster.switch_and_wait();
    assert_eq!(cairn_json(&scratch, &["pg", "check"])["whole"], true);

    // An off-site copy gets the archive with the base backups, under its own keys.
    let offsite = scratch.path("out").join("offsite").display().to_string();
    let init = as_pg_user(env!("CARGO_BIN_EXE_cairn"))
        .args(["-r", &offsite, "--password-file"])
        .arg(scratch.path("password"))
        .arg("init")
        .output()
        .unwrap();
    ok(init, "init of the copy");
    let pw = scratch.path("password").display().to_string();
    let copied = cairn_json(&scratch, &["copy", "--to", &offsite, "--to-password-file", &pw]);
    let files = wal_objects(&scratch).len() as u64;
    assert_eq!(copied["wal_copied"]["files"].as_u64(), Some(files), "{copied}");
    let there = as_pg_user(env!("CARGO_BIN_EXE_cairn"))
        .args(["--json", "-r", &offsite, "--password-file", &pw, "pg", "check"])
        .output()
        .unwrap();
    let there: Value = serde_json::from_str(&ok(there, "pg check of the copy")).unwrap();
    assert_eq!((there["whole"].as_bool(), there["files"].as_u64()), (Some(true), Some(files)), "{there}");
    let again = cairn_json(&scratch, &["copy", "--to", &offsite, "--to-password-file", &pw]);
    assert_eq!(again["wal_copied"]["files"], 0, "what the copy has is not copied again");

    std::fs::remove_file(scratch.path("repo").join("wal").join(&new[0])).unwrap();
    let out = cairn(&scratch, &["pg", "check"]);
    assert_eq!(out.status.code(), Some(1), "a gap fails the check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("missing {lost}")), "the missing segment is named: {text}");
    assert!(text.contains("BROKEN"), "{text}");

    // PostgreSQL asking for it gets "not archived" (exit 1), not a damaged archive.
    let fetched = cairn(&scratch, &["pg", "wal-fetch", &lost, &scratch.path("out").join("x").display().to_string()]);
    assert_eq!(fetched.status.code(), Some(1));

    // A second server archiving under the same cluster name shows in its segments' headers.
    let mut foreign = vec![0u8; 8192];
    foreign[2] = 0x02; // XLP_LONG_HEADER
    foreign[24..32].copy_from_slice(&42u64.to_le_bytes());
    foreign[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
    let path = scratch.owned_dir("pg_wal").join("0000000100000000000000F0");
    std::fs::write(&path, &foreign).unwrap();
    chown_pg(&path);
    ok(cairn(&scratch, &["pg", "wal-push", &path.display().to_string()]), "wal-push of another system's segment");
    let out = cairn(&scratch, &["pg", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("written by database system 42"), "{text}");
}

#[test]
fn wal_push_is_create_only() {
    let scratch = Scratch::with_repository();
    let dir = scratch.owned_dir("pg_wal");
    let segment = dir.join("000000010000000000000007");
    let mut data = vec![0u8; 1 << 20];
    data[..11].copy_from_slice(b"first bytes");
    std::fs::write(&segment, &data).unwrap();
    chown_pg(&segment);
    let path = segment.display().to_string();
    ok(cairn(&scratch, &["pg", "wal-push", &path]), "the first push");
    ok(cairn(&scratch, &["pg", "wal-push", &path]), "the same content again");
    data[0] = b'F';
    std::fs::write(&segment, &data).unwrap();
    let out = cairn(&scratch, &["pg", "wal-push", &segment.display().to_string()]);
    assert_eq!(out.status.code(), Some(21), "different content is refused: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already archived with different content"));
    let back = scratch.path("out").join("back");
    let fetched = cairn(&scratch, &["pg", "wal-fetch", "000000010000000000000007", &back.display().to_string()]);
    ok(fetched, "wal-fetch");
    assert_eq!(std::fs::read(&back).unwrap()[..11], *b"first bytes", "the first content stays");
}

#[test]
fn timelines_are_followed_after_a_failover() {
    let scratch = Scratch::with_repository();
    let mut primary = Cluster::archiving(&scratch);
    primary.psql("CREATE TABLE orders (id serial PRIMARY KEY, label text)");
    let base = base_backup(&scratch, &primary);
    primary.psql("INSERT INTO orders (label) SELECT 'one' FROM generate_series(1, 30)");
    primary.switch_and_wait();
    // The primary is lost; its replacement is restored to the end of the archive, promotes to
    // timeline 2 and archives into the same chain.
    primary.stop();
    let standby = scratch.path("pg").join("standby");
    cairn_json(&scratch, &["pg", "restore", "--latest", "--target", &standby.display().to_string()]);
    let promoted = Cluster::restored(&scratch, standby);
    wait_promoted(&promoted);
    assert_eq!(promoted.psql("SELECT timeline_id FROM pg_control_checkpoint()"), "2");
    promoted.psql("INSERT INTO orders (label) SELECT 'two-before' FROM generate_series(1, 20)");
    std::thread::sleep(Duration::from_millis(1200));
    let target = server_now(&promoted);
    std::thread::sleep(Duration::from_millis(1200));
    promoted.psql("INSERT INTO orders (label) SELECT 'two-after' FROM generate_series(1, 20)");
    let last = promoted.switch_and_wait();
    assert!(last.starts_with("00000002"), "{last}");

    let check = cairn_json(&scratch, &["pg", "check"]);
    assert_eq!(check["whole"], true, "{check}");
    assert_eq!(check["backups"][0]["reaches"], last, "the timeline-1 base backup reaches timeline 2's newest: {check}");

    // A restore to a second on timeline 2, from the base backup taken on timeline 1.
    drop(promoted);
    let again = scratch.path("pg").join("again");
    let target_arg = format!("--to-time={target}");
    let restored =
        cairn_json(&scratch, &["pg", "restore", "--no-archive", "--target", &again.display().to_string(), &target_arg]);
    assert_eq!(restored["snapshot"], base["snapshot"]);
    let copy = Cluster::restored(&scratch, again);
    wait_promoted(&copy);
    assert_eq!(copy.psql("SELECT count(*) FROM orders WHERE label = 'one'"), "30");
    assert_eq!(copy.psql("SELECT count(*) FROM orders WHERE label = 'two-before'"), "20");
    assert_eq!(copy.psql("SELECT count(*) FROM orders WHERE label = 'two-after'"), "0");
}

#[test]
fn a_policy_takes_base_backups_and_judges_the_rpo_by_the_archive() {
    let scratch = Scratch::with_repository();
    let cluster = Cluster::archiving(&scratch);
    let policy = write_policy(&scratch, &cluster, "name = \"orders-db\"", "[retention]\ntiers = [\"1d:7d\"]\n");
    // No base backup yet: the promise is not kept, whatever WAL is archived.
    cluster.switch_and_wait();
    let status = cairn(&scratch, &["status", "--policy", &policy]);
    assert_eq!(status.status.code(), Some(1), "{}", String::from_utf8_lossy(&status.stdout));

    ok(cairn(&scratch, &["run", "--policy", &policy]), "cairn run");
    let snapshots = cairn_json(&scratch, &["snapshots"]);
    let base = &snapshots.as_array().unwrap()[0];
    assert_eq!(base["tags"][0], "orders-db");
    assert_eq!(base["postgres"]["cluster"], "main", "{base}");
    cluster.psql("CREATE TABLE t AS SELECT 1 AS x");
    let segment = cluster.switch_and_wait();
    let status = cairn_json(&scratch, &["status", "--policy", &policy]);
    let source = &status["sources"][0];
    assert_eq!(source["ok"], true, "{status}");
    assert!(source["age_seconds"].as_i64().unwrap() < 120, "the age of the newest archived WAL: {status}");

    // restore_command (and archive_command) may name the policy file instead of the repository.
    let dest = scratch.path("out").join("fetched").display().to_string();
    let fetched = as_pg_user(env!("CARGO_BIN_EXE_cairn"))
        .args(["pg", "--policy", &policy, "wal-fetch", &segment, &dest])
        .env("CAIRN_KEY_CACHE", scratch.path("cache").join("keys"))
        .output()
        .unwrap();
    ok(fetched, "wal-fetch with the policy's repository");
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), 16 << 20);
}

/// A tenant's cluster (issue 16, item 5): its base backups and its WAL go into the tenant's
/// repository, the policy judges its RPO by that archive, and shredding the tenant takes the
/// archive with it.
#[test]
fn a_tenants_cluster_archives_into_the_tenant_and_is_shredded_with_it() {
    let scratch = Scratch::with_repository();
    ok(cairn(&scratch, &["tenant", "add", "acme"]), "cairn tenant add");
    let cluster = Cluster::archiving_with(&scratch, "--tenant acme");
    let policy =
        write_policy(&scratch, &cluster, "name = \"acme-db\"\ntenant = \"acme\"", "[erasure]\ndeadline = \"60d\"\n");
    ok(cairn(&scratch, &["run", "--policy", &policy]), "cairn run");
    cluster.psql("CREATE TABLE t AS SELECT 1 AS x");
    cluster.switch_and_wait();
    let mine = cairn_json(&scratch, &["--tenant", "acme", "snapshots"]);
    assert_eq!(mine[0]["postgres"]["cluster"], "main", "{mine}");
    assert_eq!(cairn_json(&scratch, &["snapshots"]), serde_json::json!([]), "nothing in the repository itself");
    assert!(wal_objects(&scratch).is_empty(), "no WAL in the repository itself");
    let tenants = cairn_json(&scratch, &["tenant", "list"]);
    let id = tenants[0]["id"].as_str().unwrap().to_string();
    let tenant_wal = scratch.path("repo").join("tenants").join(&id).join("wal");
    assert!(std::fs::read_dir(&tenant_wal).unwrap().count() > 0, "the WAL is archived into the tenant");
    let status = cairn_json(&scratch, &["status", "--policy", &policy]);
    assert_eq!(status["sources"][0]["ok"], true, "the RPO is judged by the tenant's archive: {status}");
    ok(cairn(&scratch, &["--tenant", "acme", "pg", "check"]), "pg check of the tenant");

    ok(cairn(&scratch, &["erase", "--policy", &policy, "--tenant", "acme", "--request", "EXIT-1"]), "erase --tenant");
    assert!(!scratch.path("repo").join("tenants").join(&id).exists(), "the tenant's archive is gone with it");
    let fetched = cairn(&scratch, &["--tenant", "acme", "pg", "wal-fetch", "000000010000000000000001", "/dev/null"]);
    assert!(!fetched.status.success(), "nothing of the tenant opens any more");
}

#[test]
fn wal_fetch_fetches_the_next_segments_ahead_in_the_background() {
    let scratch = Scratch::with_repository();
    let dir = scratch.owned_dir("pg_wal");
    let names: Vec<String> = (0x10..0x14).map(|n| format!("0000000100000000000000{n:02X}")).collect();
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(name);
        std::fs::write(&path, format!("segment {i}").repeat(1000)).unwrap();
        chown_pg(&path);
        ok(cairn(&scratch, &["pg", "wal-push", &path.display().to_string()]), "wal-push");
    }
    let spool = scratch.path("out").join("spool").display().to_string();
    let dest = |i: usize| scratch.path("out").join(format!("got{i}")).display().to_string();
    let fetch = |i: usize| cairn(&scratch, &["-v", "pg", "wal-fetch", "--spool", &spool, &names[i], &dest(i)]);

    let first = fetch(0);
    ok(first, "wal-fetch of the first segment");
    assert_eq!(std::fs::read_to_string(dest(0)).unwrap(), "segment 0".repeat(1000));
    // The background fetcher writes the next ones into the spool.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !names[1..].iter().all(|n| Path::new(&spool).join(n).exists()) {
        assert!(Instant::now() < deadline, "the next segments were not fetched ahead");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = fetch(1);
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("from the fetch-ahead spool"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(std::fs::read_to_string(dest(1)).unwrap(), "segment 1".repeat(1000));
    assert!(!Path::new(&spool).join(&names[1]).exists(), "a delivered segment leaves the spool");
    // Past the end of the archive: "not archived", exit 1.
    let missing = cairn(&scratch, &["pg", "wal-fetch", "--spool", &spool, "000000010000000000000020", &dest(9)]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn restores_stop_at_a_wal_position_and_at_a_transaction() {
    let scratch = Scratch::with_repository();
    let cluster = Cluster::archiving(&scratch);
    cluster.psql("CREATE TABLE orders (id serial PRIMARY KEY, label text)");
    base_backup(&scratch, &cluster);
    cluster.psql("INSERT INTO orders (label) SELECT 'first' FROM generate_series(1, 10)");
    let lsn = cluster.psql("SELECT pg_current_wal_insert_lsn()");
    cluster.psql("INSERT INTO orders (label) SELECT 'second' FROM generate_series(1, 10)");
    let xid = cluster.psql(
        "BEGIN; INSERT INTO orders (label) SELECT 'third' FROM generate_series(1, 10); SELECT txid_current(); COMMIT;",
    );
    cluster.psql("INSERT INTO orders (label) SELECT 'fourth' FROM generate_series(1, 10)");
    cluster.switch_and_wait();

    let count = |c: &Cluster<'_>| {
        c.psql("SELECT string_agg(label || '=' || n, ',' ORDER BY label) FROM (SELECT label, count(*) AS n FROM orders GROUP BY label) x")
    };
    let at_lsn = scratch.path("pg").join("at-lsn");
    let lsn_arg = format!("--to-lsn={lsn}");
    cairn_json(&scratch, &["pg", "restore", "--no-archive", "--target", &at_lsn.display().to_string(), &lsn_arg]);
    let mut copy = Cluster::restored(&scratch, at_lsn);
    wait_promoted(&copy);
    assert_eq!(count(&copy), "first=10", "replay stopped at {lsn}");
    copy.stop();

    let at_xid = scratch.path("pg").join("at-xid");
    let xid_arg = format!("--to-xid={xid}");
    cairn_json(&scratch, &["pg", "restore", "--no-archive", "--target", &at_xid.display().to_string(), &xid_arg]);
    let copy = Cluster::restored(&scratch, at_xid);
    wait_promoted(&copy);
    assert_eq!(count(&copy), "first=10,second=10,third=10", "replay stopped after transaction {xid}");
}
