//! The end-to-end harness: every dataset through every installed tool, measured.
//!
//! For each dataset and tool, in one run and on the same bytes:
//! 1. `initial`: the first backup into an empty repository;
//! 2. `unchanged`: the same data again (files untouched, or the same dump streamed again);
//! 3. `changed`: the next version (the next day's dump, or the mutated tree/library);
//! 4. `restore`: the newest snapshot into an empty directory, then checked byte for byte.
//!
//! Tools run one after another, never side by side, so each has the machine to itself (as far
//! as a shared machine allows: the load average is recorded). The data sit in the page cache
//! (they were just written, and the machine has RAM to spare), so these are warm-cache figures
//! for every tool alike: CPU and pipeline, not disk.
//!
//! Two Cairn-only figures follow: peak RSS for a stream of N and of 10·N bytes (memory must not
//! grow with the input), and the time and memory to open a repository index of many blobs.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::dataset::pgbench::{self, Filler, Postgres};
use crate::dataset::{media, sql, tree};
use crate::machine::Machine;
use crate::measure::{self, Input, Job, Usage};
use crate::scratch::RestoreSpace;
use crate::stages::{self, DataKind, StageTimes};
use crate::tools::{Kind, Tool, version_of, which};

mod cairn_only;
mod files;

pub use files::{dir_size, human, tree_digest};
use files::{file_digest, find_file, walk_files};

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// Day-0 dump size.
    pub dump_bytes: u64,
    /// Days in the dump series (at least 2: initial and one changed day).
    pub days: u32,
    /// Media library size.
    pub media_bytes: u64,
    /// Files in the tree.
    pub tree_files: usize,
    /// Tree size.
    pub tree_bytes: u64,
    /// N of the memory-flatness run (N and factor × N are streamed); 0 skips it.
    pub rss_bytes: u64,
    /// The factor of the memory-flatness run.
    pub rss_factor: u64,
    /// Blobs in the index-open run; 0 skips it.
    pub index_blobs: u64,
    /// Latency added to every store request in the latency figure (`media` and `tree`, cairn
    /// only); 0 skips it.
    pub latency_ms: u64,
    /// Datasets to run: any of `dump`, `media`, `tree`, `system`, `pgbench`, `pgbench-text`.
    pub datasets: Vec<String>,
    /// What the `system` dataset copies: a real directory tree of this machine.
    pub system_root: PathBuf,
    /// The PostgreSQL server the `pgbench` datasets use (none: not measured).
    pub postgres: Option<Postgres>,
    /// How long pgbench runs between the `pgbench` datasets' two dumps.
    pub pgbench_seconds: u64,
    /// Peers to run when installed.
    pub peers: Vec<Kind>,
    /// The object storage section ([`crate::s3`]).
    pub s3: crate::s3::S3Options,
    /// The `cairn` binary.
    pub cairn: PathBuf,
    /// Work directory (data, repositories, restores, logs).
    pub work: PathBuf,
    /// Keep the work directory afterwards.
    pub keep: bool,
    /// Dataset seed.
    pub seed: u64,
    /// Stage sample length.
    pub stage_sample: usize,
    /// Minimum time per stage measurement.
    pub stage_time: Duration,
    /// How this run was invoked, for the report.
    pub command: String,
    /// Say what is going on (on stderr).
    pub verbose: bool,
}

/// One measured step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Dataset name.
    pub dataset: &'static str,
    /// `initial`, `unchanged`, `changed`, `changed (day N)` or `restore`.
    pub step: String,
    /// The tool.
    pub tool: Kind,
    /// Logical bytes the step covers (the data backed up or restored).
    pub bytes: u64,
    /// What it cost.
    pub usage: Usage,
    /// Repository size after the step.
    pub repo_bytes: u64,
}

impl Step {
    /// Logical megabytes (10⁶ bytes) per second.
    #[must_use]
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.usage.wall.max(1e-9)
    }
}

/// A dataset as run.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    /// Name.
    pub name: &'static str,
    /// What it is, with its size.
    pub description: String,
}

/// The memory-flatness figure.
#[derive(Debug, Clone, Copy)]
pub struct RssFigure {
    /// N.
    pub small_bytes: u64,
    /// factor × N.
    pub large_bytes: u64,
    /// Backing up N.
    pub small: Usage,
    /// Backing up factor × N.
    pub large: Usage,
}

/// The index-open figure.
#[derive(Debug, Clone, Copy)]
pub struct IndexFigure {
    /// Blobs in the index.
    pub blobs: u64,
    /// A backup of an empty stream into a fresh repository (process start, key derivation).
    pub baseline: Usage,
    /// The first backup after the index was written: it decodes every index object and writes
    /// the local cache's table (FORMAT.md §11a).
    pub first: Usage,
    /// The best of the next three, which map that table.
    pub loaded: Usage,
}

/// The latency figure: the same backup and restore by cairn with and without a delay added to
/// every store request (core's fault-injecting store wrapper, `CAIRN_TEST_FAULTS=delay_ms=D`).
#[derive(Debug, Clone, Copy)]
pub struct LatencyFigure {
    /// Dataset name.
    pub dataset: &'static str,
    /// Bytes backed up and restored.
    pub bytes: u64,
    /// The delay per request.
    pub delay_ms: u64,
    /// Backup into an empty repository, no delay.
    pub backup: Usage,
    /// The same with the delay.
    pub backup_delayed: Usage,
    /// Restore of that snapshot, no delay.
    pub restore: Usage,
    /// The same with the delay.
    pub restore_delayed: Usage,
}

/// A physical limit of writing: the restore's (the same number of bytes into a new file of the
/// restore's file system through the page cache) or the backup's (as synced pack-sized files
/// where the repositories are), with nothing else to do.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimit {
    /// Bytes written.
    pub bytes: u64,
    /// Seconds (best of two).
    pub seconds: f64,
}

impl WriteLimit {
    /// Megabytes (10⁶ bytes) per second.
    #[must_use]
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// `(tool, version)` for every program involved.
    pub versions: Vec<(String, String)>,
    /// Peers that were asked for but are not installed.
    pub missing: Vec<&'static str>,
    /// Stage times per data kind.
    pub stages: Vec<StageTimes>,
    /// Datasets as run.
    pub datasets: Vec<DatasetInfo>,
    /// Every measured step.
    pub steps: Vec<Step>,
    /// Memory flatness.
    pub rss: Option<RssFigure>,
    /// Index open.
    pub index: Option<IndexFigure>,
    /// Latency, per dataset.
    pub latency: Vec<LatencyFigure>,
    /// What writing the restored bytes alone costs.
    pub write_limit: Option<WriteLimit>,
    /// What storing the bytes of a backup durably alone costs: pack-sized files, each synced.
    pub durable_limit: Option<WriteLimit>,
    /// The object storage section (`None`: not asked for).
    pub object_storage: Option<crate::s3::ObjectStorage>,
    /// Where restores were written.
    pub restore_fs: String,
    /// 1-minute load average before and after.
    pub load: (f64, f64),
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The options.
    pub options: Options,
}

/// A run in progress: what it was asked, the tools it found, what it measured so far. The
/// object storage section's methods are in [`crate::object_storage`].
pub(crate) struct Run<'a> {
    pub(crate) opts: &'a Options,
    pub(crate) tools: Vec<(Kind, PathBuf, String)>,
    steps: Vec<Step>,
    latency: Vec<LatencyFigure>,
    restores: RestoreSpace,
    logs: PathBuf,
}

impl Run<'_> {
    pub(crate) fn say(&self, msg: &str) {
        if self.opts.verbose {
            eprintln!("[cairn-bench] {msg}");
        }
    }

    /// Runs and measures `job`, after `sync`: dirty pages left by the step before (a restore
    /// writes gigabytes) are flushed first, so no step pays for another's writeback.
    pub(crate) fn measured(&self, job: &Job, what: &str) -> Result<Usage> {
        let log = self.logs.join(format!("{}.log", what.replace([' ', '/', '(', ')'], "_")));
        let _ = std::process::Command::new("sync").status();
        measure::run(job, &log).with_context(|| format!("{what} failed"))
    }

    fn tool(&self, kind: Kind, program: &Path, version: &str, dataset: &str) -> Result<Tool> {
        let dir = self.opts.work.join("tools").join(format!("{dataset}-{}", kind.name()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let tool = Tool::new(kind, program.to_path_buf(), version.to_string(), &dir);
        for job in tool.init() {
            self.measured(&job, &format!("{dataset} {} init", kind.name()))?;
        }
        Ok(tool)
    }

    fn record(&mut self, dataset: &'static str, step: &str, tool: &Tool, bytes: u64, usage: Usage) {
        let s =
            Step { dataset, step: step.to_string(), tool: tool.kind, bytes, usage, repo_bytes: dir_size(&tool.repo) };
        self.say(&format!(
            "{dataset:6} {:7} {:18} {:8.2} s {:9.1} MB/s  cpu {:7.2} s  rss {:6.0} MiB  repo {:8.1} MiB",
            tool.kind.name(),
            step,
            usage.wall,
            s.mb_per_s(),
            usage.cpu(),
            usage.max_rss_kib as f64 / 1024.0,
            s.repo_bytes as f64 / (1 << 20) as f64
        ));
        self.steps.push(s);
    }

    /// A new, empty directory for `tool` to restore into, every restore starting alike
    /// ([`RestoreSpace::next`]).
    pub(crate) fn restore_dir(&self, tool: &Tool) -> Result<PathBuf> {
        Ok(self.restores.next(&[&tool.repo, &tool.home], &|m| self.say(m))?)
    }

    /// Deletes the restores (they are checked by now).
    pub(crate) fn drop_restores(&self) {
        self.restores.clear();
    }

    /// Reads the last dump through `cairn mount`, sequentially (`dd`, 1 MiB reads), and
    /// checks it; recorded as the step `mount read`, beside `restore (paired)`. The two
    /// alternate three times (read, restore, read, …) and each records its median run, so
    /// the ratio between them is not one lucky or unlucky run on a shared machine. Skipped,
    /// and said so, where no FUSE mount can be made (no `/dev/fuse`, or not allowed).
    fn mount_read(&mut self, t: &Tool, bytes: u64, expected: &[u8; 32]) -> Result<()> {
        let at = self.opts.work.join("mnt");
        fs::create_dir_all(&at)?;
        let mut child = t.spawn_mount(&at, &self.opts.work.join("mount.log"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !at.join("snapshots").exists() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                let _ = child.kill();
                let _ = child.wait();
                self.say("dump: no FUSE mount could be made here; the mount read is not measured");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let file = at.join("snapshots/latest").join("dump.sql");
        let mut dd = Job::new("dd", [format!("if={}", file.display()), "of=/dev/null".into(), "bs=1M".into()]);
        dd.env = vec![];
        let rounds = (|| -> Result<(Vec<Usage>, Vec<Usage>)> {
            let (mut reads, mut restores) = (Vec::new(), Vec::new());
            for round in 0..3 {
                reads.push(self.measured(&dd, &format!("dump cairn mount read {round}"))?);
                let target = self.restore_dir(t)?;
                restores.push(self.measured(&t.restore(&target), &format!("dump cairn restore paired {round}"))?);
            }
            Ok((reads, restores))
        })();
        let digest = file_digest(&file);
        let _ = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
        let _ = child.wait();
        let (reads, restores) = rounds?;
        if digest? != *expected {
            bail!("cairn: the dump read through the mount differs from the last day's dump");
        }
        self.record("dump", "mount read", t, bytes, median_run(reads));
        self.record("dump", "restore (paired)", t, bytes, median_run(restores));
        Ok(())
    }

    fn dump(&mut self) -> Result<DatasetInfo> {
        let o = self.opts;
        let dir = o.work.join("data/dump");
        fs::create_dir_all(&dir)?;
        self.say(&format!("generating a {} dump series of {} days", human(o.dump_bytes), o.days));
        let mut db = sql::Database::new(o.seed, o.dump_bytes);
        let mut files = Vec::new();
        for day in 0..o.days.max(2) {
            if day > 0 {
                db.advance_day(&sql::DailyChange::default());
            }
            let path = dir.join(format!("day-{day:02}.sql"));
            let mut out = std::io::BufWriter::with_capacity(4 << 20, fs::File::create(&path)?);
            let n = db.write_dump(&mut out)?;
            std::io::Write::flush(&mut out)?;
            files.push((path, n));
        }
        let last_len = self.stream_series("dump", &files)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(DatasetInfo {
            name: "dump",
            description: format!(
                "pg_dump-style SQL dump, {} days: day 0 is {} ({} on the last day), backed up from standard input; each day updates ~2.5 %, inserts ~1.5 % and deletes ~0.7 % of rows, updated rows moving to the end of their table's COPY block",
                files.len(),
                human(files[0].1),
                human(last_len)
            ),
        })
    }

    /// Backs a series of dumps (`files`, oldest first, with their lengths) up from standard
    /// input as one file, `dump.sql`, by every tool: the first twice (initial, unchanged), the
    /// others once each; then restores the last and checks it. Returns the last one's length.
    fn stream_series(&mut self, name: &'static str, files: &[(PathBuf, u64)]) -> Result<u64> {
        let tools = self.tools.clone();
        let mut repos = Vec::new();
        for (kind, program, version) in &tools {
            let mut t = self.tool(*kind, program, version, name)?;
            let (day0, n0) = &files[0];
            let u = self.measured(
                &t.backup_stdin("dump.sql", Input::File(day0.clone())),
                &format!("{name} {} initial", kind.name()),
            )?;
            self.record(name, "initial", &t, *n0, u);
            let u = self.measured(
                &t.backup_stdin("dump.sql", Input::File(day0.clone())),
                &format!("{name} {} unchanged", kind.name()),
            )?;
            self.record(name, "unchanged", &t, *n0, u);
            for (day, (path, n)) in files.iter().enumerate().skip(1) {
                let step = if day == 1 { "changed".to_string() } else { format!("changed (day {day})") };
                let u = self.measured(
                    &t.backup_stdin("dump.sql", Input::File(path.clone())),
                    &format!("{name} {} {step}", kind.name()),
                )?;
                self.record(name, &step, &t, *n, u);
            }
            repos.push(t);
        }
        let (last, last_len) = files.last().cloned().context("no dump days")?;
        let expected = file_digest(&last)?;
        for t in &repos {
            let target = self.restore_dir(t)?;
            let u = self.measured(&t.restore(&target), &format!("{name} {} restore", t.kind.name()))?;
            let restored = find_file(&target, "dump.sql")
                .with_context(|| format!("{}: restore produced no dump.sql", t.kind.name()))?;
            if file_digest(&restored)? != expected {
                bail!("{}: the restored {name} differs from the last day's dump", t.kind.name());
            }
            self.record(name, "restore", t, last_len, u);
            if t.kind == Kind::Cairn && name == "dump" {
                self.mount_read(t, last_len, &expected)?;
            }
        }
        self.drop_restores();
        for t in &repos {
            let _ = fs::remove_dir_all(t.repo.parent().unwrap_or(&t.repo));
        }
        Ok(last_len)
    }

    /// Real `pg_dump` output of a pgbench database at a scale of about half the dump size, its
    /// filler columns as `filler` says: dumped after `pgbench -i`, then again after pgbench's
    /// default transactions for `pgbench_seconds` ([`pgbench::dump_series`]); the two dumps
    /// are backed up as a series ([`Run::stream_series`]). `None`, said, when no server is
    /// configured.
    fn pgbench(&mut self, filler: Filler) -> Result<Option<DatasetInfo>> {
        let o = self.opts;
        let name = filler.dataset();
        let Some(pg) = &o.postgres else {
            self.say(&format!(
                "{name}: no PostgreSQL server (--pg-host, or CAIRN_TEST_PG_HOST as scripts/pg.sh sets it); not measured"
            ));
            return Ok(None);
        };
        let dir = o.work.join("data").join(name);
        let scale = pgbench::scale_for(o.dump_bytes);
        let db = format!("cairn_bench_{}_{}", name.replace('-', "_"), std::process::id());
        self.say(&format!("{name}: initializing `{db}` at scale {scale}"));
        let files = pgbench::dump_series(pg, &db, filler, scale, o.pgbench_seconds, &dir)?;
        let last_len = self.stream_series(name, &files)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(Some(DatasetInfo {
            name,
            description: format!(
                "real `pg_dump` output (plain SQL) of a pgbench database, scale {scale}, {}: day 0 is {} after `pgbench -i`, day 1 {} after {} s of pgbench's default transactions; backed up from standard input",
                filler.describe(),
                human(files[0].1),
                human(last_len),
                o.pgbench_seconds
            ),
        }))
    }

    fn file_dataset(&mut self, name: &'static str) -> Result<DatasetInfo> {
        let o = self.opts;
        let root = o.work.join("data").join(name);
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root)?;
        let root = fs::canonicalize(&root)?;
        let description = match name {
            "media" => {
                self.say(&format!("generating {} of media files", human(o.media_bytes)));
                let files = media::generate(&root, o.seed, o.media_bytes)?;
                let videos = files.iter().filter(|f| f.path.starts_with("videos")).count();
                format!(
                    "incompressible media library: {} in {} files ({videos} videos of 16–384 MiB, photos of 1–12 MiB); next version: ~3 % new photos, one deleted, one video's header rewritten",
                    human(o.media_bytes),
                    files.len()
                )
            }
            "system" => {
                // Real files no generator wrote, copied so that nothing changes them mid-run.
                self.say(&format!("copying {}", o.system_root.display()));
                let status = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(o.system_root.as_os_str())
                    .arg(root.join("files"))
                    .status()?;
                anyhow::ensure!(status.success(), "copying {} failed: {status}", o.system_root.display());
                let files = walk_files(&root)?;
                format!(
                    "real files of this machine: a copy of `{}`, {} files, {}; backed up once, again unchanged, and restored",
                    o.system_root.display(),
                    files,
                    human(dir_size(&root))
                )
            }
            _ => {
                self.say(&format!("generating a tree of {} files, {}", o.tree_files, human(o.tree_bytes)));
                let files = tree::generate(&root, o.seed, o.tree_files, o.tree_bytes)?;
                format!(
                    "file tree: {} files, {} (60 % under 8 KiB, mostly text; large files mostly binary; ~2 % duplicates); next version: ~3 % changed, 1 % deleted, 2 % added",
                    files.len(),
                    human(o.tree_bytes)
                )
            }
        };
        let v1 = dir_size(&root);
        let tools = self.tools.clone();
        let mut repos = Vec::new();
        for (kind, program, version) in &tools {
            let mut t = self.tool(*kind, program, version, name)?;
            let u =
                self.measured(&t.backup(std::slice::from_ref(&root)), &format!("{name} {} initial", kind.name()))?;
            self.record(name, "initial", &t, v1, u);
            let u =
                self.measured(&t.backup(std::slice::from_ref(&root)), &format!("{name} {} unchanged", kind.name()))?;
            self.record(name, "unchanged", &t, v1, u);
            repos.push(t);
        }
        // The real files have no generator to change them the same way in every run.
        let mutated = match name {
            "media" => media::mutate(&root, o.seed, o.media_bytes).map(|_| true)?,
            "tree" => tree::mutate(&root, o.seed, o.tree_files, o.tree_bytes).map(|_| true)?,
            _ => false,
        };
        let v2 = dir_size(&root);
        for t in repos.iter_mut().filter(|_| mutated) {
            let u =
                self.measured(&t.backup(std::slice::from_ref(&root)), &format!("{name} {} changed", t.kind.name()))?;
            self.record(name, "changed", t, v2, u);
        }
        let expected = tree_digest(&root)?;
        for t in &repos {
            let target = self.restore_dir(t)?;
            let u = self.measured(&t.restore(&target), &format!("{name} {} restore", t.kind.name()))?;
            let restored = t.restored(&target, &root);
            if tree_digest(&restored)? != expected {
                bail!("{}: the restored {name} differs from the source", t.kind.name());
            }
            self.record(name, "restore", t, v2, u);
        }
        for t in &repos {
            let _ = fs::remove_dir_all(t.repo.parent().unwrap_or(&t.repo));
        }
        if o.latency_ms > 0 && name != "system" {
            let figure = self.latency(name, &root, v2, &expected)?;
            self.latency.push(figure);
        }
        if name == "tree" {
            self.progress_cost(name, &root, v2)?;
        }
        self.drop_restores();
        let _ = fs::remove_dir_all(&root);
        Ok(DatasetInfo { name, description })
    }

    fn cairn(&self) -> (PathBuf, String) {
        (self.opts.cairn.clone(), version_of(&self.opts.cairn, Kind::Cairn))
    }
}

/// Runs everything `opts` asks for.
///
/// # Errors
/// A failing tool (with the end of its log), a restore that differs from its source, or I/O.
pub fn run(opts: &Options) -> Result<Results> {
    let started = Instant::now();
    let load_before = crate::machine::load_average();
    if !opts.cairn.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p cairn-cli --features testing`",
            opts.cairn.display()
        );
    }
    fs::create_dir_all(&opts.work).with_context(|| format!("creating {}", opts.work.display()))?;
    let work = fs::canonicalize(&opts.work)?;
    let opts = &Options { work: work.clone(), ..opts.clone() };
    let logs = work.join("logs");
    fs::create_dir_all(&logs)?;

    let mut versions = vec![("cairn".to_string(), version_of(&opts.cairn, Kind::Cairn))];
    let mut tools = vec![(Kind::Cairn, opts.cairn.clone(), versions[0].1.clone())];
    let mut missing = Vec::new();
    for &kind in &opts.peers {
        match which(kind.name()) {
            Some(p) => {
                let v = version_of(&p, kind);
                versions.push((kind.name().to_string(), v.clone()));
                tools.push((kind, p, v));
            }
            None => missing.push(kind.name()),
        }
    }
    versions.push(("rustc".into(), version_of(Path::new("rustc"), Kind::Cairn)));
    versions.push(("cairn source".into(), source_revision()));
    let mut run =
        Run { opts, tools, steps: Vec::new(), latency: Vec::new(), restores: RestoreSpace::new(&opts.work), logs };

    run.say("measuring the pipeline stages");
    let stages =
        [DataKind::Text, DataKind::Random].map(|k| stages::measure(k, opts.stage_sample, opts.stage_time)).to_vec();
    for s in &stages {
        run.say(&format!(
            "  {}: per core {:.0} MB/s, {} cores {:.0} MB/s",
            s.kind.name(),
            s.per_core_limit() / 1e6,
            crate::machine::num_cpus(),
            s.limit(crate::machine::num_cpus()) / 1e6
        ));
    }

    let mut datasets = Vec::new();
    for name in &opts.datasets {
        datasets.push(match name.as_str() {
            "dump" => run.dump()?,
            "media" => run.file_dataset("media")?,
            "tree" => run.file_dataset("tree")?,
            "system" => run.file_dataset("system")?,
            "pgbench" | "pgbench-text" => {
                let filler = if name == "pgbench" { Filler::Blank } else { Filler::RowText };
                match run.pgbench(filler)? {
                    Some(d) => d,
                    None => continue,
                }
            }
            other => bail!("unknown dataset `{other}` (dump, media, tree, system, pgbench, pgbench-text)"),
        });
    }
    let object_storage = if opts.s3.bytes > 0 { Some(run.object_storage()?) } else { None };
    // Measure the stages again at the end and keep each stage's best: a shared machine's load
    // comes and goes, and the limit is what the stages can do, not what they did under load.
    run.say("measuring the pipeline stages again");
    let stages: Vec<StageTimes> = stages
        .into_iter()
        .map(|before| {
            let after = stages::measure(before.kind, opts.stage_sample, opts.stage_time);
            let times = before.times.iter().zip(&after.times).map(|(&(s, a), &(_, b))| (s, a.min(b))).collect();
            StageTimes { times, ..before }
        })
        .collect();
    for s in &stages {
        run.say(&format!("  {}: per core {:.0} MB/s", s.kind.name(), s.per_core_limit() / 1e6));
    }
    run.say("measuring the file system's write rate (the restore limit)");
    let write_limit = Some(run.write_limit(opts.dump_bytes)?);
    run.say("measuring the disk's rate of durable writes (the backup's limit)");
    let durable_limit = Some(run.durable_limit(opts.dump_bytes)?);
    let rss = if opts.rss_bytes > 0 { Some(run.rss()?) } else { None };
    let index = if opts.index_blobs > 0 { Some(run.index()?) } else { None };
    if !opts.keep {
        let _ = fs::remove_dir_all(work.join("data"));
        let _ = fs::remove_dir_all(work.join("tools"));
    }
    Ok(Results {
        machine: Machine::detect(),
        versions,
        missing,
        stages,
        datasets,
        steps: run.steps,
        rss,
        index,
        latency: run.latency,
        write_limit,
        durable_limit,
        object_storage,
        restore_fs: run.restores.description(),
        load: (load_before, crate::machine::load_average()),
        elapsed: started.elapsed(),
        options: opts.clone(),
    })
}

/// The commit the working tree is at, and whether `core/` or `cli/` had uncommitted changes
/// (the binary measured is whatever `target/release/cairn` was built from).
fn source_revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["log", "-1", "--format=%h %s"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--", "core", "cli"]).is_some_and(|s| !s.is_empty());
            format!("{head}{}", if dirty { " (with uncommitted changes in core/ or cli/)" } else { "" })
        }
        None => "unknown (not a git checkout)".into(),
    }
}

/// The run of median wall time among `runs` (which is not empty).
fn median_run(mut runs: Vec<Usage>) -> Usage {
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    runs.swap_remove(runs.len() / 2)
}
