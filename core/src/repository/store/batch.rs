//! Many requests to a store side by side: the one concurrency mechanism every operation that
//! fetches more than one object at a time goes through (key files, index objects, snapshots,
//! `check --read-data`, restore's downloads), instead of a thread fan-out of its own.
//!
//! A request to a distant store waits a round trip before its first byte, so throughput comes
//! from keeping several in flight; a local store answers from the page cache or a disk, where a
//! few requests side by side keep both the disk and the cores busy. [`in_flight`] gives the
//! number for a store, and [`for_each`] keeps that many requests going: each is fetched and
//! then handed on (decoded, written, queued) on the thread that fetched it, while the others
//! wait on the store. Scoped threads: a panic or an early end surfaces in the caller, and no
//! thread outlives the call.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::Store;

/// Requests in flight to a remote store: a round trip of 20 ms and sixteen requests of a few
/// megabytes keep more bytes coming than two cores decode.
pub const REMOTE_IN_FLIGHT: usize = 16;
/// Requests in flight to a local store: enough to overlap a read with the work on the last one.
pub const LOCAL_IN_FLIGHT: usize = 4;

/// How many requests to keep in flight to `store` (`requested` when not 0).
#[must_use]
pub fn in_flight(store: &dyn Store, requested: usize) -> usize {
    match requested {
        0 if store.is_remote() => REMOTE_IN_FLIGHT,
        0 => LOCAL_IN_FLIGHT,
        n => n,
    }
}

/// What [`for_each`] does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next request.
    Continue,
    /// Start no more requests (those in flight still finish and are handed on).
    Stop,
}

/// Runs `fetch` for every request in `requests`, at most `in_flight` at a time (the calling
/// thread and `in_flight - 1` more), and hands each result to `then` on the thread that fetched
/// it. Requests
/// are started in order; results arrive in whatever order they finish. Returns how many
/// requests were started (all of them unless `then` said [`Flow::Stop`]).
pub fn for_each<R: Sync, T>(
    requests: &[R],
    in_flight: usize,
    fetch: impl Fn(&R) -> T + Sync,
    then: impl Fn(usize, T) -> Flow + Sync,
) -> usize {
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let work = || {
        while !stopped.load(Ordering::Relaxed) {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let Some(request) = requests.get(n) else { break };
            if then(n, fetch(request)) == Flow::Stop {
                stopped.store(true, Ordering::Relaxed);
            }
        }
    };
    let threads = in_flight.clamp(1, requests.len().max(1));
    std::thread::scope(|s| {
        // The calling thread is one of the workers; a thread that cannot be started leaves its
        // share to the others.
        for n in 1..threads {
            let _ = std::thread::Builder::new().name(format!("cairn-io-{n}")).spawn_scoped(s, work);
        }
        work();
    });
    next.load(Ordering::Relaxed).min(requests.len())
}

/// [`for_each`] for fallible requests: every result, in the order of `requests`, or the first
/// error met (the requests not started by then are not started).
///
/// # Errors
/// The first error `fetch` returned.
pub fn try_map<R: Sync, T: Send, E: Send>(
    requests: &[R],
    in_flight: usize,
    fetch: impl Fn(&R) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    let results: std::sync::Mutex<Vec<Option<T>>> = std::sync::Mutex::new((0..requests.len()).map(|_| None).collect());
    let failed = std::sync::Mutex::new(None);
    for_each(requests, in_flight, fetch, |n, got| match got {
        Ok(value) => {
            if let Ok(mut all) = results.lock() {
                all[n] = Some(value);
            }
            Flow::Continue
        }
        Err(e) => {
            if let Ok(mut f) = failed.lock() {
                f.get_or_insert(e);
            }
            Flow::Stop
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_default().into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn every_request_once_with_as_many_in_flight_as_asked() {
        let requests: Vec<u32> = (0..40).collect();
        let now = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let seen = Mutex::new(Vec::new());
        let started = for_each(
            &requests,
            6,
            |r| {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                now.fetch_sub(1, Ordering::SeqCst);
                r * 2
            },
            |n, doubled| {
                seen.lock().unwrap().push((n, doubled));
                Flow::Continue
            },
        );
        assert_eq!(started, 40);
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).map(|n| (n as usize, n * 2)).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 6, "six requests waited side by side");
    }

    #[test]
    fn stop_starts_no_more_requests() {
        let requests: Vec<u32> = (0..100).collect();
        let fetched = AtomicUsize::new(0);
        let t = Instant::now();
        let started = for_each(
            &requests,
            3,
            |_| fetched.fetch_add(1, Ordering::SeqCst),
            |n, _| if n >= 10 { Flow::Stop } else { Flow::Continue },
        );
        assert!(started <= 14, "{started}");
        assert_eq!(fetched.load(Ordering::SeqCst), started);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(for_each(&Vec::<u32>::new(), 8, |_| (), |_, ()| Flow::Continue), 0);
    }

    #[test]
    fn try_map_keeps_the_order_of_the_requests_or_gives_the_first_error() {
        let n: Vec<u32> = (0..50).collect();
        assert_eq!(
            super::try_map(&n, 8, |&x| Ok::<u32, ()>(x * 2)).unwrap(),
            n.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert_eq!(super::try_map(&n, 8, |&x| if x == 7 { Err(x) } else { Ok(x) }), Err(7));
    }
}
