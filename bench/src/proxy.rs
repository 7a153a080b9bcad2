//! A TCP proxy that delays every byte by half a round trip in each direction, for the object
//! storage section's latency figures: a tool pointed at it sees a distant S3 server, with the
//! local server's bandwidth.
//!
//! Each direction of each connection is two threads joined by a queue: a reader stamps every
//! chunk it reads with its arrival time and queues it, a writer sleeps until that time plus the
//! one-way delay and writes it on. The reader never waits for the writer, so the delay does not
//! limit bandwidth (the queue holds what is in flight: at most the delay times the rate, some
//! tens of MB at 1 GB/s and 40 ms), and chunks stay in order. Opening a connection costs one
//! round trip too (TCP's handshake): nothing the client sends reaches the server before a
//! round trip after the proxy accepted it (plus the one-way delay), though the client's
//! `connect` returns at once and what it sends meanwhile is already queued.
//!
//! ```text
//! client ──▶ reader ─(at, bytes)─▶ writer: sleep until at + rtt/2 ──▶ server
//! client ◀── writer: sleep until at + rtt/2 ◀─(at, bytes)─ reader ◀── server
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running proxy on 127.0.0.1; dropping it closes every connection and joins every thread.
#[derive(Debug)]
pub struct DelayProxy {
    /// Where it listens.
    addr: SocketAddr,
    /// The round trip it adds.
    rtt: Duration,
    /// Set when it is dropped: the accept loop ends at its next wake-up.
    stop: Arc<AtomicBool>,
    /// Every socket it opened, to shut down on drop (a tool's pooled connection may outlive it).
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    /// The accept loop, which joins the connections' threads when it ends.
    accept: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on an unused port of 127.0.0.1 and forwards every connection to `upstream`,
    /// adding `rtt` to each round trip (half each way).
    ///
    /// # Errors
    /// When it cannot listen.
    pub fn start(upstream: SocketAddr, rtt: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, sockets) = (Arc::clone(&stop), Arc::clone(&sockets));
            std::thread::Builder::new().name("delay-proxy".into()).spawn(move || {
                let mut connections = Vec::new();
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let sockets = Arc::clone(&sockets);
                    connections.push(std::thread::spawn(move || {
                        let _ = connection(client, upstream, rtt, &sockets);
                    }));
                    connections.retain(|c: &JoinHandle<()>| !c.is_finished());
                }
                for c in connections {
                    let _ = c.join();
                }
            })?
        };
        Ok(DelayProxy { addr, rtt, stop, sockets, accept: Some(accept) })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The round trip it adds.
    #[must_use]
    pub fn rtt(&self) -> Duration {
        self.rtt
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        for s in self.sockets.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// One chunk and when it arrived; the queue's closing ends the direction.
type Stamped = (Instant, Vec<u8>);

/// Proxies one connection until both directions have ended.
fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    rtt: Duration,
    sockets: &Mutex<Vec<TcpStream>>,
) -> io::Result<()> {
    let one_way = rtt / 2;
    let keep = |s: &TcpStream| -> io::Result<()> {
        let clone = s.try_clone()?;
        if let Ok(mut v) = sockets.lock() {
            v.push(clone);
        }
        Ok(())
    };
    let accepted = Instant::now();
    keep(&client)?;
    client.set_nodelay(true)?;
    let (to_server, from_client) = channel();
    let client_reader = {
        let c = client.try_clone()?;
        std::thread::spawn(move || stamp(c, &to_server))
    };
    // The handshake's round trip, while the client's first bytes are already queued.
    std::thread::sleep(rtt);
    let server = match TcpStream::connect(upstream) {
        Ok(s) => s,
        Err(e) => {
            let _ = client.shutdown(Shutdown::Both);
            let _ = client_reader.join();
            return Err(e);
        }
    };
    keep(&server)?;
    server.set_nodelay(true)?;
    let upstream_writer = {
        let (s, c) = (server.try_clone()?, client.try_clone()?);
        std::thread::spawn(move || deliver(&from_client, s, &c, accepted + rtt, one_way))
    };
    let (to_client, from_server) = channel();
    let server_reader = {
        let s = server.try_clone()?;
        std::thread::spawn(move || stamp(s, &to_client))
    };
    deliver(&from_server, client, &server, accepted, one_way);
    for t in [client_reader, upstream_writer, server_reader] {
        let _ = t.join();
    }
    Ok(())
}

/// Reads `from` until it ends, queueing each chunk with the time it arrived.
fn stamp(mut from: TcpStream, queue: &Sender<Stamped>) {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if queue.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes each queued chunk to `to` once `one_way` has passed since it arrived (or since
/// `open`, if later: when the emulated connection is open); when the queue ends, ends `to`'s
/// sending side. If `to` fails, `source` is shut down so its reader ends too.
fn deliver(queue: &Receiver<Stamped>, mut to: TcpStream, source: &TcpStream, open: Instant, one_way: Duration) {
    for (arrived, bytes) in queue {
        let due = arrived.max(open) + one_way;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if to.write_all(&bytes).is_err() {
            let _ = source.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1 for one connection at a time.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = io::copy(&mut r, &mut s);
                    let _ = s.shutdown(Shutdown::Write);
                });
            }
        });
        addr
    }

    #[test]
    fn a_round_trip_takes_at_least_the_delay() {
        let rtt = Duration::from_millis(60);
        let proxy = DelayProxy::start(echo_server(), rtt).unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        // The first exchange pays the handshake's round trip as well (the proxy accepted the
        // connection a moment before `connect` returned here, hence the slack).
        let started = Instant::now();
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        let took = started.elapsed();
        assert!(took >= 2 * rtt - Duration::from_millis(5), "the first round trip took {took:?}");
        for _ in 0..3 {
            let started = Instant::now();
            c.write_all(b"pong").unwrap();
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"pong");
            let took = started.elapsed();
            assert!(took >= rtt, "a round trip took {took:?}, less than {rtt:?}");
            assert!(took < 10 * rtt, "a round trip took {took:?}");
        }
    }

    #[test]
    fn bytes_arrive_intact_and_in_order_without_a_bandwidth_limit() {
        let rtt = Duration::from_millis(40);
        let proxy = DelayProxy::start(echo_server(), rtt).unwrap();
        let c = TcpStream::connect(proxy.addr()).unwrap();
        // 32 MiB in writes of odd sizes, numbered so that any reordering or loss shows.
        let data: Vec<u8> = (0..32u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let started = Instant::now();
        let writer = {
            let (mut c, data) = (c.try_clone().unwrap(), data.clone());
            std::thread::spawn(move || {
                for chunk in data.chunks(12_345) {
                    c.write_all(chunk).unwrap();
                }
                c.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        (&c).read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert!(back == data, "the bytes came back changed: {} of {} bytes", back.len(), data.len());
        // A proxy that waited a round trip per chunk would take minutes for 2,700 chunks.
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        drop(proxy);
    }
}
