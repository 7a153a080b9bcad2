//! What the concurrency tests share: running `cairn` against a local or S3 repository with a time
//! limit per process, mutating source trees, and manifests to compare restores with.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_core::id::Digest;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");
/// The password of every test repository (given as `CAIRN_PASSWORD`).
pub const PASSWORD: &str = "many hands, one cairn";
/// A process running longer than this is killed and reported: something hangs.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(300);
/// The message of the one failure a backup racing prune is allowed (core/src/repository/writer.rs).
pub const REMOVED_WHILE_RUNNING: &str = "was removed while this backup ran";

/// Builds an argument list from strings and paths alike.
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(::std::ffi::OsString::from($a)),*] };
}
pub(crate) use args;

// ---------------------------------------------------------------------------------------------
// Running cairn

/// What one `cairn` run did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub line: String,
    /// Exit code; `None` when killed by a signal (or by the time limit).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The command, exit code and output, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}{} after {:.1?}\n--- stdout\n{}\n--- stderr\n{}",
            self.line,
            self.code,
            if self.timed_out { " (killed: time limit)" } else { "" },
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// Every JSON document on stdout (`forget --prune --json` prints two).
    pub fn json_docs(&self) -> Vec<Value> {
        serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON: {e}\n{}", self.line, self.describe()))
    }

    /// The first JSON document on stdout.
    pub fn json(&self) -> Value {
        self.json_docs().into_iter().next().unwrap_or_else(|| panic!("no JSON output\n{}", self.describe()))
    }

    /// Panics unless the run succeeded.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.ok(), "{}", self.describe());
        self
    }
}

/// A repository and how to reach it: `cairn` runs get `-r URL`, the password, and for S3 the
/// credentials, and nothing else from the caller's environment.
#[derive(Clone)]
pub struct Cairn {
    pub url: String,
    env: Vec<(String, String)>,
    global: Vec<OsString>,
}

impl Cairn {
    /// A repository in a local directory.
    pub fn local(path: &Path) -> Self {
        Cairn { url: path.display().to_string(), env: vec![], global: vec![] }
    }

    /// A repository under a fresh prefix of the S3 test bucket, with a metadata cache in
    /// `scratch` shared by every process of the test (as cron jobs on one machine would share
    /// theirs).
    ///
    /// # Panics
    /// When the S3 test server is not configured: that is a failure, not a reason to skip.
    pub fn s3(scratch: &Path, name: &str) -> Self {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!(
                    "{k} is not set: the S3 concurrency test needs the SeaweedFS server that scripts/test.sh starts \
                     (run scripts/test.sh, or `source scripts/s3.sh; start_s3` in a shell and run cargo test there)"
                )
            })
        };
        let (endpoint, bucket, key, secret, region) = (
            var("S3_TEST_ENDPOINT"),
            var("S3_TEST_BUCKET"),
            var("S3_TEST_KEY"),
            var("S3_TEST_SECRET"),
            var("S3_TEST_REGION"),
        );
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let url = format!("s3://{bucket}/concurrency-{name}-{}-{nanos}", std::process::id());
        let env = vec![
            ("AWS_ACCESS_KEY_ID".into(), key),
            ("AWS_SECRET_ACCESS_KEY".into(), secret),
            ("AWS_ENDPOINT_URL".into(), endpoint),
            ("AWS_REGION".into(), region),
        ];
        let cache = scratch.join("cache");
        Cairn { url, env, global: args!["--cache-dir", cache] }
    }

    /// `cairn -r URL [global flags] ARGS`, with a clean environment.
    pub fn command(&self, args: &[OsString], extra_env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear();
        for k in ["PATH", "HOME", "TMPDIR"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.env("CAIRN_PASSWORD", PASSWORD);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.arg("-r").arg(&self.url).args(&self.global).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs `cairn ARGS` to the end (or the time limit).
    pub fn run(&self, args: Vec<OsString>) -> Output {
        self.run_env(args, &[])
    }

    /// Runs `cairn ARGS` with extra environment variables.
    pub fn run_env(&self, args: Vec<OsString>, extra_env: &[(&str, &str)]) -> Output {
        let line = line_of(&args);
        let child = self.command(&args, extra_env).spawn().unwrap_or_else(|e| panic!("starting {BIN}: {e}"));
        wait_output(child, line, PROCESS_LIMIT)
    }

    /// `cairn init` with a fast key derivation, 64 KiB chunks and 1 MiB packs.
    pub fn init(&self) {
        self.run(args![
            "init",
            "--kdf-memory-kib",
            "64",
            "--kdf-iterations",
            "1",
            "--chunk-avg-kib",
            "64",
            "--pack-size-mib",
            "1"
        ])
        .success();
    }
}

fn line_of(args: &[OsString]) -> String {
    let mut line = String::from("cairn");
    for a in args {
        line.push(' ');
        line.push_str(&a.to_string_lossy());
    }
    line
}

/// Waits for a child, collecting its output; kills it after `limit`.
pub fn wait_output(mut child: Child, line: String, limit: Duration) -> Output {
    let started = Instant::now();
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = pipe(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = pipe(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for cairn") {
            break status;
        }
        if started.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("waiting for a killed cairn");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        line,
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed: started.elapsed(),
        timed_out,
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (SplitMix64)

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Compressible text.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 12] =
            ["cairn", "stone", "race", "prune", "grace", "pack", "blob", "index", "forget", "keep", "sweep", "mark"];
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(WORDS[self.range(0, WORDS.len())].as_bytes());
            out.push(if self.chance(0.1) { b'\n' } else { b' ' });
        }
        out.truncate(n);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Source trees that change between backups

/// Contents shared by every worker's tree (a `common.bin` that switches between them), so
/// backups of different workers deduplicate against each other's packs.
pub fn shared_variants() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x005E_ED0F_C0DE);
    (0..4).map(|_| rng.bytes(160 * 1024)).collect()
}

/// A private source tree: a few files edited between backups, files coming and going, and two
/// files that switch between fixed versions, so content that forget and prune just threw away
/// comes back (the case a backup deduplicating against a dying pack has to survive).
pub struct SourceTree {
    pub root: PathBuf,
    rng: Rng,
    files: Vec<PathBuf>,
    next_name: usize,
    cycle: Vec<Vec<u8>>,
}

impl SourceTree {
    pub fn new(root: PathBuf, seed: u64, shared: &[Vec<u8>]) -> Self {
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        let mut rng = Rng::new(seed);
        let cycle = (0..3).map(|_| rng.bytes(120 * 1024)).collect();
        let mut tree = SourceTree { root, rng, files: vec![], next_name: 0, cycle };
        for _ in 0..6 {
            tree.add_file();
        }
        tree.write_switching(shared);
        tree
    }

    fn add_file(&mut self) {
        let dir = ["", "sub", "sub/deeper"][self.rng.range(0, 3)];
        let path = self.root.join(dir).join(format!("file-{:03}", self.next_name));
        self.next_name += 1;
        let n = self.rng.range(2 * 1024, 200 * 1024);
        let data = if self.rng.chance(0.5) { self.rng.text(n) } else { self.rng.bytes(n) };
        std::fs::write(&path, data).unwrap();
        self.files.push(path);
    }

    fn write_switching(&mut self, shared: &[Vec<u8>]) {
        let common = &shared[self.rng.range(0, shared.len())];
        std::fs::write(self.root.join("common.bin"), common).unwrap();
        let own = self.cycle[self.rng.range(0, self.cycle.len())].clone();
        std::fs::write(self.root.join("sub/cycle.bin"), own).unwrap();
    }

    /// Changes the tree a little, as a day of work would.
    pub fn mutate(&mut self, shared: &[Vec<u8>]) {
        for _ in 0..self.rng.range(1, 4) {
            let path = self.files[self.rng.range(0, self.files.len())].clone();
            let mut data = std::fs::read(&path).unwrap();
            let len = self.rng.range(16, 4096);
            let patch = if self.rng.chance(0.5) { self.rng.text(len) } else { self.rng.bytes(len) };
            let at = self.rng.range(0, data.len().max(1));
            match self.rng.range(0, 3) {
                0 => {
                    let end = (at + len).min(data.len());
                    data.splice(at..end, patch);
                }
                1 => {
                    data.splice(at..at, patch);
                }
                _ => data.extend_from_slice(&patch),
            }
            if data.len() > 300 * 1024 {
                data.drain(..100 * 1024);
            }
            std::fs::write(&path, data).unwrap();
        }
        if self.files.len() < 10 && self.rng.chance(0.25) {
            self.add_file();
        }
        if self.files.len() > 4 && self.rng.chance(0.2) {
            let gone = self.files.swap_remove(self.rng.range(0, self.files.len()));
            std::fs::remove_file(gone).unwrap();
        }
        if self.rng.chance(0.5) {
            self.write_switching(shared);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// One entry of a tree as a restore must reproduce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File { len: u64, digest: Digest },
}

/// Relative path → entry, for every directory and file below a root.
pub type Manifest = BTreeMap<String, Entry>;

pub fn manifest(root: &Path) -> Manifest {
    fn walk(dir: &Path, prefix: &str, out: &mut Manifest) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                out.insert(name.clone(), Entry::Dir);
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                assert!(ft.is_file(), "{name}: only files and directories are expected");
                let data = std::fs::read(entry.path()).unwrap();
                out.insert(name, Entry::File { len: data.len() as u64, digest: Digest::of(&data) });
            }
        }
    }
    let mut out = Manifest::new();
    walk(root, "", &mut out);
    out
}

/// `Ok` when `got` is exactly `want`; otherwise what differs.
pub fn compare(want: &Manifest, got: &Manifest) -> Result<(), String> {
    if want == got {
        return Ok(());
    }
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let differ: Vec<_> =
        want.iter().filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v)).map(|(k, v)| (k, v, &got[k])).collect();
    Err(format!("missing {missing:?}, unexpected {extra:?}, different (want, got) {differ:?}"))
}

/// Where a backed-up absolute path lands when a whole snapshot is restored into `target`.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").expect("source paths are absolute"))
}
