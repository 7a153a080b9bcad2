//! Live progress for long commands (backup, restore, `check --read-data`, copy, prune,
//! rewrite): a bar on a terminal; with `--progress` when not on one, a status line a second on
//! stderr, or with `--json` a JSON line a second (`"message_type": "status"`, as restic's)
//! for wrappers. With `-v`, each item done (file, pack, snapshot) gets a line of its own on
//! stderr. The summary goes to stdout as before, so progress never mixes into what scripts
//! parse.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::context::GlobalArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Bar,
    Lines,
    Json,
}

#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    files: AtomicU64,
    errors: AtomicU64,
    total_bytes: AtomicU64,
    total_files: AtomicU64,
    /// Whether the totals are known (set by the engine, or by a walk that runs ahead).
    totals_known: AtomicBool,
}

/// Draws a command's progress; hand it to the engine as its [`cairn_core::Progress`].
pub struct Reporter {
    action: &'static str,
    mode: Mode,
    counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    started: Instant,
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Print warnings as they come (off with `-q` or `--json`, whose summary lists them).
    warnings: bool,
    /// Name each item as it is done (`-v`): a text line, or with `--json` a JSON line.
    items: Option<Mode>,
    finished: AtomicBool,
}

impl Reporter {
    /// The reporter `global`'s flags ask for, for `action` (`"backup"`, `"restore"`).
    pub fn new(global: &GlobalArgs, action: &'static str) -> Self {
        let mode = if global.quiet {
            Mode::Off
        } else if global.progress && global.json {
            Mode::Json
        } else if global.json {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else if global.progress {
            Mode::Lines
        } else {
            Mode::Off
        };
        let counters = Arc::new(Counters::default());
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(style(false, action, &counters));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let started = Instant::now();
        let ticker = matches!(mode, Mode::Lines | Mode::Json).then(|| {
            let counters = Arc::clone(&counters);
            // A line a second until told to stop (or the reporter is gone), never later: the
            // command's own end does not wait on the next tick.
            std::thread::spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_secs(1))
                {
                    eprintln!("{}", status_line(mode, action, &counters, started.elapsed()));
                }
            })
        });
        Reporter {
            action,
            mode,
            counters,
            bar,
            started,
            stop: Mutex::new(Some(stop)),
            ticker: Mutex::new(ticker),
            warnings: !global.quiet && !global.json,
            items: global.verbose.then_some(if global.json { Mode::Json } else { Mode::Lines }),
            finished: AtomicBool::new(false),
        }
    }

    /// Counts the regular files below `paths` in a thread of its own, so the bar has a total
    /// while the backup runs (a walk that runs ahead; excludes are not applied, so the total
    /// may be a little high).
    pub fn count_ahead(&self, paths: &[std::path::PathBuf]) {
        if self.mode == Mode::Off {
            return;
        }
        let counters = Arc::clone(&self.counters);
        let bar = self.bar.clone();
        let (paths, action) = (paths.to_vec(), self.action);
        std::thread::spawn(move || {
            // The count is a courtesy to the person watching: it runs at the lowest priority,
            // on whatever CPU the backup leaves idle (on Linux, `setpriority` of the calling
            // process, given as none, sets the calling thread's nice value alone).
            let _ = rustix::process::setpriority_process(None, 19);
            let (mut bytes, mut files) = (0u64, 0u64);
            let mut dirs = Vec::new();
            for p in paths {
                match std::fs::symlink_metadata(&p) {
                    Ok(meta) if meta.is_dir() => dirs.push(p),
                    Ok(meta) if meta.is_file() => (bytes, files) = (bytes + meta.len(), files + 1),
                    _ => {}
                }
            }
            // The entry's type comes with the listing; only files are stat'ed, relative to
            // their directory.
            while let Some(dir) = dirs.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for e in entries.flatten() {
                    match e.file_type() {
                        Ok(t) if t.is_dir() => dirs.push(e.path()),
                        Ok(t) if t.is_file() => {
                            if let Ok(meta) = e.metadata() {
                                (bytes, files) = (bytes + meta.len(), files + 1);
                            }
                        }
                        _ => {}
                    }
                }
            }
            set_totals(&counters, bar.as_ref(), action, bytes, files);
        });
    }

    /// Clears the bar (the summary is printed next) and stops the status lines.
    pub fn finish(&self) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Ok(mut stop) = self.stop.lock() {
            drop(stop.take());
        }
        if let Ok(mut t) = self.ticker.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        // The last status, so even a run shorter than a second reports once.
        if matches!(self.mode, Mode::Lines | Mode::Json) {
            eprintln!("{}", status_line(self.mode, self.action, &self.counters, self.started.elapsed()));
        }
    }

    fn advance(&self, bytes: u64) {
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn set_totals(c: &Arc<Counters>, bar: Option<&ProgressBar>, action: &'static str, bytes: u64, files: u64) {
    c.total_bytes.store(bytes, Ordering::Relaxed);
    c.total_files.store(files, Ordering::Relaxed);
    c.totals_known.store(true, Ordering::Relaxed);
    if let Some(bar) = bar {
        bar.set_length(bytes);
        bar.set_style(style(true, action, c));
    }
}

/// The bar: bytes done of the total, rate, time left, files, errors. Files and errors are read
/// from the counters when the bar is drawn (a few times a second), never pushed per file: a
/// message set for each of a tree's 45 000 files cost a tenth of the backup's speed.
fn style(with_total: bool, action: &'static str, counters: &Arc<Counters>) -> ProgressStyle {
    let template = if with_total {
        "{spinner} {done} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}, {eta} left"
    } else {
        "{spinner} {done} [{elapsed_precise}] {bytes} {bytes_per_sec}"
    };
    let counters = Arc::clone(counters);
    let done = move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let files = counters.files.load(Ordering::Relaxed);
        let _ = write!(w, "{files} {}", noun(action));
        let errors = counters.errors.load(Ordering::Relaxed);
        if errors > 0 {
            let _ = write!(w, ", {errors} errors");
        }
    };
    ProgressStyle::with_template(template)
        .map(|s| s.with_key("done", done))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// What an action counts: files, packs for `check` and `prune`, snapshots for `copy` and
/// `rewrite`.
fn noun(action: &str) -> &'static str {
    match action {
        "check" | "prune" => "packs",
        "copy" | "rewrite" => "snapshots",
        _ => "files",
    }
}

/// One status report: plain text, or a JSON line.
fn status_line(mode: Mode, action: &str, c: &Counters, elapsed: Duration) -> String {
    let noun = noun(action);
    let bytes = c.bytes.load(Ordering::Relaxed);
    let files = c.files.load(Ordering::Relaxed);
    let errors = c.errors.load(Ordering::Relaxed);
    let known = c.totals_known.load(Ordering::Relaxed);
    let total = c.total_bytes.load(Ordering::Relaxed);
    let percent = (known && total > 0).then(|| (bytes as f64 / total as f64 * 100.0).min(100.0));
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
    if mode == Mode::Json {
        return serde_json::json!({
            "message_type": "status",
            "action": action,
            "seconds_elapsed": secs,
            "bytes_done": bytes,
            "total_bytes": known.then_some(total),
            "files_done": files,
            "total_files": known.then(|| c.total_files.load(Ordering::Relaxed)),
            "errors": errors,
            "percent_done": percent,
            "bytes_per_second": rate,
        })
        .to_string();
    }
    let of = if known { format!(" of {}", crate::context::bytes(total)) } else { String::new() };
    let pct = percent.map(|p| format!(" ({p:.0} %)")).unwrap_or_default();
    format!(
        "{action}: {}{of}{pct}, {files} {noun}, {}/s, {errors} errors, {secs:.0}s",
        crate::context::bytes(bytes),
        crate::context::bytes(rate as u64)
    )
}

/// One item done, for `-v`: `backup: /etc/hosts (1.2 KiB)`, or a JSON line.
fn item_line(mode: Mode, action: &str, item: &std::path::Path, bytes: u64) -> String {
    if mode == Mode::Json {
        return serde_json::json!({
            "message_type": "verbose_status",
            "action": action,
            "item": item.to_string_lossy(),
            "bytes": bytes,
        })
        .to_string();
    }
    format!("{action}: {} ({})", item.display(), crate::context::bytes(bytes))
}

impl cairn_core::Progress for Reporter {
    fn file_done(&self, path: &std::path::Path, bytes: u64) {
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        if let Some(mode) = self.items
            && !path.as_os_str().is_empty()
        {
            let line = item_line(mode, self.action, path, bytes);
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        }
    }

    fn bytes_read(&self, bytes: u64) {
        self.advance(bytes);
    }

    fn bytes_restored(&self, bytes: u64) {
        self.advance(bytes);
    }

    fn total(&self, bytes: u64, files: u64) {
        set_totals(&self.counters, self.bar.as_ref(), self.action, bytes, files);
    }

    fn warning(&self, message: &str) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        if !self.warnings {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}
