//! Running a command and measuring it: wall time, CPU time (user + system) and peak RSS.
//!
//! Resource usage comes from `getrusage(RUSAGE_CHILDREN)`, which counts a process's waited-for
//! children and their descendants. To count exactly one command, the harness re-runs its own
//! binary as `cairn-bench measure --out FILE -- COMMAND...`: that fresh process has no other
//! children, runs the command, and writes the usage to FILE. Whatever feeds the command's
//! standard input (a generator for stream runs) is started by the harness, not by the
//! measuring process, so its CPU time is not counted against the tool.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What one command cost.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Elapsed seconds.
    pub wall: f64,
    /// User CPU seconds.
    pub user: f64,
    /// System CPU seconds.
    pub sys: f64,
    /// Peak resident set size in KiB (of the largest process of the command).
    pub max_rss_kib: u64,
    /// Exit code (-1 when killed by a signal).
    pub exit: i32,
}

impl Usage {
    /// User plus system seconds.
    #[must_use]
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }

    /// Cores busy on average.
    #[must_use]
    pub fn cores_busy(&self) -> f64 {
        if self.wall > 0.0 { self.cpu() / self.wall } else { 0.0 }
    }
}

/// The body of `cairn-bench measure`: runs `argv`, waits, and writes its [`Usage`] as JSON to
/// `out`. Standard input, output and error are inherited.
///
/// # Errors
/// When the command cannot be started or the result not written.
pub fn measure_main(out: &Path, argv: &[OsString]) -> Result<()> {
    use nix::sys::resource::{UsageWho, getrusage};
    let (program, args) = argv.split_first().context("measure: no command given")?;
    let started = Instant::now();
    let status =
        Command::new(program).args(args).status().with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let wall = started.elapsed().as_secs_f64();
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let secs = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    let usage = Usage {
        wall,
        user: secs(ru.user_time()),
        sys: secs(ru.system_time()),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(ru.max_rss()).unwrap_or(0),
        exit: status.code().unwrap_or(-1),
    };
    fs::write(out, serde_json::to_vec(&usage)?).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Where a command's standard input comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// Nothing (`/dev/null`).
    Null,
    /// A file, read directly by the command (no copy through the harness).
    File(PathBuf),
    /// Another command's standard output (not measured).
    Command(Vec<OsString>),
}

/// A command to measure.
#[derive(Debug, Clone)]
pub struct Job {
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, OsString)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Standard input.
    pub input: Input,
    /// Where standard output goes: this file (created or truncated), or the log when `None`.
    /// For a restore that writes to standard output (`bupstash get`).
    pub output: Option<PathBuf>,
}

impl Job {
    /// A job running `program` with `args`, no input, in the current directory.
    pub fn new<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut argv = vec![program.into()];
        argv.extend(args.into_iter().map(Into::into));
        Job { argv, env: Vec::new(), cwd: None, input: Input::Null, output: None }
    }

    /// How the job reads in logs: the command line, shell-quoted where needed.
    #[must_use]
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                let s = a.to_string_lossy();
                if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c)) {
                    s.into_owned()
                } else {
                    format!("'{s}'")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs `job` under `cairn-bench measure`, appending its output to `log`.
///
/// # Errors
/// When the job cannot start or exits unsuccessfully (with the end of its log).
pub fn run(job: &Job, log: &Path) -> Result<Usage> {
    let result = log.with_extension(format!("usage-{}.json", std::process::id()));
    let mut logf = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    {
        use std::io::Write;
        let input = match &job.input {
            Input::Null => String::new(),
            Input::File(p) => format!(" < {}", p.display()),
            Input::Command(a) => {
                format!(" <(generator {})", a.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" "))
            }
        };
        let output = job.output.as_ref().map(|p| format!(" > {}", p.display())).unwrap_or_default();
        writeln!(logf, "\n$ {}{input}{output}", job.display())?;
    }
    let me = std::env::current_exe().context("locating cairn-bench")?;
    let mut cmd = Command::new(me);
    cmd.arg("measure").arg("--out").arg(&result).arg("--").args(&job.argv);
    cmd.envs(job.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &job.cwd {
        cmd.current_dir(dir);
    }
    match &job.output {
        Some(p) => cmd.stdout(fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => cmd.stdout(logf.try_clone()?),
    };
    cmd.stderr(logf.try_clone()?);
    let mut generator = None;
    match &job.input {
        Input::Null => {
            cmd.stdin(Stdio::null());
        }
        Input::File(p) => {
            cmd.stdin(fs::File::open(p).with_context(|| format!("opening {}", p.display()))?);
        }
        Input::Command(argv) => {
            let (program, args) = argv.split_first().context("empty generator command")?;
            let mut g = Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(logf.try_clone()?)
                .spawn()
                .with_context(|| format!("starting generator {}", program.to_string_lossy()))?;
            let out = g.stdout.take().context("generator stdout")?;
            cmd.stdin(out);
            generator = Some(g);
        }
    }
    let status = cmd.status().context("starting cairn-bench measure")?;
    // The command holds this process's copy of the generator's pipe: closed first, so a
    // generator whose reader failed early gets a broken pipe instead of waiting forever.
    drop(cmd);
    if let Some(mut g) = generator {
        let _ = g.wait();
    }
    if !status.success() {
        bail!("the measuring process failed ({status}); see {}", log.display());
    }
    let usage: Usage = serde_json::from_slice(&fs::read(&result).context("reading the measurement")?)?;
    let _ = fs::remove_file(&result);
    if usage.exit != 0 {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        bail!(
            "`{}` exited with {}:\n{}",
            job.display(),
            usage.exit,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(usage)
}
