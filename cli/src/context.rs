//! What every command shares: global flags, the password, opening the repository.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cairn_core::Repository;
use cairn_core::store::object_store::BackendOptions;
use cairn_core::store::retry::RetryPolicy;
use cairn_core::store::{OpenOptions, Store, default_cache_root};

/// Prints a line of a command's summary on standard output, unless `-q` asked for none.
/// Errors and warnings go to standard error whatever the flags; what a listing command lists
/// is its output, not a summary, and is printed with `println!`.
macro_rules! say {
    ($global:expr, $($arg:tt)*) => {
        if !$global.quiet {
            println!($($arg)*)
        }
    };
}
pub(crate) use say;

/// Flags every command takes.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Repository: a local path or file://PATH; s3://BUCKET/PREFIX (AWS_* variables,
    /// AWS_ENDPOINT_URL for other S3 services); gs://BUCKET/PREFIX (GOOGLE_*);
    /// az://CONTAINER/PREFIX (AZURE_*); http(s)://URL (WebDAV); memory://NAME (this process
    /// only, for tests).
    #[arg(short = 'r', long = "repo", env = "CAIRN_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Work in this tenant's repository, nested in the one --repo names (made by `cairn tenant
    /// add` or a policy's `tenant`): its own keys, its own deduplication.
    #[arg(long, env = "CAIRN_TENANT", global = true)]
    pub tenant: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true)]
    pub password_file: Option<std::path::PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, env = "CAIRN_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors and warnings: no summary (commands that list or show
    /// something still print it; the exit code tells the outcome).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: besides the summary, each item as it is done (a file backed up or restored,
    /// a pack read or repacked, a snapshot copied or rewritten), on standard error; with
    /// --json as JSON lines ("message_type": "verbose_status").
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Report progress even when standard error is not a terminal: a status line a second
    /// (with --json, a JSON line a second, "message_type": "status"). On a terminal, backup and
    /// restore draw a live bar without it.
    #[arg(long, global = true)]
    pub progress: bool,
    /// Backend setting KEY=VALUE, e.g. aws_region=eu-west-1 (repeatable).
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE", global = true)]
    pub options: Vec<String>,
    /// Do not use the local metadata cache for remote repositories.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Directory of the local metadata cache (default: $XDG_CACHE_HOME/cairn or ~/.cache/cairn).
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true)]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Retries of a failed storage request (transient errors only).
    #[arg(long, default_value_t = 8, global = true)]
    pub retries: u32,
    /// Storage requests in flight for uploads and restore downloads (0 = default: for a remote
    /// repository 4 uploads and 8 restore downloads, decoded by a thread per core; for a local
    /// one 1 upload and 4 restore threads that each read and decode, never fewer than cores).
    #[arg(long, default_value_t = 0, global = true)]
    pub connections: usize,
    /// Timeout of one storage request, in seconds.
    #[arg(long, default_value_t = 60, global = true)]
    pub timeout: u64,
}

impl GlobalArgs {
    /// The repository URL, required.
    pub fn repo_url(&self) -> Result<&str> {
        self.repo.as_deref().ok_or_else(|| crate::usage("no repository given: use -r/--repo or set CAIRN_REPOSITORY"))
    }

    /// How to open stores, from the global flags.
    pub fn open_options(&self) -> Result<OpenOptions> {
        let mut settings = Vec::new();
        for o in &self.options {
            let (k, v) = o.split_once('=').with_context(|| format!("option `{o}` is not KEY=VALUE"))?;
            settings.push((k.trim().to_string(), v.trim().to_string()));
        }
        let faults = std::env::var("CAIRN_TEST_FAULTS").ok().filter(|f| !f.is_empty());
        let cache_dir = if self.no_cache { None } else { self.cache_dir.clone().or_else(default_cache_root) };
        Ok(OpenOptions {
            backend: BackendOptions {
                settings,
                timeout: Some(std::time::Duration::from_secs(self.timeout)),
                create: false,
            },
            retry: RetryPolicy { max_retries: self.retries, ..RetryPolicy::default() },
            cache_dir,
            faults,
        })
    }

    /// Opens the store named by `--repo`.
    pub fn store(&self) -> Result<Arc<dyn Store>> {
        self.store_at(self.repo_url()?)
    }

    /// Opens the store at `url` with the global settings. A local directory that does not
    /// exist is "no repository there", and nothing is created.
    pub fn store_at(&self, url: &str) -> Result<Arc<dyn Store>> {
        self.open_store(url, false)
    }

    /// Opens the store named by `--repo` for `init`: a missing local directory is created.
    pub fn store_for_init(&self) -> Result<Arc<dyn Store>> {
        self.open_store(self.repo_url()?, true)
    }

    fn open_store(&self, url: &str, create: bool) -> Result<Arc<dyn Store>> {
        let mut options = self.open_options()?;
        options.backend.create = create;
        let location = cairn_core::store::object_store::redact_userinfo(url);
        cairn_core::store::open(url, &options)
            .map_err(|e| match e {
                cairn_core::StoreError::NotFound(_) => {
                    anyhow::Error::new(cairn_core::Error::RepositoryNotFound { location: location.clone() })
                }
                e => anyhow::Error::new(cairn_core::Error::Storage(e)),
            })
            .with_context(|| format!("opening repository {location}"))
    }

    /// The password from the environment, a file, a command or (on a terminal) a prompt.
    pub fn password(&self, confirm: bool) -> Result<Vec<u8>> {
        if let Ok(p) = std::env::var("CAIRN_PASSWORD") {
            return Ok(p.into_bytes());
        }
        if self.password_file.is_some() || self.password_command.is_some() {
            return self.password_from_sources();
        }
        if !std::io::stdin().is_terminal() {
            return Err(crate::usage(
                "no password given: set CAIRN_PASSWORD, --password-file or --password-command (stdin is not a terminal, so cairn will not prompt)",
            ));
        }
        let p = rpassword::prompt_password("repository password: ").context("reading the password")?;
        if confirm {
            let again = rpassword::prompt_password("repeat the password: ").context("reading the password")?;
            if again != p {
                bail!("the passwords do not match");
            }
        }
        Ok(p.into_bytes())
    }

    /// The password from `--password-file` or `--password-command`.
    pub fn password_from_sources(&self) -> Result<Vec<u8>> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read(path).with_context(|| format!("reading password file {}", path.display()))?;
            return Ok(first_line(&text));
        }
        if let Some(cmd) = &self.password_command {
            let out = std::process::Command::new("sh")
                .args(["-c", cmd])
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("running password command `{cmd}`"))?;
            if !out.status.success() {
                bail!("password command `{cmd}` failed: {}", out.status);
            }
            return Ok(first_line(&out.stdout));
        }
        bail!("no password source given")
    }

    /// Opens the repository through the key cache in `cache` (see `cairn_core::repository::keycache`),
    /// or as [`GlobalArgs::open`] does when `cache` is `None`.
    pub fn open_cached(&self, cache: Option<&std::path::Path>) -> Result<Repository> {
        let Some(dir) = cache else { return self.open() };
        let cache = cairn_core::advanced::KeyCache::open(dir).context("opening the key cache")?;
        let store = self.store()?;
        let password = self.password(false)?;
        let repo = Repository::open_cached(store, &password, &cache)
            .with_context(|| format!("opening repository {}", self.repo.as_deref().unwrap_or("")))?;
        self.in_tenant(repo)
    }

    /// Opens the repository, or with `--tenant` that tenant's repository in it.
    pub fn open(&self) -> Result<Repository> {
        self.in_tenant(self.open_repository()?)
    }

    /// Opens the repository `--repo` names, whatever `--tenant` says.
    pub fn open_repository(&self) -> Result<Repository> {
        let store = self.store()?;
        let password = self.password(false)?;
        let repo = Repository::open(store, &password)
            .with_context(|| format!("opening repository {}", self.repo.as_deref().unwrap_or("")))?;
        Ok(self.with_local_state(repo))
    }

    /// `repo`, told where its local cache keeps the index table (FORMAT.md §11a), the cache
    /// directory's `index/<repository id>`, unless `--no-cache`; and where a write-only key keeps
    /// its local records (FORMAT.md §5.6), the cache directory's `own/<repository id>`.
    pub fn with_local_state(&self, mut repo: Repository) -> Repository {
        let id = repo.config().id.to_string();
        if !self.no_cache
            && let Some(root) = self.cache_dir.clone().or_else(cairn_core::store::default_cache_root)
        {
            // CAIRN_TEST_INDEX_TABLE_MIN lowers the threshold, so the tests reach the table
            // with small repositories.
            let min_blobs = std::env::var("CAIRN_TEST_INDEX_TABLE_MIN")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(cairn_core::INDEX_TABLE_MIN_BLOBS);
            repo.set_index_cache(root.join("index").join(&id), min_blobs);
        }
        if repo.master().is_write_only()
            && let Some(root) = self.cache_dir.clone().or_else(cairn_core::store::default_cache_root)
        {
            repo.set_own_records(root.join("own").join(id));
        }
        repo
    }

    /// `repo`, or with `--tenant` that tenant's repository in it.
    pub fn in_tenant(&self, repo: Repository) -> Result<Repository> {
        match &self.tenant {
            Some(name) => repo.open_tenant(name).with_context(|| format!("opening tenant `{name}`")),
            None => Ok(repo),
        }
    }
}

fn first_line(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let line = &bytes[..end];
    line.strip_suffix(b"\r").unwrap_or(line).to_vec()
}

/// Prints a value as JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Human-readable byte count.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.2} {}", UNITS[u]) }
}

/// A duration as an operator writes it: the largest whole unit (`3h`, `1d`, `90m`, `45s`).
pub fn duration_text(d: std::time::Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= n && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}
