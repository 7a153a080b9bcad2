//! The repositories one policy writes to in one place: the repository itself, and the
//! repository of each tenant its sources name (nested in it, FORMAT.md §14d).

use std::collections::BTreeMap;

use crate::format::snapshot::Snapshot;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::SnapshotId;
use crate::policy::{Policy, Source};
use crate::repository::Repository;

/// A repository and the tenants' repositories nested in it that a policy uses.
pub struct Repos<'a> {
    /// The repository itself.
    pub primary: &'a Repository,
    /// Each tenant a source names: its repository, or why it could not be opened.
    tenants: BTreeMap<String, std::result::Result<Repository, String>>,
}

impl<'a> Repos<'a> {
    /// The repositories of `policy` in `primary`. With `create`, a tenant not made yet is made
    /// (a run's first backup of it); without, it is left out, having no snapshots.
    #[must_use]
    pub fn open(policy: &Policy, primary: &'a Repository, create: bool) -> Self {
        let mut tenants = BTreeMap::new();
        for name in policy.sources.iter().filter_map(|s| s.tenant.as_ref()) {
            if tenants.contains_key(name) {
                continue;
            }
            let opened = if create { primary.add_tenant(name) } else { primary.open_tenant(name) };
            match opened {
                Ok(repo) => {
                    tenants.insert(name.clone(), Ok(repo));
                }
                Err(Error::NotFound(_)) if !create => {}
                Err(e) => {
                    tenants.insert(name.clone(), Err(format!("tenant `{name}`: {e}")));
                }
            }
        }
        Repos { primary, tenants }
    }

    /// The repository `source` is backed up into.
    ///
    /// # Errors
    /// Why its tenant's repository could not be opened (or, opened without `create`, that it
    /// does not exist yet).
    pub fn for_source(&self, source: &Source) -> std::result::Result<&Repository, String> {
        match &source.tenant {
            None => Ok(self.primary),
            Some(name) => match self.tenants.get(name) {
                Some(Ok(repo)) => Ok(repo),
                Some(Err(why)) => Err(why.clone()),
                None => Err(format!("tenant `{name}` has no repository yet")),
            },
        }
    }

    /// The tenant's name (`None` for the repository itself) and each repository that could be
    /// opened.
    pub fn all(&self) -> impl Iterator<Item = (Option<&str>, &Repository)> {
        std::iter::once((None, self.primary))
            .chain(self.tenants.iter().filter_map(|(name, r)| r.as_ref().ok().map(|repo| (Some(name.as_str()), repo))))
    }

    /// Tenants whose repository could not be opened, with why.
    pub fn failed(&self) -> impl Iterator<Item = &str> {
        self.tenants.values().filter_map(|r| r.as_ref().err().map(String::as_str))
    }

    /// Every snapshot of every repository, oldest first. Sources are told apart by their tags
    /// (source names are unique in a policy), so one list serves them all.
    ///
    /// # Errors
    /// Store errors listing or reading snapshots.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut all = Vec::new();
        for (_, repo) in self.all() {
            all.extend(repo.snapshots()?);
        }
        all.sort_by_key(|(_, s)| s.time);
        Ok(all)
    }
}

/// How a step names a repository of a policy: the copy's (or primary's) name, with the tenant.
#[must_use]
pub fn label(base: &str, tenant: Option<&str>) -> String {
    match tenant {
        None => base.to_string(),
        Some(t) if base.is_empty() => format!("tenant {t}"),
        Some(t) => format!("{base} (tenant {t})"),
    }
}
