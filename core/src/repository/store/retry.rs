//! [`RetryStore`]: retries transient failures with exponential backoff and jitter.
//!
//! Transient errors (network resets, 5xx, throttling, timeouts) are retried up to
//! [`RetryPolicy::max_retries`] times, waiting `base × 2^attempt` (capped at `max_delay`) with
//! ±50% random jitter so many clients do not retry in lockstep. Permanent errors, `NotFound` and
//! `AlreadyExists` are returned at once. A create-only put that fails after the bytes may have
//! landed is retried too: `AlreadyExists` on a retry of our own content-addressed put means the
//! first attempt succeeded.
//!
//! It is also the one place that holds a ranged read to what was asked: a response shorter than
//! the range (a connection cut, a body truncated in transit) is a transient error, read again
//! under the same policy as any other, and reported as a short read if it stays short. No caller
//! ever sees a short range. (An object that is itself shorter than the range is a different
//! thing, told by the backend, which knows the object's size: [`StoreError::ShortRead`].)

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

use super::{ObjectInfo, ObjectKey, ObjectKind, PutHints, Store, StoreError};

/// How persistent to be.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 8, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(10) }
    }
}

/// A store that retries transient failures of another.
pub struct RetryStore<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S: Store> RetryStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        RetryStore { inner, policy }
    }

    fn retry<T>(&self, mut op: impl FnMut(u32) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            match op(attempt) {
                Err(StoreError::Transient(msg)) => {
                    if attempt >= self.policy.max_retries {
                        return Err(StoreError::Transient(format!("{msg} (gave up after {} attempts)", attempt + 1)));
                    }
                    let exp = self.policy.base_delay.saturating_mul(1 << attempt.min(16));
                    let delay = exp.min(self.policy.max_delay);
                    let jitter = rand::thread_rng().gen_range(0.5..1.5);
                    std::thread::sleep(delay.mul_f64(jitter));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// A response holding `got` of the `want` bytes asked: a short one is transient (read again).
fn whole(got: usize, want: u64) -> Result<(), StoreError> {
    if got as u64 == want { Ok(()) } else { Err(StoreError::Transient(format!("short read: {got} of {want} bytes"))) }
}

impl<S: Store> Store for RetryStore<S> {
    fn put_with(&self, key: &ObjectKey, data: Bytes, hints: PutHints<'_>) -> Result<(), StoreError> {
        self.retry(|attempt| match self.inner.put_with(key, data.clone(), hints) {
            // Our names are content addresses: on a retry, "exists" means an earlier attempt
            // landed. (The config is the one object not named by content; init checks first.)
            Err(StoreError::AlreadyExists) if attempt > 0 && key.kind != ObjectKind::Config => Ok(()),
            other => other,
        })
    }
    fn replace(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        self.retry(|_| self.inner.replace(key, data.clone()))
    }
    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        self.retry(|_| self.inner.get(key))
    }
    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        let want = range.end.saturating_sub(range.start);
        self.retry(|_| self.inner.get_range(key, range.clone()).and_then(|b| whole(b.len(), want).map(|()| b)))
    }
    fn get_range_cacheable(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        let want = range.end.saturating_sub(range.start);
        self.retry(|_| {
            self.inner.get_range_cacheable(key, range.clone()).and_then(|b| whole(b.len(), want).map(|()| b))
        })
    }
    fn uncache_range(&self, key: &ObjectKey, range: Range<u64>) {
        self.inner.uncache_range(key, range);
    }
    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        let want = range.end.saturating_sub(range.start);
        self.retry(|_| {
            self.inner.get_range_into(key, range.clone(), buf)?;
            whole(buf.len(), want)
        })
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
        self.retry(|_| self.inner.list(kind))
    }
    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.retry(|_| self.inner.delete(key))
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn nested(&self, dir: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Ok(std::sync::Arc::new(RetryStore::new(self.inner.nested(dir)?, self.policy)))
    }
    fn is_warm(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        self.retry(|_| self.inner.is_warm(key))
    }
    fn warm_up(&self, key: &ObjectKey, request: &super::WarmUp) -> Result<(), StoreError> {
        self.retry(|_| self.inner.warm_up(key, request))
    }
    fn retain(&self, key: &ObjectKey, mode: super::LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        self.retry(|_| self.inner.retain(key, mode, until))
    }
    fn retained_until(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>, StoreError> {
        self.retry(|_| self.inner.retained_until(key))
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
    fn make_private(&self, group_readable: bool) -> Result<(), StoreError> {
        self.inner.make_private(group_readable)
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
}
