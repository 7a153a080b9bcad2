//! The retention chain of a cluster: which archived WAL each kept base backup needs to reach
//! the newest archived segment, what is missing from it, and what may be deleted.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::format::snapshot::{BaseBackup, Snapshot};
use crate::format::wal::{WalKind, WalName};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::SnapshotId;
use crate::repository::Repository;
use crate::repository::store::ObjectInfo;

use super::lsn::{
    LONG_HEADER, Switch, format_lsn, long_header, parse_history, segment_name, segment_number, segment_of,
};
use super::{archived, archived_in, base_backups, base_backups_in, fetch, list_wal};

/// Segments missing from a chain, first to last, on one timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The first missing segment.
    pub first: WalName,
    /// The last missing segment.
    pub last: WalName,
    /// The WAL positions it covers, from…
    pub from_lsn: u64,
    /// …to (exclusive).
    pub to_lsn: u64,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{} (WAL {} to {})", self.first, format_lsn(self.from_lsn), format_lsn(self.to_lsn))
        } else {
            write!(
                f,
                "{} to {} (WAL {} to {})",
                self.first,
                self.last,
                format_lsn(self.from_lsn),
                format_lsn(self.to_lsn)
            )
        }
    }
}

/// One kept base backup's chain.
#[derive(Debug, Clone)]
pub struct BackupChain {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// What it records.
    pub backup: BaseBackup,
    /// Missing segments between its start and the newest archived segment of its timeline line.
    pub gaps: Vec<Gap>,
    /// Timelines its line passes through whose history file is not archived.
    pub missing_history: Vec<u32>,
    /// The last segment its unbroken WAL reaches (`None`: not even its first).
    pub reaches: Option<WalName>,
}

impl BackupChain {
    /// Whether it can be restored to any point from its end to the newest archived WAL.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.gaps.is_empty() && self.missing_history.is_empty()
    }
}

/// The chain of a cluster.
#[derive(Debug, Clone)]
pub struct ChainReport {
    /// The cluster.
    pub cluster: String,
    /// Each base backup, oldest first.
    pub backups: Vec<BackupChain>,
    /// The newest archived segment and when the store received it.
    pub newest: Option<(WalName, jiff::Timestamp)>,
    /// Archived files (segments, histories, backup histories, partial segments).
    pub files: usize,
    /// What is wrong with the newest segment itself: not a WAL segment, or one of another
    /// cluster (its system identifier or segment size differs from the base backups').
    pub foreign: Option<String>,
}

impl ChainReport {
    /// Whether every base backup's chain is whole, and the newest segment is the cluster's.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.foreign.is_none() && self.backups.iter().all(BackupChain::is_whole)
    }

    /// The recovery window: from the end of the oldest base backup whose chain is whole to the
    /// newest archived segment's arrival. `None` if no base backup has a whole chain.
    #[must_use]
    pub fn window(&self) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        let from = self.backups.iter().find(|b| b.is_whole())?.backup.stop_time;
        let to = self.newest.as_ref().map_or(from, |(_, t)| *t).max(from);
        Some((from, to))
    }
}

/// Checks the chain of `cluster`: every base backup must have unbroken WAL, following the
/// timelines' histories, from its start to the newest archived segment.
///
/// # Errors
/// Store errors; [`Error::Corrupt`] for a damaged history file.
pub fn check(repo: &Repository, cluster: &str) -> Result<ChainReport> {
    let files = archived(repo, cluster)?;
    let backups = base_backups(repo, cluster)?;
    check_with(repo, cluster, &files, &backups)
}

/// [`check`] of every cluster with base backups, the snapshots and `wal/` listed once.
///
/// # Errors
/// As [`check`].
pub fn check_all(repo: &Repository) -> Result<Vec<ChainReport>> {
    let (snapshots, listing) = (repo.snapshots()?, list_wal(repo)?);
    clusters_in(&snapshots)
        .iter()
        .map(|c| check_with(repo, c, &archived_in(repo, &listing, c)?, &base_backups_in(&snapshots, c)))
        .collect()
}

/// The newest archived segment among `files` (highest timeline, then position) and when the
/// store received it.
#[must_use]
pub fn newest_segment(files: &[(WalName, ObjectInfo)]) -> Option<(WalName, jiff::Timestamp)> {
    files
        .iter()
        .filter(|(n, _)| n.kind == WalKind::Segment)
        .max_by_key(|(n, _)| (n.timeline, n.position()))
        .map(|(n, info)| (*n, info.last_modified))
}

fn check_with(
    repo: &Repository,
    cluster: &str,
    files: &[(WalName, ObjectInfo)],
    backups: &[(SnapshotId, Snapshot)],
) -> Result<ChainReport> {
    let newest_segment = newest_segment(files);
    let mut histories = BTreeMap::new();
    for (name, _) in files.iter().filter(|(n, _)| n.kind == WalKind::History) {
        let text = fetch(repo, cluster, name)?.unwrap_or_default();
        let parsed = parse_history(&String::from_utf8_lossy(&text))
            .ok_or_else(|| Error::corrupt(format!("timeline history {name} of cluster {cluster}"), "cannot be read"))?;
        histories.insert(name.timeline, parsed);
    }
    let mut out = Vec::with_capacity(backups.len());
    let mut present_by_size: std::collections::HashMap<u64, HashSet<(u32, u64)>> = std::collections::HashMap::new();
    for (id, snapshot) in backups {
        let Some(backup) = snapshot.postgres.clone() else { continue };
        let size = backup.segment_size;
        // Numbered once per segment size (one, unless the cluster was made again).
        let present: &HashSet<(u32, u64)> = present_by_size.entry(size).or_insert_with(|| {
            files
                .iter()
                .filter(|(n, _)| n.kind == WalKind::Segment)
                .map(|(n, _)| (n.timeline, segment_number(n.position(), size)))
                .collect()
        });
        let newest_on = |tli: u32| present.iter().filter(|(t, _)| *t == tli).map(|(_, n)| *n).max();
        let newest_tli =
            present.iter().map(|(t, _)| *t).chain(histories.keys().copied()).max().unwrap_or(backup.timeline);
        let (line, missing_history) = timeline_line(&histories, backup.timeline, newest_tli);
        let mut gaps = Vec::new();
        let mut next = segment_number(segment_of(backup.start_lsn, size), size);
        let mut reaches: Option<WalName> = None;
        let mut broken = false;
        for (tli, end) in &line {
            let last = match end {
                Some(switch) => (switch / size).checked_sub(1),
                None => newest_on(*tli),
            };
            if let Some(last) = last {
                let mut n = next;
                while n <= last {
                    if present.contains(&(*tli, n)) {
                        if !broken {
                            reaches = Some(segment_name(*tli, n, size));
                        }
                        n += 1;
                        continue;
                    }
                    let first = n;
                    while n <= last && !present.contains(&(*tli, n)) {
                        n += 1;
                    }
                    broken = true;
                    gaps.push(gap(*tli, first, n - 1, size));
                }
            }
            if let Some(switch) = end {
                next = next.max(switch / size);
            }
        }
        // It must at least reach its own consistency point.
        let stop = segment_number(segment_of(backup.stop_lsn, size), size);
        let reached = reaches.map(|r| segment_number(r.position(), size));
        let covered_to = gaps.iter().map(|g| segment_number(g.last.position(), size)).chain(reached).max();
        if covered_to.is_none_or(|c| c < stop) {
            let first = covered_to.map_or(segment_number(segment_of(backup.start_lsn, size), size), |c| c + 1);
            let tli = line.last().map_or(backup.stop_timeline, |(t, _)| *t);
            gaps.push(gap(tli, first, stop, size));
        }
        out.push(BackupChain { snapshot: *id, backup, gaps, missing_history, reaches });
    }
    // The newest segment's first page says which cluster wrote it: a second server archiving
    // under the same name shows there.
    let foreign = match (&newest_segment, out.first()) {
        (Some((name, _)), Some(first)) => {
            let data = fetch(repo, cluster, name)?.unwrap_or_default();
            foreign_segment(name, &data, &first.backup)
        }
        _ => None,
    };
    Ok(ChainReport { cluster: cluster.to_string(), backups: out, newest: newest_segment, files: files.len(), foreign })
}

/// Why segment `name` (its bytes `data`) is not one `backup`'s cluster wrote, if it is not.
fn foreign_segment(name: &WalName, data: &[u8], backup: &BaseBackup) -> Option<String> {
    if data.len() < LONG_HEADER {
        return Some(format!("{name} is {} bytes long: not a WAL segment", data.len()));
    }
    let Some(header) = long_header(data) else {
        return Some(format!("{name} does not start with a WAL segment's long page header"));
    };
    if header.system_identifier.to_string() != backup.system_identifier {
        return Some(format!(
            "{name} was written by database system {}, the base backups by {}: is another cluster archiving \
             under the name {}?",
            header.system_identifier, backup.system_identifier, backup.cluster
        ));
    }
    if header.segment_size != backup.segment_size {
        return Some(format!(
            "{name} has segments of {} bytes, the base backups {}",
            header.segment_size, backup.segment_size
        ));
    }
    None
}

fn gap(timeline: u32, first: u64, last: u64, size: u64) -> Gap {
    Gap {
        first: segment_name(timeline, first, size),
        last: segment_name(timeline, last, size),
        from_lsn: first * size,
        to_lsn: (last + 1) * size,
    }
}

/// The timelines from `from` to `newest` in `newest`'s history, each with where it ended
/// (`None` for the last), and the timelines whose history is missing. A `from` that is not in
/// `newest`'s history (a branch left behind) is followed on its own.
fn timeline_line(
    histories: &BTreeMap<u32, Vec<Switch>>,
    from: u32,
    newest: u32,
) -> (Vec<(u32, Option<u64>)>, Vec<u32>) {
    if newest == from {
        return (vec![(from, None)], Vec::new());
    }
    let Some(history) = histories.get(&newest) else {
        return (vec![(from, None)], vec![newest]);
    };
    let Some(start) = history.iter().position(|s| s.timeline == from) else {
        return (vec![(from, None)], Vec::new());
    };
    let mut line: Vec<(u32, Option<u64>)> = history[start..].iter().map(|s| (s.timeline, Some(s.switch))).collect();
    line.push((newest, None));
    let missing = line.iter().skip(1).map(|(t, _)| *t).filter(|t| !histories.contains_key(t)).collect();
    (line, missing)
}

/// The clusters the repository's base backups belong to.
///
/// # Errors
/// As [`Repository::snapshots`].
pub fn clusters(repo: &Repository) -> Result<BTreeSet<String>> {
    Ok(clusters_in(&repo.snapshots()?))
}

/// The clusters base backups among `snapshots` belong to.
#[must_use]
pub fn clusters_in(snapshots: &[(SnapshotId, Snapshot)]) -> BTreeSet<String> {
    snapshots.iter().filter_map(|(_, s)| s.postgres.as_ref().map(|p| p.cluster.clone())).collect()
}

/// The archived files of `cluster` no kept base backup needs: WAL segments (and partial
/// segments and backup histories) before the start of the oldest base backup. Timeline
/// histories are always kept, and with no base backup nothing is expirable.
///
/// # Errors
/// Store errors.
pub fn expirable(repo: &Repository, cluster: &str) -> Result<Vec<(WalName, ObjectInfo)>> {
    let backups = base_backups(repo, cluster)?;
    if backups.is_empty() {
        return Ok(Vec::new());
    }
    Ok(expirable_in(archived(repo, cluster)?, &backups))
}

/// Of `files`, those no base backup of `backups` needs (see [`expirable`]).
fn expirable_in(files: Vec<(WalName, ObjectInfo)>, backups: &[(SnapshotId, Snapshot)]) -> Vec<(WalName, ObjectInfo)> {
    let Some(cut) =
        backups.iter().filter_map(|(_, s)| s.postgres.as_ref()).map(|p| segment_of(p.start_lsn, p.segment_size)).min()
    else {
        return Vec::new();
    };
    files.into_iter().filter(|(name, _)| name.kind != WalKind::History && name.position() < cut).collect()
}

/// What [`expire`] deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Expired {
    /// Files deleted.
    pub files: usize,
    /// Their stored bytes.
    pub bytes: u64,
}

/// Deletes, in every cluster with base backups, the archived WAL no kept base backup needs.
///
/// # Errors
/// As [`Repository::ensure_can_delete`]; store errors.
pub fn expire(repo: &Repository, dry_run: bool) -> Result<Expired> {
    let mut out = Expired::default();
    let (snapshots, listing) = (repo.snapshots()?, list_wal(repo)?);
    for cluster in clusters_in(&snapshots) {
        let victims = expirable_in(archived_in(repo, &listing, &cluster)?, &base_backups_in(&snapshots, &cluster));
        if victims.is_empty() {
            continue;
        }
        if !dry_run {
            repo.ensure_can_delete("expiring WAL")?;
        }
        for (_, info) in victims {
            if !dry_run {
                repo.store().delete(&info.key).map_err(|e| Error::Store { key: info.key, cause: e })?;
            }
            out.files += 1;
            out.bytes += info.size;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::id::Digest;
    use crate::operations::postgres::lsn::XLP_LONG_HEADER;
    use crate::operations::postgres::push;
    use crate::repository::testing::{memory_repo, snapshot_of};

    const MB16: u64 = 16 << 20;

    /// The first bytes of a segment of database system `sysid`.
    fn header(sysid: u64, size: u32) -> Vec<u8> {
        let mut h = vec![0u8; LONG_HEADER];
        h[..2].copy_from_slice(&0xD110u16.to_le_bytes());
        h[2..4].copy_from_slice(&XLP_LONG_HEADER.to_le_bytes());
        h[24..32].copy_from_slice(&sysid.to_le_bytes());
        h[32..36].copy_from_slice(&size.to_le_bytes());
        h
    }

    fn segment(repo: &Repository, name: &str) {
        let mut data = header(1, 16 << 20);
        data.extend_from_slice(name.as_bytes());
        push(repo, "main", &WalName::parse(name).unwrap(), &data).unwrap();
    }

    fn base(start_lsn: u64, timeline: u32) -> (SnapshotId, Snapshot) {
        let mut s = snapshot_of(crate::foundation::id::BlobId(Digest::of(b"tree")));
        s.postgres = Some(BaseBackup {
            cluster: "main".into(),
            system_identifier: "1".into(),
            timeline,
            start_lsn,
            stop_lsn: start_lsn + 0x100,
            stop_timeline: timeline,
            segment_size: MB16,
            start_time: jiff::Timestamp::UNIX_EPOCH,
            stop_time: jiff::Timestamp::UNIX_EPOCH,
        });
        (SnapshotId(Digest::of(&start_lsn.to_le_bytes())), s)
    }

    fn report(repo: &Repository, backups: &[(SnapshotId, Snapshot)]) -> ChainReport {
        check_with(repo, "main", &archived(repo, "main").unwrap(), backups).unwrap()
    }

    #[test]
    fn a_whole_chain_and_a_gap_named_by_its_segments() {
        let repo = memory_repo("chain-gap");
        for n in ["000000010000000000000002", "000000010000000000000003", "000000010000000000000006"] {
            segment(&repo, n);
        }
        let backups = [base(0x200_0028, 1)];
        let r = report(&repo, &backups);
        assert!(!r.is_whole());
        let gaps: Vec<String> = r.backups[0].gaps.iter().map(ToString::to_string).collect();
        assert_eq!(gaps, ["000000010000000000000004 to 000000010000000000000005 (WAL 0/4000000 to 0/6000000)"]);
        assert_eq!(r.backups[0].reaches.unwrap().to_string(), "000000010000000000000003");
        segment(&repo, "000000010000000000000004");
        segment(&repo, "000000010000000000000005");
        let r = report(&repo, &backups);
        assert!(r.is_whole(), "{:?}", r.backups[0].gaps);
        assert_eq!(r.backups[0].reaches.unwrap().to_string(), "000000010000000000000006");
    }

    #[test]
    fn a_switch_is_followed_through_the_history_and_a_missing_history_named() {
        let repo = memory_repo("chain-timeline");
        // Timeline 1 ends inside segment 4; timeline 2 holds segment 4 on.
        for n in ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"] {
            segment(&repo, n);
        }
        for n in ["000000020000000000000004", "000000020000000000000005"] {
            segment(&repo, n);
        }
        let backups = [base(0x200_0028, 1)];
        let r = report(&repo, &backups);
        assert_eq!(r.backups[0].missing_history, [2], "without 00000002.history the switch is unknown");
        let history = WalName::parse("00000002.history").unwrap();
        push(&repo, "main", &history, b"1\t0/4000100\tno recovery target specified\n").unwrap();
        let r = report(&repo, &backups);
        assert!(r.is_whole(), "{:?}", r.backups[0]);
        assert_eq!(r.backups[0].reaches.unwrap().to_string(), "000000020000000000000005");
        // Timeline 2's copy of the switch segment is the one needed.
        let files = archived(&repo, "main").unwrap();
        let key = files.iter().find(|(n, _)| n.to_string() == "000000020000000000000004").unwrap().1.key;
        repo.store().delete(&key).unwrap();
        let r = report(&repo, &backups);
        let gaps: Vec<String> = r.backups[0].gaps.iter().map(|g| g.first.to_string()).collect();
        assert_eq!(gaps, ["000000020000000000000004"]);
    }

    #[test]
    fn a_newest_segment_of_another_database_system_is_named() {
        let repo = memory_repo("chain-foreign");
        segment(&repo, "000000010000000000000002");
        let backups = [base(0x200_0028, 1)];
        assert!(report(&repo, &backups).is_whole());
        let mut other = header(99, 16 << 20);
        other.extend_from_slice(b"another server");
        push(&repo, "main", &WalName::parse("000000010000000000000003").unwrap(), &other).unwrap();
        let r = report(&repo, &backups);
        assert!(!r.is_whole());
        let why = r.foreign.unwrap();
        assert!(why.contains("database system 99") && why.contains("by 1"), "{why}");
        push(&repo, "main", &WalName::parse("000000010000000000000004").unwrap(), b"short").unwrap();
        assert!(report(&repo, &backups).foreign.unwrap().contains("not a WAL segment"));
        let mut sized = header(1, 64 << 20);
        sized.push(0);
        push(&repo, "main", &WalName::parse("000000010000000000000005").unwrap(), &sized).unwrap();
        assert!(report(&repo, &backups).foreign.unwrap().contains("segments of 67108864 bytes"));
    }

    #[test]
    fn only_wal_before_the_oldest_base_backup_is_expirable_and_histories_never() {
        let repo = memory_repo("chain-expire");
        for n in [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000002.00000028.backup",
            "00000002.history",
            "000000010000000000000003",
            "0000000200000000000000FF",
            "000000020000000100000000",
        ] {
            segment(&repo, n);
        }
        let cut = |backups: &[(SnapshotId, Snapshot)]| -> Vec<String> {
            expirable_in(archived(&repo, "main").unwrap(), backups).into_iter().map(|(n, _)| n.to_string()).collect()
        };
        assert_eq!(
            cut(&[base(0x300_0028, 1), base(0x500_0028, 1)]),
            ["000000010000000000000001", "000000010000000000000002", "000000010000000000000002.00000028.backup"],
            "before the oldest base backup's start segment"
        );
        // Ordered by position, not text: 0000000200000000000000FF comes before 000000020000000100000000.
        assert_eq!(
            cut(&[base(0x1_0000_0028, 2)]),
            [
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000002.00000028.backup",
                "000000010000000000000003",
                "0000000200000000000000FF"
            ]
        );
        // With no base backup, nothing is expirable.
        assert!(expirable(&repo, "main").unwrap().is_empty());
    }
}
