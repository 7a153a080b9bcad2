//! The object storage section: backup and restore against a real S3 server on this machine
//! (SeaweedFS), by every installed tool with an S3 backend (cairn, restic, rustic; borg and
//! bupstash have none), side by side (issue 19, item 4).
//!
//! 1. The media library (large incompressible files): an initial backup into an empty
//!    repository under its own prefix of the bucket, then a restore into an empty local
//!    directory, checked byte for byte against the source.
//! 2. Latency: a smaller library backed up and restored the same way, directly and through
//!    [`crate::proxy::DelayProxy`] with each round trip asked for (20 and 80 ms by default), every tool's
//!    endpoint pointed at the proxy.
//! 3. One large incompressible file, backed up and restored: whether a tool restores a single
//!    file with every core.
//!
//! The server is either the one named by `S3_TEST_ENDPOINT`, `S3_TEST_BUCKET`, `S3_TEST_KEY`,
//! `S3_TEST_SECRET` and `S3_TEST_REGION` (as `scripts/s3.sh` exports them for the tests) or one
//! the harness starts from the `weed` binary ([`Server::start`]) on ports of its own, with its
//! data in the run's work directory, and stops when the section ends ([`Server`]'s `Drop`).
//! Without either, the section is skipped and the report says why.
//!
//! This module holds the server and the figures; the measurements are
//! [`crate::object_storage`]'s.

use std::fs;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::measure::Usage;
use crate::tools::{Kind, S3Repo};

/// What the section measures; sizes of 0 skip their part.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// The media library backed up and restored directly (0 skips the whole section).
    pub bytes: u64,
    /// The library of the latency runs.
    pub delayed_bytes: u64,
    /// Round trips the proxy adds, in milliseconds (each also measured at 0 first).
    pub delays_ms: Vec<u64>,
    /// The single large file.
    pub file_bytes: u64,
    /// The `weed` binary to start a server from, when none is given through the environment.
    pub weed: Option<PathBuf>,
}

/// Where `weed` is looked for when `--weed` is not given: where `scripts/s3.sh` installs it.
#[must_use]
pub fn default_weed() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("HOME")?).join(".cache/cairn-ci/s3-venv/bin/weed");
    p.is_file().then_some(p)
}

/// The ports of a server the harness starts: none of CI's (28333, 29333, 29340, 28888, 29646
/// and those + 10000); each also opens + 10000 for gRPC.
const PORTS: Ports = Ports { s3: 48333, master: 49333, volume: 49340, filer: 48888, admin: 49646 };

struct Ports {
    s3: u16,
    master: u16,
    volume: u16,
    filer: u16,
    admin: u16,
}

/// An S3 server: given, or started here and stopped on drop (SIGTERM, SIGKILL 15 s later).
#[derive(Debug)]
pub struct Server {
    /// `http://HOST:PORT`.
    pub endpoint: String,
    /// Its address, for the proxy.
    pub addr: SocketAddr,
    /// The bucket the repositories go in (each under its own prefix).
    pub bucket: String,
    /// Access key id.
    pub key: String,
    /// Secret access key.
    pub secret: String,
    /// Region.
    pub region: String,
    /// How it was found, for the report.
    pub how: String,
    /// The process, when the harness started it.
    child: Option<Child>,
    /// Its data directory, when the harness started it.
    pub(crate) data: Option<PathBuf>,
}

impl Server {
    /// The server `S3_TEST_*` name, if they do.
    ///
    /// # Errors
    /// When `S3_TEST_ENDPOINT` is set but is not `http://HOST:PORT` (the proxy needs plain HTTP),
    /// or its bucket does not answer (a server that was meant to be started but died).
    pub fn from_env() -> Result<Option<Server>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = var("S3_TEST_ENDPOINT") else { return Ok(None) };
        let addr = socket_addr(&endpoint)?;
        let server = Server {
            addr,
            bucket: var("S3_TEST_BUCKET").context("S3_TEST_ENDPOINT is set but S3_TEST_BUCKET is not")?,
            key: var("S3_TEST_KEY").context("S3_TEST_ENDPOINT is set but S3_TEST_KEY is not")?,
            secret: var("S3_TEST_SECRET").context("S3_TEST_ENDPOINT is set but S3_TEST_SECRET is not")?,
            region: var("S3_TEST_REGION").unwrap_or_else(|| "us-east-1".into()),
            how: format!("the server named by `S3_TEST_ENDPOINT` ({endpoint}), as `scripts/s3.sh` exports it"),
            endpoint,
            child: None,
            data: None,
        };
        if !server.ready() {
            bail!("the S3 server named by S3_TEST_ENDPOINT ({}) does not answer for its bucket", server.endpoint);
        }
        Ok(Some(server))
    }

    /// Starts `weed mini` on 127.0.0.1 with the harness's own ports, its data under `dir`, and
    /// waits (up to 60 s) until its bucket answers; its output goes to `log`.
    ///
    /// # Errors
    /// When a port is taken, or the server does not start or become ready.
    pub fn start(weed: &Path, dir: &Path, log_path: &Path) -> Result<Server> {
        let p = &PORTS;
        for port in [p.s3, p.master, p.volume, p.filer, p.admin].into_iter().flat_map(|p| [p, p + 10000]) {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                bail!("port {port} of 127.0.0.1 is taken (a SeaweedFS left running by an earlier run?)");
            }
        }
        let data = dir.join("data");
        let _ = fs::remove_dir_all(&data);
        fs::create_dir_all(&data)?;
        let log = fs::File::create(log_path)?;
        let (bucket, key, secret, region) = ("cairn-bench", "cairn-bench-key", "cairn-bench-secret-123", "us-east-1");
        let version = Command::new(weed)
            .arg("version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        // The admin identity's credentials go to the server only, through its environment.
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-admin.port={}", p.admin))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false"])
            .args(["-master.telemetry=false", &format!("-bucket={bucket}")])
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("GOMEMLIMIT", "512MiB")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", weed.display()))?;
        let endpoint = format!("http://127.0.0.1:{}", p.s3);
        let mut server = Server {
            addr: SocketAddr::from(([127, 0, 0, 1], p.s3)),
            bucket: bucket.into(),
            key: key.into(),
            secret: secret.into(),
            region: region.into(),
            how: format!(
                "SeaweedFS ({}) started by the harness from `{}`: `weed mini` on {endpoint}, its data in the work directory, GOMEMLIMIT=512MiB",
                if version.is_empty() { "version unknown" } else { version.as_str() },
                weed.display()
            ),
            endpoint,
            child: Some(child),
            data: Some(data),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.ready() {
            if let Some(c) = server.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                server.child = None;
                bail!("weed exited ({status}); see {}", log_path.display());
            }
            if Instant::now() > deadline {
                bail!("weed not ready after 60 s; see {}", log_path.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// Whether the bucket answers a signed HEAD (through curl, as `scripts/s3.sh` checks it).
    fn ready(&self) -> bool {
        self.signed("HEAD", &self.bucket)
    }

    /// A signed request (curl's `--aws-sigv4`) with no body for `path`; whether it succeeded.
    fn signed(&self, method: &str, path: &str) -> bool {
        Command::new("curl")
            .args(["-sf", "-o", "/dev/null"])
            .args(if method == "HEAD" { vec!["-I"] } else { vec!["-X", method] })
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.key, self.secret))
            .arg(format!("{}/{path}", self.endpoint))
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The bucket for one part of the section: on a server the harness started, a new bucket
    /// of its own, which [`Server::done_with`] deletes (its volumes with it, so the server's
    /// disk holds one part at a time); on a given server, its bucket.
    pub(crate) fn bucket_for(&self, part: &str) -> String {
        if self.child.is_none() {
            return self.bucket.clone();
        }
        let name = format!("{}-{part}", self.bucket);
        // Should this fail, the tools' first PUT creates it (-s3.autoCreateBucket, on by default).
        let _ = self.signed("PUT", &name);
        name
    }

    /// Deletes a bucket [`Server::bucket_for`] made, with its objects.
    pub(crate) fn done_with(&self, bucket: &str) {
        if self.child.is_some() && bucket != self.bucket {
            let _ = self.signed("DELETE", bucket);
        }
    }

    /// CPU seconds the server has used so far (only a server the harness started).
    pub(crate) fn cpu(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at the state, field 3;
        // utime and stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
        Some((ticks(14)? + ticks(15)?) / 100.0)
    }

    /// A repository under `prefix` of `bucket`, reached through `endpoint` (the server's or a
    /// proxy's).
    pub(crate) fn repo(&self, endpoint: &str, bucket: &str, prefix: String) -> S3Repo {
        S3Repo {
            endpoint: endpoint.to_string(),
            bucket: bucket.to_string(),
            prefix,
            key: self.key.clone(),
            secret: self.secret.clone(),
            region: self.region.clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `http://HOST:PORT[/]` as a socket address.
fn socket_addr(endpoint: &str) -> Result<SocketAddr> {
    let hostport = endpoint
        .strip_prefix("http://")
        .with_context(|| format!("S3 endpoint `{endpoint}`: only http:// endpoints can be measured here"))?
        .trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .with_context(|| format!("S3 endpoint `{endpoint}`"))?
        .next()
        .with_context(|| format!("S3 endpoint `{endpoint}` resolves to nothing"))
}

/// Which measurement a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The media library, directly.
    Library,
    /// The smaller library, directly and through the proxy.
    Latency,
    /// One large file.
    File,
}

/// One measured backup or restore against the server.
#[derive(Debug, Clone)]
pub struct S3Step {
    /// Which measurement.
    pub part: Part,
    /// The round trip the proxy added (0: none, no proxy).
    pub delay_ms: u64,
    /// A restore (else a backup).
    pub restore: bool,
    /// The tool.
    pub tool: Kind,
    /// Logical bytes backed up or restored.
    pub bytes: u64,
    /// What it cost the tool.
    pub usage: Usage,
    /// CPU seconds the server used meanwhile (a server the harness started only).
    pub server_cpu: Option<f64>,
}

impl S3Step {
    /// Logical megabytes (10⁶ bytes) per second.
    #[must_use]
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.usage.wall.max(1e-9)
    }

    /// `backup` or `restore`.
    #[must_use]
    pub fn op(&self) -> &'static str {
        if self.restore { "restore" } else { "backup" }
    }
}

/// The section as run.
#[derive(Debug, Clone, Default)]
pub struct ObjectStorage {
    /// The server and how it was found; `None` when there was none.
    pub server: Option<String>,
    /// Why the section was not measured, when it was not.
    pub skipped: Option<String>,
    /// Tools measured.
    pub tools: Vec<Kind>,
    /// Installed tools left out, and why.
    pub left_out: Vec<String>,
    /// The library's size.
    pub bytes: u64,
    /// The latency runs' library size.
    pub delayed_bytes: u64,
    /// The round trips measured (0 first).
    pub delays_ms: Vec<u64>,
    /// The single file's size.
    pub file_bytes: u64,
    /// Every step.
    pub steps: Vec<S3Step>,
}

impl ObjectStorage {
    /// The step of `tool` in `part` at `delay_ms`.
    #[must_use]
    pub fn step(&self, part: Part, delay_ms: u64, restore: bool, tool: Kind) -> Option<&S3Step> {
        self.steps.iter().find(|s| s.part == part && s.delay_ms == delay_ms && s.restore == restore && s.tool == tool)
    }

    /// The fastest peer's step beside it.
    #[must_use]
    pub fn fastest_peer(&self, part: Part, delay_ms: u64, restore: bool) -> Option<&S3Step> {
        self.steps
            .iter()
            .filter(|s| s.part == part && s.delay_ms == delay_ms && s.restore == restore && s.tool != Kind::Cairn)
            .min_by(|a, b| a.usage.wall.total_cmp(&b.usage.wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_plain_http() {
        assert_eq!(socket_addr("http://127.0.0.1:28333").unwrap(), SocketAddr::from(([127, 0, 0, 1], 28333)));
        assert_eq!(socket_addr("http://127.0.0.1:28333/").unwrap().port(), 28333);
        assert!(socket_addr("https://s3.amazonaws.com").is_err());
    }

    #[test]
    fn the_harness_server_keeps_off_the_ports_ci_uses() {
        let ci = [28333, 29333, 29340, 28888, 29646];
        let p = &PORTS;
        for port in [p.s3, p.master, p.volume, p.filer, p.admin] {
            assert!(port <= 55535, "{port} + 10000 must stay a port");
            assert!(!ci.contains(&port) && !ci.iter().any(|c| c + 10000 == port || port + 10000 == *c));
        }
    }
}
