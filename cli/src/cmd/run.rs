//! `cairn run --policy FILE`: do what the policy says is due (docs/POLICY.md), record it in the
//! repository, and alert on failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_core::Repository;
use cairn_core::format::record::RunRecord;
use cairn_core::policy::Policy;
use cairn_core::policy::run::{self as policy_run, CopyTarget, RunOptions};

use crate::context::{GlobalArgs, print_json, say};

/// Run the backups, retention, prune, copies, check and drill a policy says are due.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy file (docs/POLICY.md).
    #[arg(long)]
    policy: PathBuf,
    /// Keep running: after each run, wait and run again (for containers; otherwise a timer
    /// from `cairn schedule` starts `cairn run`).
    #[arg(long = "loop")]
    looping: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let policy = load(&args.policy)?;
    loop {
        let code = run_once(global, &policy)?;
        if !args.looping {
            return Ok(code);
        }
        std::thread::sleep(loop_pause(policy.shortest_every()));
    }
}

/// How long `--loop` waits between runs: a twelfth of the shortest interval, between a minute
/// and a quarter of an hour (a run with nothing due only lists snapshots and records).
fn loop_pause(shortest: Duration) -> Duration {
    (shortest / 12).clamp(Duration::from_secs(60), Duration::from_secs(900))
}

/// Reads and checks a policy file; a mistake is a usage error naming the line.
pub fn load(file: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Policy::parse(&text).map_err(|e| crate::usage(format!("{}:{}:{}: {}", file.display(), e.line, e.column, e.message)))
}

/// Opens a repository the policy names, with its own password file when it gives one.
pub fn open(global: &GlobalArgs, repo: &cairn_core::policy::Repo) -> Result<Repository> {
    let mut g = global.clone();
    g.repo = Some(repo.url.clone());
    let password = match &repo.password_file {
        Some(file) => {
            g.password_file = Some(file.clone());
            g.password_command = None;
            g.password_from_sources()?
        }
        None => g.password(false)?,
    };
    Repository::open(g.store()?, &password).with_context(|| format!("opening repository {}", repo.url))
}

/// The time a run judges by: now, or in test builds `CAIRN_TEST_NOW` (RFC 3339), so tests
/// run a year of policy without sleeping.
pub fn now() -> Result<jiff::Timestamp> {
    match std::env::var("CAIRN_TEST_NOW") {
        Ok(t) if !t.is_empty() => {
            if !policy_run::TIME_CAN_BE_INJECTED {
                bail!("CAIRN_TEST_NOW is set, but this build of cairn takes the time from the clock only");
            }
            t.parse().with_context(|| format!("CAIRN_TEST_NOW `{t}` is not an RFC 3339 time"))
        }
        _ => Ok(jiff::Timestamp::now()),
    }
}

/// Each copy the policy names, opened, or why it could not be (that copy's step fails; the
/// others go on).
pub type OpenedCopies = Vec<(String, std::result::Result<Repository, String>)>;

/// Opens every copy of `policy`.
pub fn open_copies(global: &GlobalArgs, policy: &Policy) -> OpenedCopies {
    policy.copies.iter().map(|c| (c.name.clone(), open(global, &c.repository).map_err(|e| format!("{e:#}")))).collect()
}

/// The opened copies as the engine takes them.
pub fn targets(opened: &OpenedCopies) -> Vec<CopyTarget<'_>> {
    opened.iter().map(|(name, r)| CopyTarget { name, repo: r.as_ref().map_err(Clone::clone) }).collect()
}

/// One run; a run that could not even start (the repository unreachable, the password
/// wrong) alerts too, with `{"ok": false, "error": …}` on the command's standard input, since
/// it leaves no record of its own.
fn run_once(global: &GlobalArgs, policy: &Policy) -> Result<u8> {
    let result = run_steps(global, policy);
    if let Err(e) = &result
        && !policy.on_failure.is_empty()
    {
        let doc = serde_json::json!({ "ok": false, "error": format!("{e:#}"), "steps": [] });
        notify(&policy.on_failure, &serde_json::to_vec_pretty(&doc).unwrap_or_default());
    }
    result
}

fn run_steps(global: &GlobalArgs, policy: &Policy) -> Result<u8> {
    let repo = open(global, &policy.repository)?;
    // A write-only key (a backup host's) only backs up: what else the policy asks is left to a
    // run with a full key, and the copies are not opened.
    let write_only = repo.master().is_write_only();
    let opened = if write_only { OpenedCopies::new() } else { open_copies(global, policy) };
    let copies = targets(&opened);
    let mut opts = RunOptions::new(now()?);
    opts.lock_dir = global.cache_dir.clone().or_else(cairn_core::store::default_cache_root).map(|d| d.join("locks"));
    opts.uploads = global.connections;
    let record = policy_run::run(policy, &repo, &copies, &opts).context("running the policy")?;
    if global.json {
        print_json(&record)?;
    } else {
        report(global, &record);
        let more = !policy.retention.is_empty()
            || !policy.copies.is_empty()
            || policy.check.is_some()
            || policy.drill.is_some();
        if write_only && more {
            say!(
                global,
                "a write-only key only backs up: retention, prune, copies, the check and the drill are left to a run with a full key"
            );
        }
    }
    if record.ok() {
        return Ok(0);
    }
    if !policy.on_failure.is_empty() {
        notify(&policy.on_failure, &serde_json::to_vec_pretty(&record).unwrap_or_default());
    }
    Ok(crate::exit::FAILED)
}

fn report(global: &GlobalArgs, record: &RunRecord) {
    if record.steps.is_empty() {
        say!(global, "nothing was due");
    }
    for s in &record.steps {
        let what =
            if s.target.is_empty() { s.kind.name().to_string() } else { format!("{} {}", s.kind.name(), s.target) };
        if s.ok {
            say!(global, "{what}: {} ({:.1} s)", s.message, s.seconds);
        } else {
            eprintln!("error: {what}: {}", s.message);
        }
    }
}

/// Runs the policy's failure command with `json` (the run record) on its standard input. Its
/// own failure is reported, never hidden, and does not change the exit code.
fn notify(argv: &[String], json: &[u8]) {
    let Some((program, rest)) = argv.split_first() else { return };
    let child = std::process::Command::new(program).args(rest).stdin(std::process::Stdio::piped()).spawn();
    let outcome = child.and_then(|mut c| {
        if let Some(mut stdin) = c.stdin.take() {
            // A command that does not read its input is not an error.
            let _ = stdin.write_all(json);
        }
        c.wait()
    });
    match outcome {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("warning: the failure command `{program}` exited with {status}"),
        Err(e) => eprintln!("warning: the failure command `{program}` could not be run: {e}"),
    }
}
