//! Choosing snapshots: `latest` or an id (prefix) as a typed [`SnapshotRef`], `SNAP[:PATH]` as a
//! [`SnapshotPath`], host/path/tag filters, and resolving a reference among the snapshots stored.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::format::snapshot::Snapshot;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::SnapshotId;
use crate::repository::Repository;

/// Which snapshot: the newest (among those a filter passes), or one by id or unique id prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SnapshotRef {
    /// The newest snapshot passing the filter.
    Latest,
    /// Exactly this snapshot.
    Id(SnapshotId),
    /// The one snapshot whose id starts with these hex digits (lower case).
    Prefix(String),
}

impl FromStr for SnapshotRef {
    type Err = Error;

    /// `latest`, a whole id (64 hex digits) or a prefix of one.
    fn from_str(s: &str) -> Result<Self> {
        if s == "latest" {
            return Ok(SnapshotRef::Latest);
        }
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument(format!(
                "`{s}` is not a snapshot: give `latest`, an id or a unique prefix of one"
            )));
        }
        let lower = s.to_ascii_lowercase();
        match lower.parse::<SnapshotId>() {
            Ok(id) => Ok(SnapshotRef::Id(id)),
            Err(_) => Ok(SnapshotRef::Prefix(lower)),
        }
    }
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotRef::Latest => f.write_str("latest"),
            SnapshotRef::Id(id) => write!(f, "{id}"),
            SnapshotRef::Prefix(p) => f.write_str(p),
        }
    }
}

impl From<SnapshotId> for SnapshotRef {
    fn from(id: SnapshotId) -> Self {
        SnapshotRef::Id(id)
    }
}

/// A snapshot and, optionally, a path in it: `SNAP[:PATH]`, as `restore` takes it. The path is
/// kept as raw bytes (names need not be UTF-8) and made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPath {
    /// The snapshot.
    pub snapshot: SnapshotRef,
    /// The path in it (absolute); `None` for the whole snapshot.
    pub path: Option<PathBuf>,
}

impl SnapshotPath {
    /// Splits `SNAP[:PATH]` at the first `:`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the snapshot part is not a [`SnapshotRef`].
    pub fn parse(arg: &OsStr) -> Result<Self> {
        let bytes = arg.as_bytes();
        let (snap, path) = match bytes.iter().position(|&b| b == b':') {
            Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
            None => (bytes, None),
        };
        let snap = std::str::from_utf8(snap)
            .map_err(|_| Error::InvalidArgument(format!("snapshot `{}` is not text", arg.to_string_lossy())))?;
        let path = path.filter(|p| !p.is_empty()).map(|p| PathBuf::from("/").join(OsStr::from_bytes(p)));
        Ok(SnapshotPath { snapshot: snap.parse()?, path })
    }
}

/// Narrows snapshots by host, path and tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Any of these hosts (empty = any).
    pub hosts: Vec<String>,
    /// Snapshots whose paths include all of these (empty = any).
    pub paths: Vec<String>,
    /// Snapshots carrying all of these tags (empty = any).
    pub tags: Vec<String>,
}

impl SnapshotFilter {
    /// Whether `s` passes.
    #[must_use]
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.host))
            && self.paths.iter().all(|p| s.paths.contains(p))
            && s.has_tags(&self.tags)
    }
}

impl Repository {
    /// Resolves `which` among the snapshots passing `filter` (`latest` is the newest of them).
    ///
    /// # Errors
    /// [`Error::NotFound`] when nothing matches; [`Error::InvalidArgument`] for a prefix more
    /// than one snapshot has; store errors listing.
    pub fn find_snapshot(&self, which: &SnapshotRef, filter: &SnapshotFilter) -> Result<(SnapshotId, Snapshot)> {
        if let SnapshotRef::Id(id) = which {
            return Ok((*id, self.load_snapshot(*id)?));
        }
        let all = self.snapshots()?;
        let prefix = match which {
            SnapshotRef::Latest | SnapshotRef::Id(_) => {
                return all
                    .into_iter()
                    .rev()
                    .find(|(_, s)| filter.matches(s))
                    .ok_or_else(|| Error::NotFound("snapshot `latest` (no snapshot matches)".into()));
            }
            SnapshotRef::Prefix(p) => p,
        };
        let mut matches = all.into_iter().filter(|(id, _)| id.to_string().starts_with(prefix.as_str()));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Ok(one),
            (None, _) => Err(Error::NotFound(format!("snapshot `{prefix}`"))),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!("snapshot id prefix `{prefix}` is ambiguous"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!("latest".parse::<SnapshotRef>().unwrap(), SnapshotRef::Latest);
        assert_eq!("3F2A".parse::<SnapshotRef>().unwrap(), SnapshotRef::Prefix("3f2a".into()));
        let id = SnapshotId(crate::foundation::id::Digest::of(b"s"));
        assert_eq!(id.to_string().parse::<SnapshotRef>().unwrap(), SnapshotRef::Id(id));
        for bad in ["", "latest2", "xyz", "3f2a:", &"0".repeat(65)] {
            assert!(matches!(bad.parse::<SnapshotRef>(), Err(Error::InvalidArgument(_))), "{bad}");
        }
    }

    #[test]
    fn snapshot_paths_split_at_the_first_colon_and_keep_raw_bytes() {
        let p = SnapshotPath::parse(OsStr::new("latest")).unwrap();
        assert_eq!((p.snapshot, p.path), (SnapshotRef::Latest, None));
        let p = SnapshotPath::parse(OsStr::new("3f2a:/etc/a:b")).unwrap();
        assert_eq!(p.snapshot, SnapshotRef::Prefix("3f2a".into()));
        assert_eq!(p.path.as_deref(), Some(std::path::Path::new("/etc/a:b")));
        assert_eq!(SnapshotPath::parse(OsStr::new("latest:etc")).unwrap().path, Some(PathBuf::from("/etc")));
        assert_eq!(SnapshotPath::parse(OsStr::new("latest:")).unwrap().path, None);
        let raw = OsStr::from_bytes(b"latest:/caf\xe9");
        assert_eq!(SnapshotPath::parse(raw).unwrap().path.unwrap().as_os_str().as_bytes(), b"/caf\xe9");
        assert!(SnapshotPath::parse(OsStr::from_bytes(b"\xff:/x")).is_err());
    }
}
