//! The backup tools under test and how each is driven: Cairn and, when installed, its peers.
//!
//! Every tool gets a local repository in the run's work directory, its password from the
//! environment, and its default encryption and compression:
//! - `cairn`: `init` defaults (zstd 3, 256 KiB average chunks, AES-256-GCM).
//! - `restic`: `init` defaults (repository v2: zstd "auto", AES-256-CTR + Poly1305).
//! - `borg`: `init -e repokey-blake2`, `create` defaults (lz4).
//! - `rustic`: `init` defaults (as restic).
//!
//! Caches that live outside the repository (restic's, borg's files and chunks caches) are kept
//! in the work directory too, so runs do not leak into each other or into the user's home.

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
}

impl Kind {
    /// Every tool, Cairn first.
    pub const ALL: [Kind; 4] = [Kind::Cairn, Kind::Restic, Kind::Borg, Kind::Rustic];

    /// Its command name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cairn => "cairn",
            Kind::Restic => "restic",
            Kind::Borg => "borg",
            Kind::Rustic => "rustic",
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
    /// Its repository directory (created by `init`).
    pub repo: PathBuf,
    /// Its private cache and config directory.
    pub home: PathBuf,
    /// Environment variables added to every command (the latency figure's fault spec, say).
    pub extra_env: Vec<(String, OsString)>,
    archives: u32,
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
            home: dir.join("home"),
            extra_env: Vec::new(),
            archives: 0,
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
        match self.kind {
            Kind::Borg => vec![],
            _ => vec!["-r".into(), self.repo.clone().into_os_string()],
        }
    }

    fn next_archive(&mut self) -> OsString {
        self.archives += 1;
        let mut a = self.repo.clone().into_os_string();
        a.push(format!("::snap-{}", self.archives));
        a
    }

    /// Creates the repository.
    #[must_use]
    pub fn init(&self) -> Job {
        let _ = std::fs::create_dir_all(&self.home);
        let mut args = self.repo_args();
        match self.kind {
            Kind::Cairn => args.extend(["init".into(), "-q".into()]),
            Kind::Restic | Kind::Rustic => args.push("init".into()),
            Kind::Borg => {
                args.extend(["init".into(), "-e".into(), "repokey-blake2".into(), self.repo.clone().into_os_string()]);
            }
        }
        self.job(args)
    }

    /// Backs up `paths` (absolute).
    /// `cairn run --policy POLICY -q` (cairn only).
    #[must_use]
    pub fn run_policy(&self, policy: &Path) -> Job {
        let args = vec!["run".into(), "-q".into(), "--policy".into(), policy.as_os_str().to_owned()];
        self.job(args)
    }

    pub fn backup(&mut self, paths: &[PathBuf]) -> Job {
        let mut args = self.repo_args();
        match self.kind {
            Kind::Cairn => args.extend(["backup".into(), "-q".into()]),
            Kind::Restic | Kind::Rustic => args.push("backup".into()),
            Kind::Borg => args.extend(["create".into(), self.next_archive()]),
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

    /// Where a restore into `target` puts the absolute source path `source` (every tool here
    /// recreates the full path under the target).
    #[must_use]
    pub fn restored(target: &Path, source: &Path) -> PathBuf {
        target.join(source.strip_prefix("/").unwrap_or(source))
    }
}
