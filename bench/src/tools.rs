//! The backup tools under test and how each is driven: Cairn and, when installed, its peers.
//!
//! Every tool gets a local repository in the run's work directory, its password from the
//! environment, and its default encryption and compression:
//! - `cairn`: `init` defaults (zstd 3, 256 KiB average chunks, AES-256-GCM).
//! - `restic`: `init` defaults (repository v2: zstd "auto", AES-256-CTR + Poly1305).
//! - `borg`: `init -e repokey-blake2`, `create` defaults (lz4).
//! - `rustic`: `init` defaults (as restic).
//! - `bupstash`: a key from `new-key` and `init` defaults; `put` defaults (zstd 3; gear-hash
//!   content-defined chunks of 256 KiB to 20 MiB, a split every 2 MiB on average; keyed BLAKE3
//!   ids; libsodium's XChaCha20-Poly1305 boxes). It has no password: its key is a file in the
//!   tool's home, named by `BUPSTASH_KEY`.
//!
//! Caches that live outside the repository (restic's, borg's files and chunks caches,
//! bupstash's send log and query cache) are kept in the work directory too, so runs do not leak
//! into each other or into the user's home.
//!
//! A tool's repository can instead be a prefix of an S3 bucket ([`S3Repo`], set as
//! [`Tool::remote`] before `init`), for the tools with an S3 backend ([`Kind::has_s3`]):
//! - `cairn -r s3://BUCKET/PREFIX`, the endpoint and credentials in `AWS_ENDPOINT_URL`,
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_REGION` (an `http://` endpoint is
//!   allowed by that alone); its metadata cache under the tool's home (`XDG_CACHE_HOME`).
//! - `restic -r s3:http://HOST:PORT/BUCKET/PREFIX`, credentials from the same variables.
//! - `rustic -r opendal:s3`, the bucket, root, endpoint and region as `RUSTIC_REPO_OPT_*`
//!   (rustic's way to give its backend's options without a profile), credentials as above.
//!
//! borg and bupstash have none.
//!
//! bupstash is driven as its manual says for a local repository. Where it differs from the
//! others, the harness sees it only through [`Tool::restore`] and [`Tool::restored`]:
//! - It has no `latest`: every put is tagged `snap=N` from a counter (as borg's archives are
//!   named), and a restore asks for the newest `snap`.
//! - A put of one directory stores its contents relative to that directory (several paths:
//!   relative to their common ancestor), so a restore recreates them directly under the
//!   target, not under the full source path as the others do. The harness puts one directory
//!   per backup, which is how bupstash's manual puts a directory.
//! - `restore` takes directory snapshots only; an item put from standard input comes back
//!   through `get`, whose standard output is the restored file (`TARGET/NAME`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{Input, Job};

/// Which tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This project.
    Cairn,
    /// restic (Go).
    Restic,
    /// BorgBackup (Python + C).
    Borg,
    /// rustic (Rust, restic's format).
    Rustic,
    /// bupstash (Rust).
    Bupstash,
}

impl Kind {
    /// Every tool, Cairn first.
    pub const ALL: [Kind; 5] = [Kind::Cairn, Kind::Restic, Kind::Borg, Kind::Rustic, Kind::Bupstash];

    /// Whether the harness can give it a repository in S3.
    #[must_use]
    pub fn has_s3(self) -> bool {
        matches!(self, Kind::Cairn | Kind::Restic | Kind::Rustic)
    }

    /// Its command name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cairn => "cairn",
            Kind::Restic => "restic",
            Kind::Borg => "borg",
            Kind::Rustic => "rustic",
            Kind::Bupstash => "bupstash",
        }
    }
}

/// One tool with its repository for one dataset.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Which tool.
    pub kind: Kind,
    /// The executable.
    pub program: PathBuf,
    /// Its version line.
    pub version: String,
    /// Its repository directory (created by `init`); unused when [`Tool::remote`] is set.
    pub repo: PathBuf,
    /// Its repository in S3 instead (set before `init`; see [`Kind::has_s3`]).
    pub remote: Option<S3Repo>,
    /// Its private cache and config directory.
    pub home: PathBuf,
    /// Environment variables added to every command (the latency figure's fault spec, say).
    pub extra_env: Vec<(String, OsString)>,
    /// Backups made so far: borg's archives and bupstash's items are named by this counter.
    archives: u32,
    /// What the newest backup put (what a bupstash restore must ask for).
    last_put: Option<Put>,
}

/// A repository under a prefix of an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Repo {
    /// `http://HOST:PORT`: the server, or a proxy in front of it.
    pub endpoint: String,
    /// The bucket (it exists).
    pub bucket: String,
    /// The key prefix, without leading or trailing `/`.
    pub prefix: String,
    /// Access key id.
    pub key: String,
    /// Secret access key.
    pub secret: String,
    /// Region.
    pub region: String,
}

/// What one backup put.
#[derive(Debug, Clone)]
enum Put {
    /// Files and directories, stored relative to this directory.
    Paths { root: PathBuf },
    /// Standard input, as a file of this name.
    Stdin { name: String },
}

/// The deepest directory that contains every one of `paths` (absolute): the one path itself
/// when there is one.
fn common_ancestor(paths: &[PathBuf]) -> PathBuf {
    let Some((first, rest)) = paths.split_first() else { return PathBuf::from("/") };
    let mut root = first.clone();
    for p in rest {
        while !p.starts_with(&root) {
            if !root.pop() {
                break;
            }
        }
    }
    root
}

const PASSWORD: &str = "benchmark-password-not-secret";

/// Finds `name` on `PATH`.
#[must_use]
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The version line a program prints, or "unknown".
#[must_use]
pub fn version_of(program: &Path, kind: Kind) -> String {
    let args: &[&str] = match kind {
        Kind::Restic => &["version"],
        _ => &["--version"],
    };
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Tool {
    /// `kind` run from `program`, with its repository and cache under `dir`.
    #[must_use]
    pub fn new(kind: Kind, program: PathBuf, version: String, dir: &Path) -> Self {
        Tool {
            kind,
            program,
            version,
            repo: dir.join("repo"),
            remote: None,
            home: dir.join("home"),
            extra_env: Vec::new(),
            archives: 0,
            last_put: None,
        }
    }

    fn env(&self) -> Vec<(String, OsString)> {
        let mut env = vec![("HOME".to_string(), self.home.clone().into_os_string())];
        let mut set = |k: &str, v: OsString| env.push((k.to_string(), v));
        match self.kind {
            Kind::Cairn => set("CAIRN_PASSWORD", PASSWORD.into()),
            Kind::Restic => {
                set("RESTIC_PASSWORD", PASSWORD.into());
                set("RESTIC_CACHE_DIR", self.home.join("cache").into_os_string());
            }
            Kind::Borg => {
                set("BORG_PASSPHRASE", PASSWORD.into());
                set("BORG_BASE_DIR", self.home.clone().into_os_string());
                set("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes".into());
                set("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes".into());
            }
            Kind::Rustic => {
                set("RUSTIC_PASSWORD", PASSWORD.into());
                set("RUSTIC_CACHE_DIR", self.home.join("cache").into_os_string());
            }
            Kind::Bupstash => {
                set("BUPSTASH_REPOSITORY", self.repo.clone().into_os_string());
                set("BUPSTASH_KEY", self.bupstash_key().into_os_string());
                // One send log per repository, as bupstash's manual asks for every job run
                // repeatedly; it lets an unchanged put skip what it sent before.
                set("BUPSTASH_SEND_LOG", self.home.join("bupstash.sendlog").into_os_string());
                set("BUPSTASH_QUERY_CACHE", self.home.join("bupstash.qcache").into_os_string());
            }
        }
        if let Some(s3) = &self.remote {
            let mut set = |k: &str, v: &str| env.push((k.to_string(), v.into()));
            set("AWS_ACCESS_KEY_ID", &s3.key);
            set("AWS_SECRET_ACCESS_KEY", &s3.secret);
            set("AWS_REGION", &s3.region);
            set("AWS_DEFAULT_REGION", &s3.region);
            match self.kind {
                Kind::Cairn => {
                    set("AWS_ENDPOINT_URL", &s3.endpoint);
                    set("XDG_CACHE_HOME", &self.home.join(".cache").to_string_lossy());
                }
                Kind::Rustic => {
                    set("RUSTIC_REPO_OPT_BUCKET", &s3.bucket);
                    set("RUSTIC_REPO_OPT_ROOT", &format!("/{}", s3.prefix));
                    set("RUSTIC_REPO_OPT_ENDPOINT", &s3.endpoint);
                    set("RUSTIC_REPO_OPT_REGION", &s3.region);
                }
                _ => {}
            }
        }
        env.extend(self.extra_env.iter().cloned());
        env
    }

    fn job(&self, args: Vec<OsString>) -> Job {
        let mut job = Job::new(self.program.clone(), args);
        job.env = self.env();
        job
    }

    fn repo_args(&self) -> Vec<OsString> {
        if let Some(s3) = &self.remote {
            let url = match self.kind {
                Kind::Restic => format!("s3:{}/{}/{}", s3.endpoint.trim_end_matches('/'), s3.bucket, s3.prefix),
                Kind::Rustic => "opendal:s3".to_string(),
                _ => format!("s3://{}/{}", s3.bucket, s3.prefix),
            };
            return vec!["-r".into(), url.into()];
        }
        match self.kind {
            // borg names the repository in each archive; bupstash takes options only after its
            // subcommand, and the repository from BUPSTASH_REPOSITORY (see `env`).
            Kind::Borg | Kind::Bupstash => vec![],
            _ => vec!["-r".into(), self.repo.clone().into_os_string()],
        }
    }

    fn next_archive(&mut self) -> OsString {
        self.archives += 1;
        let mut a = self.repo.clone().into_os_string();
        a.push(format!("::snap-{}", self.archives));
        a
    }

    /// `put -q snap=N` with the next N, ending the tag list (so no path is taken for a tag).
    fn bupstash_put(&mut self, mut args: Vec<OsString>, tags: &[String]) -> Vec<OsString> {
        self.archives += 1;
        args.extend(["put".into(), "-q".into(), format!("snap={}", self.archives).into()]);
        args.extend(tags.iter().map(OsString::from));
        args.push("::".into());
        args
    }

    fn bupstash_key(&self) -> PathBuf {
        self.home.join("bupstash.key")
    }

    /// The commands that create the repository, in order.
    #[must_use]
    pub fn init(&self) -> Vec<Job> {
        let _ = std::fs::create_dir_all(&self.home);
        let mut args = self.repo_args();
        match self.kind {
            Kind::Cairn => args.extend(["init".into(), "-q".into()]),
            Kind::Restic | Kind::Rustic => args.push("init".into()),
            Kind::Borg => {
                args.extend(["init".into(), "-e".into(), "repokey-blake2".into(), self.repo.clone().into_os_string()]);
            }
            Kind::Bupstash => {
                let key = self.job(vec!["new-key".into(), "-o".into(), self.bupstash_key().into_os_string()]);
                args.extend(["init".into(), "-q".into()]);
                return vec![key, self.job(args)];
            }
        }
        vec![self.job(args)]
    }

    /// `cairn run --policy POLICY -q` (cairn only).
    #[must_use]
    pub fn run_policy(&self, policy: &Path) -> Job {
        let args = vec!["run".into(), "-q".into(), "--policy".into(), policy.as_os_str().to_owned()];
        self.job(args)
    }

    /// Backs up `paths` (absolute).
    pub fn backup(&mut self, paths: &[PathBuf]) -> Job {
        let mut args = self.repo_args();
        match self.kind {
            Kind::Cairn => args.extend(["backup".into(), "-q".into()]),
            Kind::Restic | Kind::Rustic => args.push("backup".into()),
            Kind::Borg => args.extend(["create".into(), self.next_archive()]),
            Kind::Bupstash => {
                args = self.bupstash_put(args, &[]);
                self.last_put = Some(Put::Paths { root: common_ancestor(paths) });
            }
        }
        if self.kind == Kind::Restic {
            args.push("-q".into());
        }
        args.extend(paths.iter().map(|p| p.clone().into_os_string()));
        self.job(args)
    }

    /// Backs up standard input as a file called `name`.
    pub fn backup_stdin(&mut self, name: &str, input: Input) -> Job {
        let mut args = self.repo_args();
        match self.kind {
            Kind::Cairn => {
                args.extend(["backup".into(), "-q".into(), "--stdin".into(), "--stdin-filename".into(), name.into()]);
            }
            Kind::Restic => {
                args.extend(["backup".into(), "-q".into(), "--stdin".into(), "--stdin-filename".into(), name.into()])
            }
            // `--force`: without it rustic 0.11.4 took a changed stream for unchanged when the
            // snapshot had a parent, and stored the parent's bytes (found here: every later
            // dump restored as the first one, whatever its size); restic and cairn read every
            // stream anyway.
            Kind::Rustic => {
                args.extend(["backup".into(), "--force".into(), "--stdin-filename".into(), name.into(), "-".into()]);
            }
            Kind::Borg => {
                args.extend(["create".into(), "--stdin-name".into(), name.into(), self.next_archive(), "-".into()]);
            }
            Kind::Bupstash => {
                args = self.bupstash_put(args, &[format!("name={name}")]);
                args.push("-".into());
                self.last_put = Some(Put::Stdin { name: name.to_string() });
            }
        }
        let mut job = self.job(args);
        job.input = input;
        job
    }

    /// Restores the newest snapshot into `target` (which exists and is empty).
    #[must_use]
    pub fn restore(&self, target: &Path) -> Job {
        let mut args = self.repo_args();
        let t = target.to_path_buf().into_os_string();
        match self.kind {
            Kind::Cairn => args.extend(["restore".into(), "latest".into(), "--target".into(), t, "-q".into()]),
            Kind::Restic => args.extend(["restore".into(), "latest".into(), "--target".into(), t]),
            Kind::Rustic => args.extend(["restore".into(), "latest".into(), t]),
            Kind::Borg => {
                let mut a = self.repo.clone().into_os_string();
                a.push(format!("::snap-{}", self.archives));
                args.extend(["extract".into(), a]);
            }
            Kind::Bupstash => {
                let newest = format!("snap={}", self.archives).into();
                if let Some(Put::Stdin { name }) = &self.last_put {
                    args.extend(["get".into(), "-q".into(), newest]);
                    let mut job = self.job(args);
                    job.output = Some(target.join(name));
                    return job;
                }
                args.extend(["restore".into(), "-q".into(), "--into".into(), t, newest]);
            }
        }
        let mut job = self.job(args);
        if self.kind == Kind::Borg {
            job.cwd = Some(target.to_path_buf());
        }
        job
    }

    /// Starts `cairn mount` of the repository at `at` (cairn only), its output to `log`; the
    /// caller waits for the mount to appear, and ends it with SIGINT.
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn spawn_mount(&self, at: &Path, log: &Path) -> std::io::Result<std::process::Child> {
        let mut args = self.repo_args();
        args.extend(["mount".into(), at.as_os_str().to_owned()]);
        let log = std::fs::File::create(log)?;
        std::process::Command::new(&self.program)
            .args(args)
            .envs(self.env())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }

    /// Where a restore into `target` puts the absolute source path `source`: the full path
    /// under the target, except for bupstash, which stores a put's paths relative to their
    /// common ancestor (a single directory: relative to itself).
    #[must_use]
    pub fn restored(&self, target: &Path, source: &Path) -> PathBuf {
        let root = match &self.last_put {
            Some(Put::Paths { root }) if self.kind == Kind::Bupstash => root.as_path(),
            _ => Path::new("/"),
        };
        target.join(source.strip_prefix(root).unwrap_or(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bupstash_restores_a_put_relative_to_what_it_put() {
        let dir = Path::new("/work/tools/tree-bupstash");
        let (target, root) = (Path::new("/work/restores/0"), PathBuf::from("/work/data/tree"));
        let mut b = Tool::new(Kind::Bupstash, "bupstash".into(), String::new(), dir);
        let _ = b.backup(std::slice::from_ref(&root));
        assert_eq!(b.restored(target, &root), target);
        let _ = b.backup(&[root.join("a"), root.join("b/c")]);
        assert_eq!(b.restored(target, &root.join("b/c")), target.join("b/c"));
        let mut c = Tool::new(Kind::Cairn, "cairn".into(), String::new(), dir);
        let _ = c.backup(std::slice::from_ref(&root));
        assert_eq!(c.restored(target, &root), target.join("work/data/tree"));
    }

    #[test]
    fn a_repository_in_s3_is_named_the_way_each_tool_takes_it() {
        let dir = Path::new("/work/tools/s3");
        let s3 = S3Repo {
            endpoint: "http://127.0.0.1:48333".into(),
            bucket: "b".into(),
            prefix: "run/media/x".into(),
            key: "k".into(),
            secret: "s".into(),
            region: "us-east-1".into(),
        };
        let env = |job: &Job, k: &str| job.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        for (kind, url) in [
            (Kind::Cairn, "s3://b/run/media/x"),
            (Kind::Restic, "s3:http://127.0.0.1:48333/b/run/media/x"),
            (Kind::Rustic, "opendal:s3"),
        ] {
            let mut t = Tool::new(kind, kind.name().into(), String::new(), dir);
            t.remote = Some(s3.clone());
            let job = t.backup(&[PathBuf::from("/data")]);
            assert_eq!(job.argv[1..3], [OsString::from("-r"), url.into()], "{kind:?}");
            assert_eq!(env(&job, "AWS_ACCESS_KEY_ID"), Some("k".into()));
            assert_eq!(env(&job, "AWS_SECRET_ACCESS_KEY"), Some("s".into()));
        }
        let mut c = Tool::new(Kind::Cairn, "cairn".into(), String::new(), dir);
        c.remote = Some(s3.clone());
        assert_eq!(env(&c.restore(dir), "AWS_ENDPOINT_URL"), Some("http://127.0.0.1:48333".into()));
        let mut r = Tool::new(Kind::Rustic, "rustic".into(), String::new(), dir);
        r.remote = Some(s3);
        let job = r.restore(dir);
        assert_eq!(env(&job, "RUSTIC_REPO_OPT_ROOT"), Some("/run/media/x".into()));
        assert_eq!(env(&job, "RUSTIC_REPO_OPT_ENDPOINT"), Some("http://127.0.0.1:48333".into()));
        assert!(!Kind::Borg.has_s3() && !Kind::Bupstash.has_s3());
    }

    #[test]
    fn bupstash_restores_the_newest_put_and_a_stream_through_get() {
        let dir = Path::new("/work/tools/dump-bupstash");
        let target = Path::new("/work/restores/1");
        let mut b = Tool::new(Kind::Bupstash, "bupstash".into(), String::new(), dir);
        let put = b.backup_stdin("dump.sql", Input::Null);
        assert!(put.argv.ends_with(&["snap=1".into(), "name=dump.sql".into(), "::".into(), "-".into()]), "{put:?}");
        let _ = b.backup_stdin("dump.sql", Input::Null);
        let get = b.restore(target);
        assert!(get.argv.iter().any(|a| a == "get") && get.argv.ends_with(&["snap=2".into()]), "{get:?}");
        assert_eq!(get.output.as_deref(), Some(target.join("dump.sql").as_path()));
        let _ = b.backup(&[PathBuf::from("/work/data/tree")]);
        let restore = b.restore(target);
        assert!(restore.argv.iter().any(|a| a == "restore") && restore.argv.ends_with(&["snap=3".into()]));
        assert_eq!(restore.output, None);
    }
}
