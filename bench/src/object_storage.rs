//! The object storage section's measurements ([`crate::s3`] has the server and the figures):
//! each tool backs up to and restores from the S3 server, directly, through the latency proxy,
//! and for one large file. Methods of the harness's `Run`, kept here so the harness does not
//! depend on this module (it calls `Run::object_storage`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::dataset::media;
use crate::harness::{Run, human, tree_digest};
use crate::proxy::DelayProxy;
use crate::s3::{ObjectStorage, Part, S3Step, Server};
use crate::scratch::visit_files;
use crate::tools::{Kind, Tool};

/// Reads into the page cache every file under `dir` changed since `since`: what the server
/// wrote for one tool's repository (and its metadata), as a local restore finds its
/// repository in the page cache.
fn warm_since(dir: &Path, since: SystemTime) {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    visit_files(dir, &mut |mut f| {
        if f.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since) {
            while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
}

impl Run<'_> {
    /// The object storage section, as [`S3Options`] asks. A missing server is a note in the
    /// report, not an error; a failing tool or a restore that differs from its source is.
    pub(crate) fn object_storage(&mut self) -> Result<ObjectStorage> {
        let o = self.opts.s3.clone();
        let mut out = ObjectStorage {
            bytes: o.bytes,
            delayed_bytes: if o.delays_ms.is_empty() { 0 } else { o.delayed_bytes },
            file_bytes: o.file_bytes,
            ..ObjectStorage::default()
        };
        let tools: Vec<_> = self.tools.iter().filter(|(k, _, _)| k.has_s3()).cloned().collect();
        out.tools = tools.iter().map(|(k, _, _)| *k).collect();
        for (k, _, _) in self.tools.iter().filter(|(k, _, _)| !k.has_s3()) {
            out.left_out.push(format!("{} (no S3 backend)", k.name()));
        }
        let dir = self.opts.work.join("s3");
        fs::create_dir_all(&dir)?;
        let server = match Server::from_env() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => match &o.weed {
                Some(weed) => {
                    self.say(&format!("object storage: starting SeaweedFS from {}", weed.display()));
                    Server::start(weed, &dir, &self.opts.work.join("logs/weed.log"))
                        .with_context(|| format!("SeaweedFS from {} did not start", weed.display()))
                }
                None => Err(anyhow::anyhow!(
                    "no S3 server: neither S3_TEST_ENDPOINT (and S3_TEST_BUCKET, S3_TEST_KEY, S3_TEST_SECRET) nor a `weed` binary (--weed, or ~/.cache/cairn-ci/s3-venv/bin/weed as scripts/s3.sh installs it)"
                )),
            },
            Err(e) => Err(e),
        };
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                self.say(&format!("object storage: not measured: {e:#}"));
                out.skipped = Some(format!("{e:#}"));
                return Ok(out);
            }
        };
        out.server = Some(server.how.clone());
        self.say(&format!("object storage: {}", server.how));
        // Every repository under one prefix per run, so runs against a shared server never meet.
        let base = format!("cairn-bench-{}-{}", std::process::id(), unix_seconds());
        let result = self.object_storage_parts(&server, &tools, &base, &o, &mut out);
        drop(server);
        let _ = fs::remove_dir_all(&dir);
        result.map(|()| out)
    }

    fn object_storage_parts(
        &mut self,
        server: &Server,
        tools: &[(Kind, PathBuf, String)],
        base: &str,
        o: &crate::s3::S3Options,
        out: &mut ObjectStorage,
    ) -> Result<()> {
        let data = self.opts.work.join("data");
        // 1. The media library, directly.
        let root = data.join("s3-media");
        let bytes = self.s3_media(&root, o.bytes)?;
        self.s3_round(server, tools, &format!("{base}/media"), &root, bytes, Part::Library, None, out)?;
        let _ = fs::remove_dir_all(&root);
        // 2. A smaller library, directly and through the proxy.
        if out.delayed_bytes > 0 {
            let root = data.join("s3-latency");
            let bytes = self.s3_media(&root, out.delayed_bytes)?;
            for rtt in std::iter::once(0).chain(o.delays_ms.iter().copied().filter(|&d| d > 0)) {
                out.delays_ms.push(rtt);
                let proxy =
                    if rtt > 0 { Some(DelayProxy::start(server.addr, Duration::from_millis(rtt))?) } else { None };
                let prefix = format!("{base}/latency-{rtt}ms");
                self.s3_round(server, tools, &prefix, &root, bytes, Part::Latency, proxy.as_ref(), out)?;
            }
            let _ = fs::remove_dir_all(&root);
        }
        // 3. One large file.
        if o.file_bytes > 0 {
            let root = data.join("s3-file");
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(&root)?;
            let root = fs::canonicalize(&root)?;
            let file = media::MediaFile { path: "large.mp4".into(), size: o.file_bytes, seed: self.opts.seed ^ 0x5EED };
            self.say(&format!("object storage: writing one file of {}", human(o.file_bytes)));
            let mut w = std::io::BufWriter::with_capacity(4 << 20, fs::File::create(root.join(&file.path))?);
            media::write_file(&file, &mut w)?;
            std::io::Write::flush(&mut w)?;
            drop(w);
            self.s3_round(server, tools, &format!("{base}/file"), &root, o.file_bytes, Part::File, None, out)?;
            let _ = fs::remove_dir_all(&root);
        }
        self.drop_restores();
        Ok(())
    }

    /// A media library of `bytes` at `root`; returns its size.
    fn s3_media(&self, root: &Path, bytes: u64) -> Result<u64> {
        let _ = fs::remove_dir_all(root);
        fs::create_dir_all(root)?;
        self.say(&format!("object storage: generating {} of media files", human(bytes)));
        media::generate(root, self.opts.seed, bytes)?;
        Ok(crate::harness::dir_size(root))
    }

    /// Every tool backs `root` up into a fresh repository under `prefix/TOOL` (through `proxy`
    /// when given), then every tool restores it into an empty directory, checked against the
    /// source.
    #[allow(clippy::too_many_arguments)]
    fn s3_round(
        &mut self,
        server: &Server,
        tools: &[(Kind, PathBuf, String)],
        prefix: &str,
        root: &Path,
        bytes: u64,
        part: Part,
        proxy: Option<&DelayProxy>,
        out: &mut ObjectStorage,
    ) -> Result<()> {
        let delay_ms = proxy.map_or(0, |p| u64::try_from(p.rtt().as_millis()).unwrap_or(u64::MAX));
        let endpoint = proxy.map_or_else(|| server.endpoint.clone(), |p| format!("http://{}", p.addr()));
        let what = format!("{} {delay_ms}ms", prefix.rsplit('/').next().unwrap_or(prefix));
        let expected = tree_digest(root)?;
        let bucket = server.bucket_for(&what.replace(' ', "-"));
        let mut repos = Vec::new();
        for (kind, program, version) in tools {
            let dir = self.opts.work.join("tools").join(format!("s3-{}-{}", what.replace(' ', "-"), kind.name()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let mut t = Tool::new(*kind, program.clone(), version.clone(), &dir);
            t.remote = Some(server.repo(&endpoint, &bucket, format!("{prefix}/{}", kind.name())));
            for job in t.init() {
                self.measured(&job, &format!("s3 {what} {} init", kind.name()))?;
            }
            let since = SystemTime::now();
            let cpu = server.cpu();
            let usage =
                self.measured(&t.backup(&[root.to_path_buf()]), &format!("s3 {what} {} backup", kind.name()))?;
            let server_cpu = cpu.zip(server.cpu()).map(|(a, b)| b - a);
            self.s3_record(out, S3Step { part, delay_ms, restore: false, tool: t.kind, bytes, usage, server_cpu });
            repos.push((t, since));
        }
        for (t, since) in &repos {
            let target = self.restore_dir(t)?;
            if let Some(data) = &server.data {
                warm_since(data, *since);
            }
            let cpu = server.cpu();
            let usage = self.measured(&t.restore(&target), &format!("s3 {what} {} restore", t.kind.name()))?;
            let server_cpu = cpu.zip(server.cpu()).map(|(a, b)| b - a);
            if tree_digest(&t.restored(&target, root))? != expected {
                bail!("{}: the restore from S3 ({what}) differs from the source", t.kind.name());
            }
            self.s3_record(out, S3Step { part, delay_ms, restore: true, tool: t.kind, bytes, usage, server_cpu });
        }
        for (t, _) in &repos {
            let _ = fs::remove_dir_all(t.home.parent().unwrap_or(&t.home));
        }
        server.done_with(&bucket);
        Ok(())
    }

    fn s3_record(&self, out: &mut ObjectStorage, s: S3Step) {
        self.say(&format!(
            "s3 {:8} {:3} ms {:7} {:7} {:8.2} s {:9.1} MB/s  cpu {:7.2} s  rss {:6.0} MiB  server cpu {}",
            format!("{:?}", s.part).to_lowercase(),
            s.delay_ms,
            s.tool.name(),
            s.op(),
            s.usage.wall,
            s.mb_per_s(),
            s.usage.cpu(),
            s.usage.max_rss_kib as f64 / 1024.0,
            s.server_cpu.map_or("–".into(), |c| format!("{c:.2} s"))
        ));
        out.steps.push(s);
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
