//! [`FaultyStore`]: injects failures and delays, for tests and the latency benchmark.
//!
//! Configured from a string such as `fail_rate=0.1,seed=7,delay_ms=20`, so the end-to-end
//! tests can drive the real binary through faults (`CAIRN_TEST_FAULTS`). Faults:
//! - `fail_rate=P`: each request fails with a transient error with probability P;
//! - `fail_nth=N`: the Nth request (1-based, counting all kinds) fails permanently;
//! - `fail_puts_after=N`: every put after the first N fails permanently (a dying network);
//! - `short_reads=P`: a read is cut short with probability P, as a broken connection would cut
//!   it: a ranged read returns the first half of what it asked for (the retry layer must notice
//!   and read again); a whole-object read fails with a transient error, as the HTTP client fails
//!   a body that ends before its `Content-Length` (an object's whole body is never silently
//!   short);
//! - `garble_reads=K`: the first K ranged reads come back with one byte changed, as a store,
//!   proxy or network may hand back wrong bytes for a moment (the reader must authenticate
//!   them and read again);
//! - `delay_ms=D`: every request waits D milliseconds (latency injection);
//! - `archive=DIR` (with `archive_ms=W`): the store behaves like S3's archive classes, which no
//!   local server emulates. An object put in `GLACIER` or `DEEP_ARCHIVE` is archived: reading
//!   it fails with [`StoreError::Archived`] until a warm-up is requested and W milliseconds
//!   have passed since the first request. The state lives in DIR (so it outlasts one process,
//!   as a restore interrupted and run again needs), and every warm-up request is appended to
//!   `DIR/requests` as `KEY TIER DAYS`;
//! - `seed=S`: seed of the random choices;
//! - `trace=1`: every request is written to standard error as it starts and again when it
//!   ends, with the time since the store was opened, how long it took and the thread that made
//!   it (to count the round trips a command makes and see which of them wait on each other).

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{ObjectInfo, ObjectKey, ObjectKind, PutHints, Store, StoreError};

/// Which faults to inject.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Probability of a transient failure per request.
    pub fail_rate: f64,
    /// The request (1-based) that fails permanently.
    pub fail_nth: Option<u64>,
    /// Puts after this many fail permanently.
    pub fail_puts_after: Option<u64>,
    /// Probability of a truncated get.
    pub short_reads: f64,
    /// Ranged reads returned with a byte changed, from the first.
    pub garble_reads: u64,
    /// Delay per request.
    pub delay: Duration,
    /// Random seed.
    pub seed: u64,
    /// Write every request to standard error.
    pub trace: bool,
    /// Emulate archive storage classes, keeping their state here.
    pub archive: Option<std::path::PathBuf>,
    /// How long an archived object takes to warm up.
    pub archive_delay: Duration,
}

impl std::str::FromStr for FaultConfig {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut c = FaultConfig::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("fault `{part}` is not key=value"))?;
            let num = |v: &str| v.parse::<f64>().map_err(|_| format!("fault `{part}`: `{v}` is not a number"));
            match k {
                "fail_rate" => c.fail_rate = num(v)?,
                "fail_nth" => c.fail_nth = Some(num(v)? as u64),
                "fail_puts_after" => c.fail_puts_after = Some(num(v)? as u64),
                "short_reads" => c.short_reads = num(v)?,
                "garble_reads" => c.garble_reads = num(v)? as u64,
                "delay_ms" => c.delay = Duration::from_secs_f64(num(v)? / 1000.0),
                "seed" => c.seed = num(v)? as u64,
                "trace" => c.trace = num(v)? != 0.0,
                "archive" => c.archive = Some(std::path::PathBuf::from(v)),
                "archive_ms" => c.archive_delay = Duration::from_secs_f64(num(v)? / 1000.0),
                _ => return Err(format!("unknown fault `{k}`")),
            }
        }
        Ok(c)
    }
}

/// A store that fails and delays on purpose.
pub struct FaultyStore<S> {
    inner: S,
    config: FaultConfig,
    requests: AtomicU64,
    puts: AtomicU64,
    ranged_reads: AtomicU64,
    rng: Mutex<StdRng>,
    /// When the store was opened: trace times count from here.
    opened: Instant,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, config: FaultConfig) -> Self {
        let rng = Mutex::new(StdRng::seed_from_u64(config.seed));
        FaultyStore {
            inner,
            config,
            requests: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            ranged_reads: AtomicU64::new(0),
            rng,
            opened: Instant::now(),
        }
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().map(|mut r| r.gen_bool(p.clamp(0.0, 1.0))).unwrap_or(false)
    }

    /// Runs one request: traced, delayed, perhaps failed, then `op`.
    fn request<T>(&self, what: &str, op: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let started = Instant::now();
        if self.config.trace {
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("unnamed");
            eprintln!("store request {n} start {:.3}s [{thread}]: {what}", self.seconds(started));
        }
        let result = self.before(n, what).and_then(|()| op());
        if self.config.trace {
            let outcome = if result.is_ok() { "ok" } else { "failed" };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            eprintln!("store request {n} end {:.3}s {ms:.1} ms {outcome}: {what}", self.seconds(Instant::now()));
        }
        result
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.duration_since(self.opened).as_secs_f64()
    }

    fn before(&self, n: u64, what: &str) -> Result<(), StoreError> {
        if !self.config.delay.is_zero() {
            std::thread::sleep(self.config.delay);
        }
        if self.config.fail_nth == Some(n) {
            return Err(StoreError::Permanent(format!("injected permanent failure of request {n} ({what})")));
        }
        if self.roll(self.config.fail_rate) {
            return Err(StoreError::Transient(format!("injected transient failure ({what})")));
        }
        Ok(())
    }

    fn shorten(&self, data: Bytes) -> Bytes {
        if data.len() > 1 && self.roll(self.config.short_reads) { data.slice(..data.len() / 2) } else { data }
    }

    /// Whether this ranged read is one `garble_reads` changes.
    fn garbles(&self) -> bool {
        self.ranged_reads.fetch_add(1, Ordering::SeqCst) < self.config.garble_reads
    }

    /// The archive emulation's files for `key`: its marker (it is archived) and its warm-up
    /// request (whose modification time is when warming started).
    fn archive_files(&self, key: &ObjectKey) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        let dir = self.config.archive.as_ref()?;
        let name = key.path().replace('/', "_");
        Some((dir.join(format!("{name}.archived")), dir.join(format!("{name}.warming"))))
    }

    /// Refuses a read of an archived object that is not warm yet.
    fn check_warm(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let Some((archived, warming)) = self.archive_files(key) else { return Ok(()) };
        if !archived.exists() {
            return Ok(());
        }
        let since = std::fs::metadata(&warming).and_then(|m| m.modified()).ok();
        match since.and_then(|t| t.elapsed().ok()) {
            Some(waited) if waited >= self.config.archive_delay => Ok(()),
            Some(_) => Err(StoreError::Archived(format!("{key} (warming up)"))),
            None => Err(StoreError::Archived(key.to_string())),
        }
    }

    /// `data` with its middle byte changed, for a read `garble_reads` picks.
    fn garble(&self, data: Bytes) -> Bytes {
        if data.is_empty() || !self.garbles() {
            return data;
        }
        let mut changed = data.to_vec();
        let mid = changed.len() / 2;
        changed[mid] ^= 0x40;
        Bytes::from(changed)
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn put_with(&self, key: &ObjectKey, data: Bytes, hints: PutHints<'_>) -> Result<(), StoreError> {
        self.request(&format!("put {key}"), || {
            let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
            if self.config.fail_puts_after.is_some_and(|limit| n > limit) {
                return Err(StoreError::Permanent(format!("injected failure: put {n} refused")));
            }
            self.inner.put_with(key, data, hints)?;
            let cold = hints.storage_class.is_some_and(|c| matches!(c, "GLACIER" | "DEEP_ARCHIVE"));
            if let Some((archived, _)) = self.archive_files(key).filter(|_| cold) {
                std::fs::write(&archived, b"")
                    .map_err(|e| StoreError::Permanent(format!("{}: {e}", archived.display())))?;
            }
            Ok(())
        })
    }
    fn replace(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        self.request(&format!("replace {key}"), || {
            let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
            if self.config.fail_puts_after.is_some_and(|limit| n > limit) {
                return Err(StoreError::Permanent(format!("injected failure: put {n} refused")));
            }
            self.inner.replace(key, data)
        })
    }
    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        self.request(&format!("get {key}"), || {
            self.check_warm(key)?;
            let data = self.inner.get(key)?;
            if data.len() > 1 && self.roll(self.config.short_reads) {
                return Err(StoreError::Transient(format!(
                    "injected short read: the body of {key} ended after {} of {} bytes",
                    data.len() / 2,
                    data.len()
                )));
            }
            Ok(data)
        })
    }
    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.request(&format!("get_range {key} {range:?}"), || {
            self.check_warm(key)?;
            self.inner.get_range(key, range.clone()).map(|d| self.garble(self.shorten(d)))
        })
    }
    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        self.request(&format!("get_range {key} {range:?}"), || {
            self.check_warm(key)?;
            self.inner.get_range_into(key, range.clone(), buf)?;
            if buf.len() > 1 && self.roll(self.config.short_reads) {
                buf.truncate(buf.len() / 2);
            }
            if !buf.is_empty() && self.garbles() {
                let mid = buf.len() / 2;
                buf[mid] ^= 0x40;
            }
            Ok(())
        })
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
        self.request(&format!("list {kind:?}"), || self.inner.list(kind))
    }
    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.request(&format!("delete {key}"), || self.inner.delete(key))
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn nested(&self, dir: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Ok(std::sync::Arc::new(FaultyStore::new(self.inner.nested(dir)?, self.config.clone())))
    }
    fn retain(&self, key: &ObjectKey, mode: super::LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        self.request(&format!("retain {key}"), || self.inner.retain(key, mode, until))
    }
    fn retained_until(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>, StoreError> {
        self.request(&format!("retained_until {key}"), || self.inner.retained_until(key))
    }
    fn warm_up(&self, key: &ObjectKey, request: &super::WarmUp) -> Result<(), StoreError> {
        self.request(&format!("warm_up {key}"), || {
            let Some((archived, warming)) = self.archive_files(key) else {
                return self.inner.warm_up(key, request);
            };
            let io = |p: &std::path::Path, e: std::io::Error| StoreError::Permanent(format!("{}: {e}", p.display()));
            if !archived.exists() {
                // S3 answers a restore request for an object not archived with an error.
                return Err(StoreError::Permanent(format!("{key} is not archived (InvalidObjectState)")));
            }
            // Asking again while it warms (409 RestoreAlreadyInProgress on S3) changes nothing.
            if !warming.exists() {
                std::fs::write(&warming, b"").map_err(|e| io(&warming, e))?;
            }
            let log = warming.with_file_name("requests");
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| io(&log, e))?;
            std::io::Write::write_all(
                &mut f,
                format!("{} {} {}\n", key.path(), request.tier.name(), request.days).as_bytes(),
            )
            .map_err(|e| io(&log, e))
        })
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
    fn make_private(&self, group_readable: bool) -> Result<(), StoreError> {
        self.inner.make_private(group_readable)
    }
    fn is_remote(&self) -> bool {
        self.config.delay > Duration::ZERO || self.inner.is_remote()
    }
}
