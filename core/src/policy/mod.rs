//! Backup policies written down (docs/POLICY.md): one TOML file states the repository, its
//! off-site copies, each source and how often it is backed up, the retention tiers, the check,
//! the drill, the erasure deadline and whom to notify. This layer sits above the operations:
//! what a written policy asks for is carried out by calling them.
//!
//! [`Policy::parse`] reads and checks a policy; every mistake, from an unknown key to an `rpo`
//! shorter than its source's `every`, is a [`PolicyError`] naming the line and column.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::foundation::duration::parse_duration;
use crate::operations::check::ReadData;
use crate::operations::forget::retention::Tier;

/// A mistake in a policy file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct PolicyError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl PolicyError {
    /// An error at byte `offset` of `text`.
    fn at(text: &str, offset: usize, message: impl Into<String>) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        PolicyError { line, column, message: message.into() }
    }
}

/// A checked policy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Policy {
    /// The repository the sources are backed up into.
    pub repository: Repo,
    /// Off-site copies of it.
    pub copies: Vec<Copy>,
    /// What is backed up, and how often.
    pub sources: Vec<Source>,
    /// The retention tiers (`forget --keep-tier`).
    pub retention: Vec<Tier>,
    /// The regular check, if any.
    pub check: Option<Check>,
    /// The restore drill, if any.
    pub drill: Option<Drill>,
    /// How soon an erasure request must be carried out, if promised.
    pub erasure_deadline: Option<Duration>,
    /// The command (program and arguments) run with a JSON summary on standard input when a
    /// step fails; empty for none.
    pub on_failure: Vec<String>,
}

/// A repository and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repo {
    /// Its URL (any the `-r` option takes).
    pub url: String,
    /// The file holding its password.
    pub password_file: Option<PathBuf>,
}

/// An off-site copy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Copy {
    /// Its name (in status, metrics and records).
    pub name: String,
    /// The repository.
    pub repository: Repo,
    /// How far the copy may fall behind the primary.
    pub max_lag: Option<Duration>,
}

/// What a source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceKind {
    /// A command whose standard output is backed up as one file (a database dump).
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
        /// The file name the output is stored under.
        filename: String,
    },
    /// Files and directories.
    Paths {
        /// The paths.
        paths: Vec<PathBuf>,
        /// Exclude patterns, as for `backup --exclude`.
        exclude: Vec<String>,
    },
    /// A PostgreSQL cluster archiving its WAL into the repository (`cairn pg wal-push`): its
    /// base backups are the source's snapshots, and its RPO is judged by the newest archived
    /// WAL.
    Postgres {
        /// The name its WAL is archived under (`--cluster`).
        cluster: String,
        /// pg_basebackup's connection arguments.
        args: Vec<String>,
        /// Directory of the PostgreSQL programs (default: PATH, then /usr/lib/postgresql).
        pg_bin: Option<PathBuf>,
    },
}

/// One source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Source {
    /// Its name: snapshots of it are tagged with it.
    pub name: String,
    /// What it reads.
    pub kind: SourceKind,
    /// How often it is backed up.
    pub every: Duration,
    /// The recovery point objective: the newest snapshot is never older than this.
    pub rpo: Duration,
    /// The tenant whose repository it is backed up into (nested in the policy's repository,
    /// under the tenant's own key: FORMAT.md §14d); `None` for the repository itself.
    pub tenant: Option<String>,
}

/// The regular check.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Check {
    /// The slice of the data each check reads (`check --read-data-subset`).
    pub read_data: ReadData,
    /// How often it runs.
    pub every: Duration,
}

/// The restore drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drill {
    /// How often it runs.
    pub every: Duration,
    /// The recovery time objective a drill's restore must meet.
    pub rto: Duration,
}

// The file as written: every value that is checked after parsing keeps its place.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    repository: Spanned<RawRepo>,
    #[serde(default)]
    copy: Vec<Spanned<RawCopy>>,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
    retention: Option<RawRetention>,
    check: Option<RawCheck>,
    drill: Option<RawDrill>,
    erasure: Option<RawErasure>,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    url: Spanned<String>,
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCopy {
    name: Spanned<String>,
    url: Spanned<String>,
    password_file: Option<PathBuf>,
    max_lag: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    command: Option<Spanned<Vec<String>>>,
    filename: Option<Spanned<String>>,
    paths: Option<Spanned<Vec<PathBuf>>>,
    postgres: Option<Spanned<RawPostgres>>,
    #[serde(default)]
    exclude: Vec<String>,
    every: Spanned<String>,
    rpo: Spanned<String>,
    tenant: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    cluster: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    pg_bin: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    tiers: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    read_data_subset: Option<Spanned<String>>,
    every: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    every: Spanned<String>,
    rto: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErasure {
    deadline: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    on_failure: Option<Spanned<Vec<String>>>,
}

impl Policy {
    /// Parses and checks the policy in `text`.
    ///
    /// # Errors
    /// The first mistake found, with its line and column.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: File = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            PolicyError::at(text, at, e.message().trim_end().to_string())
        })?;
        let err = |span: std::ops::Range<usize>, message: String| PolicyError::at(text, span.start, message);
        let duration = |s: &Spanned<String>, what: &str| {
            let d =
                parse_duration(s.get_ref(), 's').map_err(|e| err(s.span(), format!("{what}: {}", message_of(&e))))?;
            if d.is_zero() {
                return Err(err(s.span(), format!("{what} must be longer than 0")));
            }
            Ok(d)
        };
        let non_empty = |s: &Spanned<String>, what: &str| {
            if s.get_ref().trim().is_empty() {
                return Err(err(s.span(), format!("{what} is empty")));
            }
            Ok(s.get_ref().clone())
        };

        let repository = Repo {
            url: non_empty(&file.repository.get_ref().url, "repository url")?,
            password_file: file.repository.get_ref().password_file.clone(),
        };

        let mut names = HashSet::new();
        let mut copies = Vec::new();
        for c in &file.copy {
            let raw = c.get_ref();
            let name = non_empty(&raw.name, "copy name")?;
            if !names.insert(format!("copy {name}")) {
                return Err(err(raw.name.span(), format!("a second copy named `{name}`")));
            }
            let url = non_empty(&raw.url, "copy url")?;
            if url == repository.url {
                return Err(err(raw.url.span(), "a copy must go to another repository than the primary".into()));
            }
            let max_lag = raw.max_lag.as_ref().map(|m| duration(m, "max_lag")).transpose()?;
            copies.push(Copy { name, repository: Repo { url, password_file: raw.password_file.clone() }, max_lag });
        }

        let mut sources = Vec::new();
        for s in &file.source {
            let raw = s.get_ref();
            let name = non_empty(&raw.name, "source name")?;
            if !names.insert(format!("source {name}")) {
                return Err(err(raw.name.span(), format!("a second source named `{name}`")));
            }
            if let Some(pg) = &raw.postgres {
                if raw.command.is_some() || raw.paths.is_some() {
                    return Err(err(
                        pg.span(),
                        format!("source `{name}`: give one of `command`, `paths` or `postgres`"),
                    ));
                }
                if raw.filename.is_some() || !raw.exclude.is_empty() {
                    return Err(err(
                        pg.span(),
                        format!("source `{name}`: `filename` and `exclude` are not for `postgres` sources"),
                    ));
                }
            }
            let kind = match (&raw.command, &raw.paths, &raw.postgres) {
                (_, _, Some(pg)) => {
                    let pg = pg.get_ref();
                    SourceKind::Postgres {
                        cluster: match &pg.cluster {
                            Some(c) => non_empty(c, "cluster")?,
                            None => "main".into(),
                        },
                        args: pg.args.clone(),
                        pg_bin: pg.pg_bin.clone(),
                    }
                }
                (Some(cmd), None, None) => {
                    if cmd.get_ref().is_empty() {
                        return Err(err(cmd.span(), format!("source `{name}`: the command is empty")));
                    }
                    let Some(filename) = &raw.filename else {
                        return Err(err(s.span(), format!("source `{name}`: a command source needs a `filename`")));
                    };
                    if !raw.exclude.is_empty() {
                        return Err(err(s.span(), format!("source `{name}`: `exclude` is for `paths` sources")));
                    }
                    SourceKind::Command { argv: cmd.get_ref().clone(), filename: non_empty(filename, "filename")? }
                }
                (None, Some(paths), None) => {
                    if paths.get_ref().is_empty() {
                        return Err(err(paths.span(), format!("source `{name}`: no paths")));
                    }
                    if let Some(f) = &raw.filename {
                        return Err(err(f.span(), format!("source `{name}`: `filename` is for `command` sources")));
                    }
                    SourceKind::Paths { paths: paths.get_ref().clone(), exclude: raw.exclude.clone() }
                }
                (Some(_), Some(paths), None) => {
                    return Err(err(paths.span(), format!("source `{name}`: give `command` or `paths`, not both")));
                }
                (None, None, None) => {
                    return Err(err(s.span(), format!("source `{name}`: give `command`, `paths` or `postgres`")));
                }
            };
            let every = duration(&raw.every, "every")?;
            let rpo = duration(&raw.rpo, "rpo")?;
            // WAL is archived continuously: a cluster's RPO may be far shorter than the
            // interval of its base backups.
            if rpo < every && !matches!(kind, SourceKind::Postgres { .. }) {
                return Err(err(
                    raw.rpo.span(),
                    format!(
                        "source `{name}`: rpo {} is shorter than every {}: the promise could never be kept",
                        raw.rpo.get_ref(),
                        raw.every.get_ref()
                    ),
                ));
            }
            let tenant = match &raw.tenant {
                Some(t) => {
                    crate::format::tenant::check_name(t.get_ref())
                        .map_err(|why| err(t.span(), format!("source `{name}`: {why}")))?;
                    Some(t.get_ref().clone())
                }
                None => None,
            };
            sources.push(Source { name, kind, every, rpo, tenant });
        }
        if sources.is_empty() {
            return Err(PolicyError::at(text, text.len(), "no [[source]]: a policy backs up at least one source"));
        }

        let mut retention = Vec::new();
        if let Some(r) = &file.retention {
            if r.tiers.get_ref().is_empty() {
                return Err(err(
                    r.tiers.span(),
                    "retention: no tiers (leave [retention] out to keep everything)".into(),
                ));
            }
            for t in r.tiers.get_ref() {
                let tier: Tier = t.get_ref().parse().map_err(|e| err(t.span(), format!("retention tier: {e}")))?;
                retention.push(tier);
            }
        }

        let check = file
            .check
            .as_ref()
            .map(|c| -> Result<Check, PolicyError> {
                let read_data = match &c.read_data_subset {
                    Some(s) => {
                        s.get_ref().parse::<ReadData>().map_err(|e| err(s.span(), format!("read_data_subset: {e}")))?
                    }
                    None => ReadData::None,
                };
                Ok(Check { read_data, every: duration(&c.every, "check every")? })
            })
            .transpose()?;
        let drill = file
            .drill
            .as_ref()
            .map(|d| -> Result<Drill, PolicyError> {
                Ok(Drill { every: duration(&d.every, "drill every")?, rto: duration(&d.rto, "rto")? })
            })
            .transpose()?;
        let erasure_deadline = file.erasure.as_ref().map(|e| duration(&e.deadline, "erasure deadline")).transpose()?;
        let on_failure = match file.notify.as_ref().and_then(|n| n.on_failure.as_ref()) {
            None => Vec::new(),
            Some(c) if c.get_ref().is_empty() || c.get_ref()[0].trim().is_empty() => {
                return Err(err(c.span(), "notify on_failure: an empty command".into()));
            }
            Some(c) => c.get_ref().clone(),
        };
        Ok(Policy { repository, copies, sources, retention, check, drill, erasure_deadline, on_failure })
    }

    /// The shortest `every` of the policy: how often `cairn run` must be started.
    #[must_use]
    pub fn shortest_every(&self) -> Duration {
        let sources = self.sources.iter().map(|s| s.every);
        let check = self.check.iter().map(|c| c.every);
        let drill = self.drill.iter().map(|d| d.every);
        sources.chain(check).chain(drill).min().unwrap_or(Duration::from_secs(3600))
    }
}

/// The message of an engine error without its kind's prefix.
fn message_of(e: &crate::foundation::error::Error) -> String {
    match e {
        crate::foundation::error::Error::InvalidArgument(m) => m.clone(),
        other => other.to_string(),
    }
}

pub mod erase;
pub mod report;
pub mod repos;
pub mod run;
pub mod status;

#[cfg(test)]
mod tests;
