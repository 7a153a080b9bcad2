//! [`TestRepo`]: a repository in a temporary directory and the `cairn` binary run against it.
//!
//! Every run gets the repository with `-r` and the password through `CAIRN_PASSWORD`; the other
//! `CAIRN_*` variables of the caller are removed so a developer's own settings cannot leak in.
//! Standard input is closed unless a test gives some, so cairn never waits for a prompt.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The password of every test repository.
pub const PASSWORD: &str = "correct horse battery staple";

/// Builds an argument list from strings and paths alike: `args!["restore", "latest", "--target", &dir]`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(::std::ffi::OsString::from($a)),*] };
}

/// The environment variables cairn reads; removed from every run unless a test sets them.
const CAIRN_VARS: [&str; 7] = [
    "CAIRN_REPOSITORY",
    "CAIRN_PASSWORD",
    "CAIRN_PASSWORD_FILE",
    "CAIRN_PASSWORD_COMMAND",
    "CAIRN_CACHE_DIR",
    "CAIRN_TEST_FAULTS",
    "CAIRN_TEST_INDEX_TABLE_MIN",
];

/// A repository in its own temporary directory, with scratch space beside it.
pub struct TestRepo {
    bin: PathBuf,
    /// Holds `repo/` and whatever the test creates with [`TestRepo::dir`].
    scratch: TempDir,
    /// The repository: a directory, or a URL for [`TestRepo::s3`].
    repo: PathBuf,
    /// Extra environment for every run (S3 credentials and endpoint).
    env: Vec<(String, String)>,
}

impl TestRepo {
    /// Creates a repository with the test password and a fast key derivation.
    ///
    /// # Panics
    /// If `cairn init` fails.
    pub fn init(bin: impl Into<PathBuf>) -> Self {
        Self::init_with(bin, &[])
    }

    /// As [`TestRepo::init`], with extra `init` options (e.g. `--pack-size-mib 1`).
    ///
    /// # Panics
    /// If `cairn init` fails.
    pub fn init_with(bin: impl Into<PathBuf>, options: &[&str]) -> Self {
        let repo = Self::uninitialized(bin);
        repo.init_here(options);
        repo
    }

    /// Scratch space and a repository path with nothing there yet, for a test that must prepare
    /// the place first (e.g. mount a small file system there); then call [`TestRepo::init_here`].
    ///
    /// # Panics
    /// If the temporary directory cannot be created.
    pub fn uninitialized(bin: impl Into<PathBuf>) -> Self {
        let scratch = tempfile::Builder::new().prefix("cairn-e2e-").tempdir().expect("creating a temporary directory");
        let repo = scratch.path().join("repo");
        TestRepo { bin: bin.into(), scratch, repo, env: Vec::new() }
    }

    /// A repository in a fresh prefix of the S3 server `scripts/test.sh` starts (SeaweedFS on
    /// 127.0.0.1, described by `S3_TEST_*`), initialised like [`TestRepo::init`]; the metadata
    /// cache lives in the scratch directory.
    ///
    /// # Panics
    /// If `S3_TEST_ENDPOINT` is not set (run the suite with `scripts/test.sh`), or init fails.
    pub fn s3(bin: impl Into<PathBuf>, options: &[&str]) -> Self {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!("{k} is not set: run the suite with scripts/test.sh, which starts an S3 server on 127.0.0.1")
            })
        };
        let endpoint = var("S3_TEST_ENDPOINT");
        let scratch =
            tempfile::Builder::new().prefix("cairn-e2e-s3-").tempdir().expect("creating a temporary directory");
        let prefix = scratch.path().file_name().and_then(|n| n.to_str()).unwrap_or("e2e").to_string();
        let repo = PathBuf::from(format!("s3://{}/{prefix}", var("S3_TEST_BUCKET")));
        let env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), var("S3_TEST_KEY")),
            ("AWS_SECRET_ACCESS_KEY".to_string(), var("S3_TEST_SECRET")),
            ("AWS_REGION".to_string(), var("S3_TEST_REGION")),
            ("AWS_ENDPOINT_URL".to_string(), endpoint),
            ("CAIRN_CACHE_DIR".to_string(), scratch.path().join("cache").display().to_string()),
        ];
        let repo = TestRepo { bin: bin.into(), scratch, repo, env };
        repo.init_here(options);
        repo
    }

    /// Scratch space and a repository at `url` (e.g. `az://container/prefix` or a WebDAV
    /// `http://` URL) with `env` set for every run and the metadata cache in the scratch
    /// directory; nothing is created there yet: call [`TestRepo::init_here`].
    ///
    /// # Panics
    /// If the temporary directory cannot be created.
    pub fn at_url(bin: impl Into<PathBuf>, url: &str, env: &[(&str, &str)]) -> Self {
        let scratch =
            tempfile::Builder::new().prefix("cairn-e2e-url-").tempdir().expect("creating a temporary directory");
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        env.push(("CAIRN_CACHE_DIR".to_string(), scratch.path().join("cache").display().to_string()));
        TestRepo { bin: bin.into(), scratch, repo: PathBuf::from(url), env }
    }

    /// `cairn init` with the test password, a fast key derivation and extra `options`.
    ///
    /// # Panics
    /// If it fails.
    pub fn init_here(&self, options: &[&str]) {
        let mut init = args!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"];
        init.extend(options.iter().map(OsString::from));
        self.run(init).success();
    }

    /// The `cairn` binary.
    #[must_use]
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The repository directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.repo
    }

    /// The temporary directory holding the repository and the test's own files.
    #[must_use]
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Creates (if needed) and returns the scratch directory `name`.
    ///
    /// # Panics
    /// If it cannot be created.
    #[must_use]
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.scratch().join(name);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        d
    }

    /// `cairn -r REPO ARGS...` with the password set and stdin closed, not yet run.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        for var in CAIRN_VARS {
            cmd.env_remove(var);
        }
        cmd.env("CAIRN_PASSWORD", PASSWORD).arg("-r").arg(&self.repo).args(args).stdin(Stdio::null());
        // A local repository given latency (`CAIRN_TEST_FAULTS=delay_ms=…`) is cached like a
        // remote one: never in the home directory.
        cmd.env("CAIRN_CACHE_DIR", self.scratch.path().join("cache"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Sets `key` to `value` for every later run.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs `cairn ARGS...` and captures what it did.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Output::of(self.command(args))
    }

    /// Runs `cairn ARGS...` with `input` on its standard input.
    pub fn run_with_stdin<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Output::with_stdin(self.command(args), input)
    }

    /// `cairn --json backup ARGS...`, which must exit 0; returns its JSON report
    /// (`snapshot`, `parent`, `summary`).
    pub fn backup<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all = args!["--json", "backup"];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self.run(all).success().json()
    }

    /// `cairn snapshots --json`: every snapshot, oldest first.
    ///
    /// # Panics
    /// If the command fails or prints something that is not a JSON array.
    #[must_use]
    pub fn snapshots(&self) -> Vec<Value> {
        match self.run(["--json", "snapshots"]).success().json() {
            Value::Array(list) => list,
            other => panic!("snapshots --json printed {other}, not an array"),
        }
    }

    /// `cairn dump SNAP PATH`: the file's bytes, which must come with exit code 0.
    #[must_use]
    pub fn dump(&self, snapshot: &str, path: &str) -> Vec<u8> {
        let out = self.run(["dump", snapshot, path]);
        out.success();
        out.stdout
    }
}

/// How a cairn run ended and what it printed.
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// The exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// Runs `cmd` and captures its output.
    ///
    /// # Panics
    /// If the program cannot be started.
    #[must_use]
    pub fn of(mut cmd: Command) -> Self {
        let command = describe(&cmd);
        let out = cmd.output().unwrap_or_else(|e| panic!("running {command}: {e}"));
        Output {
            command,
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `cmd` with `input` on its standard input (written from another thread, so a
    /// program that stops reading early cannot deadlock the test).
    ///
    /// # Panics
    /// If the program cannot be started.
    #[must_use]
    pub fn with_stdin(mut cmd: Command, input: &[u8]) -> Self {
        let command = describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {command}: {e}"));
        let mut stdin = child.stdin.take().expect("stdin was piped");
        let out = std::thread::scope(|s| {
            s.spawn(move || {
                // A program that exits early closes the pipe; that is its business, not ours.
                let _ = stdin.write_all(input);
            });
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("waiting for {command}: {e}"));
        Output {
            command,
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Standard output as text (lossy).
    #[must_use]
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing everything printed if it differs.
    ///
    /// # Panics
    /// If the exit code is not `code`.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code from {}\n{}", self.command, self.report());
        self
    }

    /// Asserts exit code 0.
    ///
    /// # Panics
    /// If the run did not succeed.
    #[track_caller]
    pub fn success(&self) -> &Self {
        self.code(0)
    }

    /// Asserts a non-zero exit code (and that the process was not killed by a signal: a crash is
    /// not a clean failure).
    ///
    /// # Panics
    /// If the run succeeded or crashed.
    #[track_caller]
    pub fn failure(&self) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "{} should have failed cleanly\n{}",
            self.command,
            self.report()
        );
        self
    }

    /// Asserts that standard error contains `needle`.
    ///
    /// # Panics
    /// If it does not.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr of {} does not mention {needle:?}\n{}",
            self.command,
            self.report()
        );
        self
    }

    /// Standard output parsed as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    #[track_caller]
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout of {} is not JSON: {e}\n{}", self.command, self.report()))
    }

    /// Exit code, stdout (cut) and stderr, for failure messages.
    #[must_use]
    pub fn report(&self) -> String {
        let mut out = self.stdout_text();
        if out.len() > 4000 {
            let mut cut = 4000;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("\n[... cut]");
        }
        format!("exit code: {:?}\n--- stdout\n{out}\n--- stderr\n{}", self.code, self.stderr)
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
