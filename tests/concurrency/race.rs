//! Backups racing forget and prune, each a separate `cairn` process, for a bounded number of
//! rounds (and a time limit), against a local and an S3 repository.
//!
//! Every backup worker owns a source tree that only it changes, and only between its backups,
//! so the manifest taken just before a backup is exactly what that backup read. One worker runs
//! with `CAIRN_TEST_FAULTS=delay_ms=…` (latency on every storage request), so its backups take
//! seconds, about as long as the 2 s grace period: those are the backups that see packs marked,
//! and sometimes swept, under them. The other workers back up as fast as they can, beside a `forget --keep-last 3 --prune
//! --grace 2s` loop and a `prune --grace 2s` loop (two prunes can therefore overlap too). The last
//! worker tags its snapshots `keep`, which forget keeps (`--keep-tag keep`): a snapshot damaged
//! at commit time cannot be forgotten before the end, where it would be found.
//!
//! Afterwards (nothing running any more):
//! - every snapshot a backup reported (`backup --json`) either still exists and restores to
//!   exactly the recorded manifest, or was removed by a forget run that said so (the `keep`
//!   worker's snapshots must all still exist);
//! - `check --read-data` exits 0;
//! - after two more `prune --grace 0s` (which sweep everything marked during the race),
//!   `check --read-data` still exits 0: no snapshot depends on a pack that was only waiting to go.
//!
//! - a last `prune --dry-run --grace 0s` finds nothing left to collect: space was reclaimed.
//!
//! A backup may fail with the "was removed while this backup ran" error (counted); any other
//! backup failure fails the test. Prunes make progress while backups never stop (issue 14,
//! item 9): a snapshot committed during a prune is read with the index objects written since
//! the prune read them, never an error. The one failure allowed to a prune (alone or after a
//! forget) is the conflict of two prunes at once, "was removed while this prune ran", when
//! one sweeps a pack the other meant to repack; it commits nothing, and at least three prunes
//! in four must finish.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{
    Cairn, Manifest, Output, REMOVED_WHILE_RUNNING, Rng, SourceTree, args, compare, manifest, restored, shared_variants,
};

/// The one way a prune may fail during the race: another prune swept a pack it meant to repack.
const PRUNES_COLLIDED: &str = "was removed while this prune ran";

/// How big a race to run.
struct Settings {
    /// Backup workers (one of them slowed down).
    workers: usize,
    /// Backups per worker at most.
    rounds: usize,
    /// No new backup starts after this long.
    time_limit: Duration,
    /// `forget --keep-last`.
    keep_last: usize,
    /// Latency added to every storage request of worker 0's backups.
    slow_delay_ms: u32,
    /// The grace period of every prune during the race.
    grace: &'static str,
}

const SETTINGS: Settings = Settings {
    workers: 3,
    rounds: 400,
    time_limit: Duration::from_secs(100),
    keep_last: 3,
    slow_delay_ms: 60,
    grace: "2s",
};

/// A backup that exited 0.
struct Completed {
    id: String,
    worker: usize,
    round: usize,
    source: PathBuf,
    content: Manifest,
}

#[derive(Default)]
struct Log {
    completed: Vec<Completed>,
    /// How long each backup of the slowed worker took.
    slow_durations: Vec<Duration>,
    /// Backups that failed with the allowed error.
    removed_while_running: Vec<String>,
    /// Any other backup failure.
    backup_failures: Vec<String>,
    /// Snapshot ids forget runs reported as removed.
    forgotten: HashSet<String>,
    forget_runs: usize,
    forget_failures: Vec<String>,
    /// A forget run failed before saying what it removed.
    forget_unaccounted: bool,
    prune_runs: usize,
    prune_failures: Vec<String>,
    packs_marked: u64,
    packs_deleted: u64,
    packs_resurrected: u64,
    packs_repacked: u64,
}

impl Log {
    fn add_prune_stats(&mut self, doc: &serde_json::Value) {
        let n = |k: &str| doc["stats"][k].as_u64().unwrap_or(0);
        self.packs_marked += n("packs_marked");
        self.packs_deleted += n("packs_deleted");
        self.packs_resurrected += n("packs_resurrected");
        self.packs_repacked += n("packs_repacked");
    }
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The first lines of a failed run, enough to recognise it in a summary.
fn brief(out: &Output) -> String {
    let err: Vec<&str> = out.stderr.lines().take(3).collect();
    format!("`{}` → {:?}: {}", out.line, out.code, err.join(" | "))
}

fn backup_worker(cairn: &Cairn, work: &Path, w: usize, deadline: Instant, log: &Mutex<Log>) {
    let shared = shared_variants();
    let mut tree = SourceTree::new(work.join(format!("source-{w}")), 0xB0B0 + w as u64, &shared);
    let delay = format!("delay_ms={}", SETTINGS.slow_delay_ms);
    let env: Vec<(&str, &str)> = if w == 0 { vec![("CAIRN_TEST_FAULTS", delay.as_str())] } else { vec![] };
    for round in 0..SETTINGS.rounds {
        if Instant::now() > deadline {
            break;
        }
        if round > 0 {
            tree.mutate(&shared);
        }
        let content = manifest(&tree.root);
        let mut backup = args!["--json", "backup", "--tag", format!("worker-{w}"), &tree.root];
        if w == SETTINGS.workers - 1 {
            backup.extend(args!["--tag", "keep"]);
        }
        let out = cairn.run_env(backup, &env);
        let mut log = lock(log);
        if w == 0 {
            log.slow_durations.push(out.elapsed);
        }
        if out.ok() {
            let json = out.json();
            let id = json["snapshot"].as_str().unwrap_or_else(|| panic!("no snapshot id\n{}", out.describe()));
            log.completed.push(Completed { id: id.to_string(), worker: w, round, source: tree.root.clone(), content });
        } else if out.code == Some(cairn_tests::exit::CONFLICT) && out.stderr.contains(REMOVED_WHILE_RUNNING) {
            log.removed_while_running.push(brief(&out));
        } else {
            log.backup_failures.push(out.describe());
        }
    }
}

fn forget_worker(cairn: &Cairn, stop: &AtomicBool, log: &Mutex<Log>) {
    let mut rng = Rng::new(0xF0F0);
    while !stop.load(Ordering::SeqCst) {
        let out = cairn.run(args![
            "--json",
            "forget",
            "--keep-last",
            SETTINGS.keep_last.to_string(),
            "--keep-tag",
            "keep",
            "--prune",
            "--grace",
            SETTINGS.grace
        ]);
        let docs: Vec<serde_json::Value> =
            serde_json::Deserializer::from_str(&out.stdout).into_iter().map_while(Result::ok).collect();
        let mut log = lock(log);
        log.forget_runs += 1;
        match docs.first() {
            Some(forget) => {
                for id in forget["removed"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
                    log.forgotten.insert(id.to_string());
                }
            }
            None => log.forget_unaccounted |= !out.ok(),
        }
        if let Some(prune) = docs.get(1) {
            log.add_prune_stats(prune);
        }
        if !out.ok() {
            log.forget_failures.push(brief(&out));
        }
        drop(log);
        std::thread::sleep(Duration::from_millis(rng.range(300, 1200) as u64));
    }
}

fn prune_worker(cairn: &Cairn, stop: &AtomicBool, log: &Mutex<Log>) {
    let mut rng = Rng::new(0x9A9A);
    while !stop.load(Ordering::SeqCst) {
        let out = cairn.run(args!["--json", "prune", "--grace", SETTINGS.grace]);
        let mut log = lock(log);
        log.prune_runs += 1;
        if out.ok() {
            log.add_prune_stats(&out.json());
        } else {
            log.prune_failures.push(brief(&out));
        }
        drop(log);
        std::thread::sleep(Duration::from_millis(rng.range(100, 800) as u64));
    }
}

/// Runs the race against `cairn`'s repository and checks the outcome.
fn race(cairn: &Cairn, work: &Path) {
    let started = Instant::now();
    cairn.init();
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = started + SETTINGS.time_limit;
    std::thread::scope(|s| {
        let backups: Vec<_> = (0..SETTINGS.workers)
            .map(|w| {
                s.spawn({
                    let log = &log;
                    move || backup_worker(cairn, work, w, deadline, log)
                })
            })
            .collect();
        s.spawn(|| forget_worker(cairn, &stop, &log));
        s.spawn(|| prune_worker(cairn, &stop, &log));
        for b in backups {
            b.join().expect("a backup worker panicked");
        }
        stop.store(true, Ordering::SeqCst);
    });
    let raced = started.elapsed();
    let log = Arc::into_inner(log).unwrap().into_inner().unwrap();
    let mut problems: Vec<String> = Vec::new();
    for f in &log.backup_failures {
        problems.push(format!("a backup failed with something other than `{REMOVED_WHILE_RUNNING}`:\n{f}"));
    }

    // Every completed snapshot still there restores exactly; the others were forgotten.
    let listed = cairn.run(args!["--json", "snapshots"]).success();
    let existing: HashSet<String> = listed
        .json()
        .as_array()
        .expect("snapshots --json is a list")
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let mut restored_ok = 0;
    for c in &log.completed {
        let what = format!("snapshot {} (worker {}, round {})", &c.id[..8], c.worker, c.round);
        if !existing.contains(&c.id) {
            if c.worker == SETTINGS.workers - 1 {
                problems.push(format!("{what} is tagged `keep` but gone"));
            } else if !log.forgotten.contains(&c.id) {
                problems.push(format!(
                    "{what} completed, no forget run removed it{}, and it is gone",
                    if log.forget_unaccounted { " (as far as the forget runs that printed a result say)" } else { "" }
                ));
            }
            continue;
        }
        let target = work.join(format!("restore-{}", &c.id[..16]));
        let out = cairn.run(args!["restore", &c.id, "--target", &target]);
        if !out.ok() {
            problems.push(format!("{what} does not restore:\n{}", out.describe()));
            continue;
        }
        match compare(&c.content, &manifest(&restored(&target, &c.source))) {
            Ok(()) => restored_ok += 1,
            Err(diff) => problems.push(format!("{what} restores wrongly: {diff}")),
        }
        let _ = std::fs::remove_dir_all(&target);
    }
    let check = cairn.run(args!["check", "--read-data"]);
    if !check.ok() {
        problems.push(format!("check --read-data after the race failed:\n{}", check.describe()));
    }
    // Sweep everything marked during the race: nothing a snapshot needs may go.
    for _ in 0..2 {
        let out = cairn.run(args!["prune", "--grace", "0s"]);
        if !out.ok() {
            problems.push(format!("prune after the race failed:\n{}", out.describe()));
        }
    }
    let check = cairn.run(args!["check", "--read-data"]);
    if !check.ok() {
        problems.push(format!("check --read-data after sweeping everything marked failed:\n{}", check.describe()));
    }
    let left = cairn.run(args!["--json", "prune", "--dry-run", "--grace", "0s"]).success().json();
    for what in ["packs_marked", "packs_unindexed"] {
        if left["stats"][what].as_u64() != Some(0) {
            problems
                .push(format!("after the sweep a prune would still collect something: {what} in {}", left["stats"]));
        }
    }
    for f in log.prune_failures.iter().chain(&log.forget_failures) {
        if !f.contains(PRUNES_COLLIDED) {
            problems.push(format!("a prune or forget failed during the race other than by `{PRUNES_COLLIDED}`:\n{f}"));
        }
    }
    let prunes = log.prune_runs + log.forget_runs;
    let failed = log.prune_failures.len() + log.forget_failures.len();
    if failed * 4 > prunes {
        problems.push(format!("{failed} of {prunes} prunes (alone or after forget) failed: garbage collection stalls"));
    }

    let per_worker: Vec<usize> =
        (0..SETTINGS.workers).map(|w| log.completed.iter().filter(|c| c.worker == w).count()).collect();
    let summary = format!(
        "{}: raced {raced:.1?}; backups completed {per_worker:?} (worker 0 slowed: {:.1?} to {:.1?} each; the last kept), failed as allowed ({REMOVED_WHILE_RUNNING}) {}, \
         failed otherwise {}; snapshots still there and restored exactly {restored_ok}; forget runs {} ({} failed, {} snapshots removed); \
         prune runs {} ({} failed); packs marked {}, deleted {}, repacked {}, resurrected {}; total {:.1?}",
        cairn.url,
        log.slow_durations.iter().min().copied().unwrap_or_default(),
        log.slow_durations.iter().max().copied().unwrap_or_default(),
        log.removed_while_running.len(),
        log.backup_failures.len(),
        log.forget_runs,
        log.forget_failures.len(),
        log.forgotten.len(),
        log.prune_runs,
        log.prune_failures.len(),
        log.packs_marked,
        log.packs_deleted,
        log.packs_repacked,
        log.packs_resurrected,
        started.elapsed(),
    );
    let reasons =
        failure_reasons(log.removed_while_running.iter().chain(&log.forget_failures).chain(&log.prune_failures));
    let summary = format!(
        "{summary}\nallowed failures (backups: {REMOVED_WHILE_RUNNING}; forget, prune: {PRUNES_COLLIDED}), by reason:\n{reasons}"
    );
    eprintln!("{summary}");
    // The race must have raced: backups done by every worker, snapshots forgotten, packs swept.
    if per_worker.contains(&0) {
        problems.push(format!("some worker completed no backup: {per_worker:?}"));
    }
    if log.forgotten.is_empty() || log.packs_deleted == 0 {
        problems.push(format!(
            "forget removed {} snapshots and prune deleted {} packs during the race: garbage collection did not \
             really run beside the backups (see the failed prune runs above)",
            log.forgotten.len(),
            log.packs_deleted
        ));
    }
    assert!(problems.is_empty(), "{summary}\n\n{} problem(s):\n\n{}", problems.len(), problems.join("\n\n"));
}

/// Failed runs grouped by command and message (ids, paths and times left out), with counts.
fn failure_reasons<'a>(failures: impl Iterator<Item = &'a String>) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for f in failures {
        let generic: String = f
            .split_whitespace()
            .map(|w| {
                let hexlike = w.len() >= 16 && w.chars().filter(char::is_ascii_hexdigit).count() * 10 >= w.len() * 9;
                if hexlike || w.contains('/') { "…" } else { w }
            })
            .collect::<Vec<_>>()
            .join(" ");
        *counts.entry(generic).or_default() += 1;
    }
    counts.iter().map(|(reason, n)| format!("  {n}× {reason}")).collect::<Vec<_>>().join("\n")
}

#[test]
fn local_backups_race_forget_and_prune() {
    let work = tempfile::Builder::new().prefix("cairn-race-").tempdir().unwrap();
    let cairn = Cairn::local(&work.path().join("repo"));
    race(&cairn, work.path());
}

#[test]
fn s3_backups_race_forget_and_prune() {
    let work = tempfile::Builder::new().prefix("cairn-race-s3-").tempdir().unwrap();
    let cairn = Cairn::s3(work.path(), "race");
    race(&cairn, work.path());
}
