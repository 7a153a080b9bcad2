//! Cairn's own figures beside the comparison: what the progress bar and a policy run cost,
//! the latency runs, the write limits of restores and backups, memory as a stream grows, and
//! opening a large index.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{IndexFigure, LatencyFigure, RssFigure, Run, WriteLimit, human, median_run, tree_digest};
use crate::measure::{Input, Job, Usage};
use crate::tools::{Kind, Tool, which};

impl Run<'_> {
    /// What the live progress bar and a policy run cost: `root` backed up by cairn into fresh
    /// repositories with no progress (`-q`, as every other backup here), with the bar drawn on a
    /// terminal (`script` gives the backup a pseudo-terminal), and by `cairn run --policy` of a
    /// policy with that one source (which also plans, locks and writes its run record), five of
    /// each, the order rotated every round; each side's median run is recorded as the steps
    /// `initial (no progress)`, `initial (progress bar)` and `initial (policy run)`. The tree is
    /// the worst case: a bar update per file.
    pub(super) fn progress_cost(&mut self, name: &'static str, root: &Path, bytes: u64) -> Result<()> {
        let script = which("script");
        if script.is_none() {
            self.say("progress: no `script` here to give the backup a terminal; its cost is not measured");
        }
        let (program, version) = self.cairn();
        let sides: &[Side] =
            if script.is_some() { &[Side::Plain, Side::Bar, Side::Policy] } else { &[Side::Plain, Side::Policy] };
        let mut runs: Vec<Vec<Usage>> = vec![Vec::new(); sides.len()];
        let mut last = None;
        // Five of each, the order rotated every round, so no side always runs after the same
        // one (the run before leaves a gigabyte of writes behind; three in one order read 0.79,
        // while by hand the two were within 3 % of each other).
        for round in 0..5 {
            for k in 0..sides.len() {
                let at = (k + round) % sides.len();
                let side = sides[at];
                let mut t = self.tool(Kind::Cairn, &program, &version, &format!("overhead-{name}-{at}-{round}"))?;
                let job = match (side, &script) {
                    (Side::Plain, _) | (Side::Bar, None) => t.backup(&[root.to_path_buf()]),
                    (Side::Bar, Some(script)) => on_terminal(script, t.backup(&[root.to_path_buf()])),
                    (Side::Policy, _) => {
                        let policy = t.repo.with_extension("policy.toml");
                        fs::write(&policy, policy_for(&t.repo, root))?;
                        t.run_policy(&policy)
                    }
                };
                let run = self.measured(&job, &format!("{name} cairn {} {round}", side.step()))?;
                runs[at].push(run);
                if let Some(old) = last.replace(t) {
                    let _ = fs::remove_dir_all(old.repo.parent().unwrap_or(&old.repo));
                }
            }
        }
        let t = last.context("no backup ran")?;
        for (side, runs) in sides.iter().zip(runs) {
            self.record(name, side.step(), &t, bytes, median_run(runs));
        }
        let _ = fs::remove_dir_all(t.repo.parent().unwrap_or(&t.repo));
        Ok(())
    }

    /// Backs `root` up with cairn into two fresh repositories, one as is and one with
    /// `latency_ms` added to every store request, twice over, alternating, and keeps each one's
    /// faster backup; then restores from each twice, alternating, and keeps each one's faster
    /// restore. A run takes a second or two here, and the machine's state (the page cache
    /// filling with earlier runs) drifts during a run: alternating gives both sides the same
    /// share of it, and the better of two leaves out a single bad draw. Each restore is checked
    /// against the source.
    pub(super) fn latency(
        &mut self,
        name: &'static str,
        root: &Path,
        bytes: u64,
        expected: &[u8; 32],
    ) -> Result<LatencyFigure> {
        let delay = self.opts.latency_ms;
        let (program, version) = self.cairn();
        let label = |delayed: bool| if delayed { format!("{delay} ms latency") } else { "no latency".to_string() };
        let faster = |best: Option<Usage>, run: Usage| match best {
            Some(best) if best.wall <= run.wall => best,
            _ => run,
        };
        let mut tools: [Option<Tool>; 2] = [None, None];
        let mut backups: [Option<Usage>; 2] = [None, None];
        for round in 0..2 {
            for (i, delayed) in [false, true].into_iter().enumerate() {
                self.say(&format!("latency: {name} with {}", label(delayed)));
                let mut t = self.tool(Kind::Cairn, &program, &version, &format!("latency-{name}-{delayed}-{round}"))?;
                if delayed {
                    t.extra_env.push(("CAIRN_TEST_FAULTS".into(), format!("delay_ms={delay}").into()));
                }
                let run = self
                    .measured(&t.backup(&[root.to_path_buf()]), &format!("{name} cairn backup {}", label(delayed)))?;
                backups[i] = Some(faster(backups[i], run));
                if let Some(old) = tools[i].replace(t) {
                    let _ = fs::remove_dir_all(old.repo.parent().unwrap_or(&old.repo));
                }
            }
        }
        let [Some(plain), Some(delayed)] = tools else { bail!("no backup ran") };
        let tools = [plain, delayed];
        let mut restores: [Option<Usage>; 2] = [None, None];
        for _ in 0..2 {
            for (i, t) in tools.iter().enumerate() {
                let delayed = i == 1;
                let target = self.restore_dir(t)?;
                let run = self.measured(&t.restore(&target), &format!("{name} cairn restore {}", label(delayed)))?;
                if tree_digest(&t.restored(&target, root))? != *expected {
                    bail!("cairn: the restored {name} with {} differs from the source", label(delayed));
                }
                restores[i] = Some(faster(restores[i], run));
            }
        }
        for t in &tools {
            let _ = fs::remove_dir_all(t.repo.parent().unwrap_or(&t.repo));
        }
        let [Some(restore), Some(restore_delayed)] = restores else { bail!("no restore ran") };
        let [Some(backup), Some(backup_delayed)] = backups else { bail!("no backup ran") };
        for (i, (b, r)) in [(backup, restore), (backup_delayed, restore_delayed)].iter().enumerate() {
            self.say(&format!("  {}: backup {:.2} s, restore {:.2} s", label(i == 1), b.wall, r.wall));
        }
        Ok(LatencyFigure { dataset: name, bytes, delay_ms: delay, backup, restore, backup_delayed, restore_delayed })
    }

    /// Writes `bytes` into a new file where restores go, 8 MiB at a time, as a restore would;
    /// best of two.
    pub(super) fn write_limit(&self, bytes: u64) -> Result<WriteLimit> {
        self.drop_restores();
        // A folder in the fresh file system, which may itself be a mount point.
        let dir = self.restores.fresh_dir(&|m| self.say(m)).join("write-limit");
        let seconds = best_timed_writes(&dir, bytes, 8 << 20, bytes, false);
        self.drop_restores();
        Ok(WriteLimit { bytes, seconds: seconds? })
    }

    /// Writes `bytes` as files of a pack's size (16 MiB) where the repositories are, each synced
    /// before the next, as a local repository stores a backup's packs; best of two.
    pub(super) fn durable_limit(&self, bytes: u64) -> Result<WriteLimit> {
        const PACK: u64 = 16 << 20;
        let dir = self.opts.work.join("tools").join("durable-limit");
        Ok(WriteLimit { bytes, seconds: best_timed_writes(&dir, bytes, PACK, PACK, true)? })
    }

    pub(super) fn rss(&mut self) -> Result<RssFigure> {
        let o = self.opts;
        let (program, version) = self.cairn();
        let me = std::env::current_exe()?;
        let mut usages = Vec::new();
        for (i, bytes) in [o.rss_bytes, o.rss_bytes * o.rss_factor].into_iter().enumerate() {
            self.say(&format!("memory flatness: streaming {} into cairn", human(bytes)));
            let mut t = self.tool(Kind::Cairn, &program, &version, &format!("rss{i}"))?;
            let generator = Input::Command(vec![
                me.clone().into_os_string(),
                "gen".into(),
                "stream".into(),
                "--bytes".into(),
                bytes.to_string().into(),
                "--seed".into(),
                (o.seed + i as u64).to_string().into(),
            ]);
            let u = self.measured(&t.backup_stdin("stream.bin", generator), &format!("rss cairn {}", human(bytes)))?;
            self.say(&format!("  {:.1} s, peak RSS {:.0} MiB", u.wall, u.max_rss_kib as f64 / 1024.0));
            usages.push(u);
            let _ = fs::remove_dir_all(t.repo.parent().unwrap_or(&t.repo));
        }
        Ok(RssFigure {
            small_bytes: o.rss_bytes,
            large_bytes: o.rss_bytes * o.rss_factor,
            small: usages[0],
            large: usages[1],
        })
    }

    pub(super) fn index(&mut self) -> Result<IndexFigure> {
        let o = self.opts;
        let (program, version) = self.cairn();
        let mut t = self.tool(Kind::Cairn, &program, &version, "index-empty")?;
        let baseline = self.measured(&t.backup_stdin("empty", Input::Null), "index cairn baseline")?;
        let _ = fs::remove_dir_all(t.repo.parent().unwrap_or(&t.repo));
        let mut t = self.tool(Kind::Cairn, &program, &version, "index")?;
        self.say(&format!("writing an index of {} blobs", o.index_blobs));
        // As prune leaves them: 4096 packs of 64 blobs per index object, the densest objects
        // cairn writes (a backup's checkpoints name 32 packs each).
        crate::index_bench::fill_index(&t.repo, o.index_blobs, 4096 * 64, 64)?;
        // The first run decodes the index objects and writes the cache's table; the best of the
        // next three maps it (the first of those may still share the disk with the writeback).
        let first = self.measured(&t.backup_stdin("empty", Input::Null), "index cairn first")?;
        let mut loaded = self.measured(&t.backup_stdin("empty", Input::Null), "index cairn loaded")?;
        for _ in 0..2 {
            let again = self.measured(&t.backup_stdin("empty", Input::Null), "index cairn loaded")?;
            if again.wall < loaded.wall {
                loaded = again;
            }
        }
        self.say(&format!(
            "  index of {} blobs: first open {:.2} s, {:.0} MiB; then {:.2} s, peak RSS {:.0} MiB (empty repository: {:.2} s, {:.0} MiB)",
            o.index_blobs,
            first.wall,
            first.max_rss_kib as f64 / 1024.0,
            loaded.wall,
            loaded.max_rss_kib as f64 / 1024.0,
            baseline.wall,
            baseline.max_rss_kib as f64 / 1024.0
        ));
        if !o.keep {
            let _ = fs::remove_dir_all(t.repo.parent().unwrap_or(&t.repo));
        }
        Ok(IndexFigure { blobs: o.index_blobs, baseline, first, loaded })
    }
}

/// The better of two runs, in seconds, of writing `bytes` into a fresh `dir` as files of at most
/// `file_len` bytes, `block` bytes per write, and nothing else. With `sync`, each file is synced
/// before the next, and the whole system first, so nothing another step left dirty is flushed in
/// the time measured. `dir` is removed afterwards.
fn best_timed_writes(dir: &Path, bytes: u64, block: u64, file_len: u64, sync: bool) -> Result<f64> {
    use std::io::Write;
    let data = vec![0xa5u8; usize::try_from(block)?];
    let mut best = f64::MAX;
    for _ in 0..2 {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir)?;
        if sync {
            let _ = std::process::Command::new("sync").status();
        }
        let started = Instant::now();
        let (mut left, mut n) = (bytes, 0);
        while left > 0 {
            let mut f = fs::File::create(dir.join(format!("file-{n}")))?;
            let mut in_file = left.min(file_len);
            left -= in_file;
            while in_file > 0 {
                let len = in_file.min(block);
                f.write_all(&data[..usize::try_from(len)?])?;
                in_file -= len;
            }
            if sync {
                f.sync_all()?;
            }
            n += 1;
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    fs::remove_dir_all(dir)?;
    Ok(best)
}

/// `job` run by `script` on a pseudo-terminal of its own, without cairn's `-q`: the backup
/// sees a terminal on standard error and draws its live bar.
fn on_terminal(script: &Path, mut job: Job) -> Job {
    let quote = |a: &std::ffi::OsStr| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''"));
    let command: Vec<String> = job.argv.iter().filter(|a| *a != "-q").map(|a| quote(a)).collect();
    job.argv = vec![
        script.as_os_str().to_owned(),
        "-q".into(),
        "-e".into(),
        "-c".into(),
        command.join(" ").into(),
        "/dev/null".into(),
    ];
    job
}

/// One side of [`Run::progress_cost`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Plain,
    Bar,
    Policy,
}

impl Side {
    fn step(self) -> &'static str {
        match self {
            Side::Plain => "initial (no progress)",
            Side::Bar => "initial (progress bar)",
            Side::Policy => "initial (policy run)",
        }
    }
}

/// A policy with one source, `root`, backed up into `repo` (password from the environment).
fn policy_for(repo: &Path, root: &Path) -> String {
    let quote = |p: &Path| toml_string(&p.to_string_lossy());
    format!(
        "[repository]\nurl = {}\n\n[[source]]\nname = \"tree\"\npaths = [{}]\nevery = \"1h\"\nrpo = \"2h\"\n",
        quote(repo),
        quote(root)
    )
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
