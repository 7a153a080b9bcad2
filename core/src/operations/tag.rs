//! `tag`: add, remove or set the tags of existing snapshots. A snapshot is an immutable,
//! content-named object, so a changed one is written anew (same tree, times and parent; the new
//! tags) and the old one deleted.

use serde::Serialize;

use crate::format::snapshot::Snapshot;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{ObjectKey, ObjectKind, SnapshotId};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::writer::WriteOptions;

/// The change to make to each snapshot's tags.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TagChange {
    /// Replace the tags with these (before `remove` and `add`).
    pub set: Option<Vec<String>>,
    /// Tags to take away.
    pub remove: Vec<String>,
    /// Tags to add (kept once, in the order given).
    pub add: Vec<String>,
}

impl TagChange {
    /// A change that sets, removes and adds the given tags.
    #[must_use]
    pub fn new(set: Option<Vec<String>>, remove: Vec<String>, add: Vec<String>) -> Self {
        TagChange { set, remove, add }
    }

    /// The tags `tags` become.
    #[must_use]
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self.set.clone().unwrap_or_else(|| tags.to_vec());
        out.retain(|t| !self.remove.contains(t));
        for t in &self.add {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// One snapshot whose tags changed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Retagged {
    /// The snapshot before.
    pub old: SnapshotId,
    /// Its replacement.
    pub new: SnapshotId,
    /// Its tags now.
    pub tags: Vec<String>,
}

/// Changes the tags of `snapshots`: each whose tags change is written anew and the old one
/// deleted; the others are left alone.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty change or an empty tag; storage that may not delete
/// (checked before anything is written); store errors.
pub fn run(repo: &Repository, snapshots: &[(SnapshotId, Snapshot)], change: &TagChange) -> Result<Vec<Retagged>> {
    if change.set.is_none() && change.remove.is_empty() && change.add.is_empty() {
        return Err(Error::InvalidArgument("nothing to change: give --add, --remove or --set".into()));
    }
    let all = change.set.iter().flatten().chain(&change.remove).chain(&change.add);
    if all.clone().any(|t| t.trim().is_empty() || t.contains(',')) {
        return Err(Error::InvalidArgument("a tag may be neither empty nor contain a comma".into()));
    }
    let changed: Vec<(SnapshotId, Snapshot)> = snapshots
        .iter()
        .filter_map(|(id, s)| {
            let tags = change.apply(&s.tags);
            (tags != s.tags).then(|| (*id, Snapshot { tags, ..s.clone() }))
        })
        .collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    repo.ensure_can_delete("tag")?;
    let _session = repo.begin_session()?;
    // Nothing new is stored: the token only proves the index is committed, as every saved
    // snapshot needs; the old snapshot keeps the tree alive until its replacement exists.
    let ((), _, committed) = repo.write_blobs(&Index::default(), WriteOptions::default(), |_| Ok(()))?;
    let mut out = Vec::with_capacity(changed.len());
    for (old, snapshot) in changed {
        let new = repo.save_snapshot(&snapshot, &committed)?;
        if new != old {
            let key = ObjectKey::new(ObjectKind::Snapshot, old.0);
            repo.store().delete(&key).map_err(Error::store(key))?;
        }
        out.push(Retagged { old, new, tags: snapshot.tags });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_in_order_set_remove_add() {
        let tags: Vec<String> = vec!["a".into(), "b".into()];
        let change = |set: Option<&[&str]>, remove: &[&str], add: &[&str]| {
            let v = |x: &[&str]| x.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
            TagChange::new(set.map(v), v(remove), v(add)).apply(&tags)
        };
        assert_eq!(change(None, &["a"], &["c", "b", "c"]), ["b", "c"]);
        assert_eq!(change(Some(&["x"]), &[], &["y"]), ["x", "y"]);
        assert_eq!(change(Some(&[]), &[], &[]), Vec::<String>::new());
    }
}
