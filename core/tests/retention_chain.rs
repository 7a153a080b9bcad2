//! Any point restores (issue 6, item 5): a year of 6-hourly backups under the tiered policy
//! `6h:1d, 1d:7d, 1w:4w, 1M:12M`, with forget and prune after every simulated day.
//!
//! Two snapshot groups grow side by side in one local repository, with small chunks and packs so
//! that deduplication, partly used packs and repacking all happen many times:
//! - a small source tree (a few files edited every 6 hours, files added and removed every few
//!   days, one renamed now and then), its mtimes set to the simulated time so change detection
//!   against the parent works as it would on a real machine;
//! - a SQL dump that changes a little every 6 hours, streamed through
//!   `BackupSource::command(sh -c 'cat db.sql')` like `--stdin-from-command`.
//!
//! Time runs in 6-hour slots for a year from 2024-01-01T00:00Z (1460 slots: both groups cross the
//! leap day and every month length), and every backup is stamped with its slot's time through
//! `BackupOptions::time`. Backing up every slot of both groups (2920 backups) takes several
//! minutes in a debug build, so each slot is backed up at random: the tree with probability 0.25,
//! the dump with 0.12, and both in every slot of every 29th day and of the last four days. That
//! is about 600 backups spread over the whole year, with irregular gaps (days without a backup,
//! days with several) that give the tiers more to get wrong than a fixed schedule would. The
//! source tree and the dump change in every slot, backed up or not. After each simulated day the
//! test applies the policy with `RetentionPlan`, deletes the forgotten snapshot objects, and
//! prunes with `max_unused` 5% and no grace period, as a daily cron line would.
//!
//! What is checked:
//! - the snapshots left are exactly those an independent model of the tier rules keeps (the
//!   model below re-implements buckets and Go's `AddDate` cutoffs; it shares no code with
//!   `retention.rs`);
//! - at checkpoints and at the end every kept snapshot is restored and compared file by file
//!   with a BLAKE3 digest recorded when it was taken;
//! - at the end, after more prunes until one finds nothing to mark or repack (at least two, so
//!   everything marked is swept), the packs hold no more than the bytes the kept snapshots need
//!   plus the configured unused share, and
//!   `check --read-data` finds nothing. "Need" is the sealed length of every blob the kept
//!   snapshots reference (from the index) plus the pack headers: with 1 KiB chunks a header's
//!   46-byte entry per blob is about 4% on its own, so leaving it out would measure the format,
//!   not prune. "Unused share" is what `--max-unused` promises: unused bytes at most 5% of all
//!   pack bytes.
//!
//! Set `CAIRN_CHAIN_SLOTS` to run a shorter chain while working on this file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::KdfParams;
use cairn_core::NoProgress;
use cairn_core::advanced::chunk::ChunkerParams;
use cairn_core::backup::{self, BackupOptions, BackupSource};
use cairn_core::check::{self, ReadData};
use cairn_core::format::blob::BlobKind;
use cairn_core::format::tree::NodeKind;
use cairn_core::id::{BlobId, Digest, PackId, SnapshotId};
use cairn_core::prune::{self, PruneOptions, PruneStats};
use cairn_core::restore::{self, RestoreOptions};
use cairn_core::retention::{GroupBy, Policy, RetentionPlan, SnapshotInfo, Tier};
use cairn_core::store::object_store::ObjectStoreBackend;
use cairn_core::store::{ObjectKey, ObjectKind, Store};
use cairn_core::{InitOptions, Repository};
use jiff::Timestamp;
use jiff::tz::TimeZone;

const PASSWORD: &[u8] = b"a year of backups";
const HOST: &str = "chain-host";
/// Four 6-hour slots a day for 365 days.
const SLOTS: usize = 4 * 365;
const SLOTS_PER_DAY: usize = 4;
const SLOT_SECS: i64 = 6 * 3600;
/// Chance that a slot gets a tree backup, and a dump backup.
const P_TREE: f64 = 0.25;
const P_DUMP: f64 = 0.12;
/// Every slot of every this many days is backed up, and every slot of the last days.
const DENSE_EVERY: usize = 29;
const DENSE_LAST_DAYS: usize = 4;
/// Restore every kept snapshot after these days (and at the end).
const CHECKPOINT_DAYS: [usize; 3] = [45, 150, 270];
const MAX_UNUSED: f64 = 0.05;
/// Pack layout (FORMAT.md §Pack): salt, sealed blobs, sealed header of 46-byte entries
/// (`5 + 46 n` bytes plus nonce and tag), 4-byte header length.
const PACK_SALT: u64 = 16;
const SEAL_OVERHEAD: u64 = 12 + 16;
const ENTRY_LEN: u64 = 46;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (SplitMix64), so a failure reproduces exactly.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Compressible text: words from a small vocabulary.
    fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "cairn", "stone", "backup", "chunk", "pack", "index", "snapshot", "tier", "daily", "weekly", "monthly",
            "prune", "restore", "hash", "seal", "tree",
        ];
        let mut out = Vec::with_capacity(n + 16);
        while out.len() < n {
            out.extend_from_slice(WORDS[self.range(0, WORDS.len())].as_bytes());
            out.push(if self.chance(0.1) { b'\n' } else { b' ' });
        }
        out.truncate(n);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The mutating source tree and dump.

/// What a snapshot must restore to: relative path → `None` for a directory, the content digest
/// for a file.
type Manifest = BTreeMap<String, Option<Digest>>;

struct SourceTree {
    root: PathBuf,
    files: Vec<PathBuf>,
    next_name: usize,
}

/// Few directories: prune reads every tree of every snapshot, and in a debug build each read
/// costs about a millisecond.
const DIRS: [&str; 3] = ["docs", "src", "src/deep"];

impl SourceTree {
    fn new(root: PathBuf, rng: &mut Rng, t: Timestamp) -> Self {
        for d in DIRS {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut tree = SourceTree { root, files: Vec::new(), next_name: 0 };
        for _ in 0..10 {
            tree.add_file(rng, t);
        }
        tree
    }

    fn new_content(rng: &mut Rng) -> Vec<u8> {
        let n = rng.range(512, 12 * 1024);
        if rng.chance(0.5) { rng.text(n) } else { rng.bytes(n) }
    }

    fn write(path: &Path, data: &[u8], t: Timestamp) {
        std::fs::write(path, data).unwrap();
        // The simulated time as mtime: change detection compares it with the parent's.
        filetime::set_file_mtime(path, filetime::FileTime::from_unix_time(t.as_second(), 0)).unwrap();
    }

    fn add_file(&mut self, rng: &mut Rng, t: Timestamp) {
        let dir = DIRS[rng.range(0, DIRS.len())];
        let path = self.root.join(dir).join(format!("file-{:04}.dat", self.next_name));
        self.next_name += 1;
        Self::write(&path, &Self::new_content(rng), t);
        self.files.push(path);
    }

    /// Edits a few files: overwrite, insert, delete or append a small range, as editors and
    /// applications do, so most chunks of a file survive the edit.
    fn edit_some(&mut self, rng: &mut Rng, t: Timestamp) {
        for _ in 0..rng.range(1, 4) {
            let path = self.files[rng.range(0, self.files.len())].clone();
            let mut data = std::fs::read(&path).unwrap();
            let len = rng.range(8, 400);
            let patch = if rng.chance(0.5) { rng.text(len) } else { rng.bytes(len) };
            let at = rng.range(0, data.len().max(1));
            match rng.range(0, 4) {
                0 => {
                    let end = (at + len).min(data.len());
                    data.splice(at..end, patch);
                }
                1 => {
                    data.splice(at..at, patch);
                }
                2 => {
                    let end = (at + len).min(data.len());
                    data.drain(at..end);
                }
                _ => data.extend_from_slice(&patch),
            }
            if data.len() > 24 * 1024 {
                data.drain(..data.len() - 16 * 1024);
            }
            Self::write(&path, &data, t);
        }
    }

    /// Once a day: sometimes a file comes, goes or moves.
    fn daily_churn(&mut self, rng: &mut Rng, t: Timestamp) {
        if self.files.len() < 16 && rng.chance(0.35) {
            self.add_file(rng, t);
        }
        if self.files.len() > 6 && rng.chance(0.3) {
            let gone = self.files.swap_remove(rng.range(0, self.files.len()));
            std::fs::remove_file(gone).unwrap();
        }
        if rng.chance(0.1) {
            let i = rng.range(0, self.files.len());
            let to = self.root.join(DIRS[rng.range(0, DIRS.len())]).join(format!("moved-{:04}.dat", self.next_name));
            self.next_name += 1;
            std::fs::rename(&self.files[i], &to).unwrap();
            self.files[i] = to;
        }
    }
}

/// Every directory and file below `root`, relative to it.
fn manifest(root: &Path) -> Manifest {
    fn walk(dir: &Path, prefix: &str, out: &mut Manifest) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                out.insert(name.clone(), None);
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                assert!(ft.is_file(), "{name}: only files and directories are expected");
                out.insert(name, Some(Digest::of(&std::fs::read(entry.path()).unwrap())));
            }
        }
    }
    let mut out = Manifest::new();
    walk(root, "", &mut out);
    out
}

/// A dump of a growing table: rows are updated, inserted and deleted a little at a time.
struct Dump {
    path: PathBuf,
    rows: Vec<(u64, String)>,
    next_id: u64,
}

impl Dump {
    fn new(path: PathBuf, rng: &mut Rng) -> Self {
        let mut d = Dump { path, rows: Vec::new(), next_id: 1 };
        for _ in 0..300 {
            d.insert(rng);
        }
        d.write();
        d
    }

    fn row(rng: &mut Rng) -> String {
        let n = rng.range(20, 120);
        String::from_utf8(rng.text(n)).unwrap().replace('\n', " ")
    }

    fn insert(&mut self, rng: &mut Rng) {
        self.rows.push((self.next_id, Self::row(rng)));
        self.next_id += 1;
    }

    fn step(&mut self, rng: &mut Rng) {
        for _ in 0..rng.range(1, 5) {
            let i = rng.range(0, self.rows.len());
            self.rows[i].1 = Self::row(rng);
        }
        for _ in 0..rng.range(0, 6) {
            self.insert(rng);
        }
        while self.rows.len() > 500 || (self.rows.len() > 200 && rng.chance(0.3)) {
            self.rows.remove(rng.range(0, self.rows.len()));
        }
        self.write();
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"-- cairn test dump\nCREATE TABLE notes (id bigint PRIMARY KEY, body text);\n".to_vec();
        for (id, body) in &self.rows {
            out.extend_from_slice(format!("INSERT INTO notes VALUES ({id}, '{body}');\n").as_bytes());
        }
        out
    }

    fn write(&self) {
        std::fs::write(&self.path, self.bytes()).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// An independent model of the tier rules (retention.rs module docs, issue 6 item 2).

#[derive(Clone, Copy)]
enum Bucket {
    SixHours,
    Day,
    IsoWeek,
    Month,
}

impl Bucket {
    fn of(self, t: Timestamp) -> i64 {
        let secs = t.as_second();
        let days = secs.div_euclid(86_400);
        match self {
            Bucket::SixHours => secs.div_euclid(6 * 3600),
            // 1970-01-01 was a Thursday; ISO weeks start on Monday 1969-12-29.
            Bucket::Day => days,
            Bucket::IsoWeek => (days + 3).div_euclid(7),
            Bucket::Month => {
                let d = t.to_zoned(TimeZone::UTC).date();
                i64::from(d.year()) * 12 + i64::from(d.month()) - 1
            }
        }
    }
}

/// Go's `t.AddDate(0, -months, -days)` in UTC: month arithmetic first, then the day of month is
/// allowed to overflow into the next month (31 March minus one month is 3 March).
fn go_sub_date(t: Timestamp, months: i64, days: i64) -> Timestamp {
    let dt = t.to_zoned(TimeZone::UTC).datetime();
    let total = i64::from(dt.year()) * 12 + i64::from(dt.month()) - 1 - months;
    let first = jiff::civil::date(i16::try_from(total.div_euclid(12)).unwrap(), (total.rem_euclid(12) + 1) as i8, 1);
    let day = first.checked_add(jiff::Span::new().days(i64::from(dt.day()) - 1 - days)).unwrap();
    day.to_datetime(dt.time()).to_zoned(TimeZone::UTC).unwrap().timestamp()
}

/// `6h:1d, 1d:7d, 1w:4w, 1M:12M` as (bucket, months, days) of the look-back.
const MODEL_TIERS: [(Bucket, i64, i64); 4] =
    [(Bucket::SixHours, 0, 1), (Bucket::Day, 0, 7), (Bucket::IsoWeek, 0, 28), (Bucket::Month, 12, 0)];

/// Which of one group's snapshots the tiers keep: for each tier, the newest snapshot of each
/// bucket among those strictly after `newest - duration`.
fn model_keep(group: &[(Timestamp, SnapshotId)]) -> BTreeSet<SnapshotId> {
    let Some(newest) = group.iter().map(|(t, _)| *t).max() else { return BTreeSet::new() };
    let mut keep = BTreeSet::new();
    for (bucket, months, days) in MODEL_TIERS {
        let cutoff = go_sub_date(newest, months, days);
        let mut newest_in: HashMap<i64, (Timestamp, SnapshotId)> = HashMap::new();
        for &(t, id) in group.iter().filter(|(t, _)| *t > cutoff) {
            let e = newest_in.entry(bucket.of(t)).or_insert((t, id));
            if t > e.0 {
                *e = (t, id);
            }
        }
        keep.extend(newest_in.values().map(|(_, id)| *id));
    }
    keep
}

// ---------------------------------------------------------------------------------------------
// The chain.

#[derive(Clone)]
enum Expected {
    /// A tree snapshot of the source root.
    Tree(Manifest),
    /// A dump snapshot: the one file `db.sql`.
    Dump(Digest),
}

struct Kept {
    time: Timestamp,
    group: &'static str,
    expected: Expected,
}

fn tier_policy() -> Policy {
    let tiers: Vec<Tier> = ["6h:1d", "1d:7d", "1w:4w", "1M:12M"].iter().map(|t| t.parse().unwrap()).collect();
    let policy = Policy { keep_tiers: tiers, ..Default::default() };
    policy.validate().unwrap();
    policy
}

/// Restores every kept snapshot into a fresh directory and compares it with what was recorded.
fn restore_all(repo: &Repository, kept: &BTreeMap<SnapshotId, Kept>, source_root: &Path, scratch: &Path) {
    for (id, k) in kept {
        let target = tempfile::tempdir_in(scratch).unwrap();
        let summary = restore::run(repo, &(*id).into(), None, &RestoreOptions::new(target.path()), &NoProgress)
            .unwrap_or_else(|e| panic!("restoring {} snapshot {id} of {}: {e}", k.group, k.time));
        assert!(summary.failed.is_empty(), "snapshot {id} of {}: files failed: {:?}", k.time, summary.failed);
        match &k.expected {
            Expected::Tree(want) => {
                let got = manifest(&target.path().join(source_root.strip_prefix("/").unwrap()));
                if &got != want {
                    let missing: Vec<_> = want.keys().filter(|p| !got.contains_key(*p)).collect();
                    let extra: Vec<_> = got.keys().filter(|p| !want.contains_key(*p)).collect();
                    let differ: Vec<_> = want.iter().filter(|(p, d)| got.get(*p).is_some_and(|g| g != *d)).collect();
                    panic!(
                        "tree snapshot {id} of {} restores wrongly: missing {missing:?}, extra {extra:?}, differing {differ:?}",
                        k.time
                    );
                }
            }
            Expected::Dump(want) => {
                let got = manifest(target.path());
                let expected: Manifest = [("db.sql".to_string(), Some(*want))].into();
                assert_eq!(got, expected, "dump snapshot {id} of {} restores wrongly", k.time);
            }
        }
    }
}

/// Every blob reachable from the repository's snapshots, walked here rather than taken from
/// `prune::used_blobs`.
fn referenced_blobs(repo: &Repository) -> HashSet<BlobId> {
    let index = repo.load_index().unwrap();
    let mut used = HashSet::new();
    let mut stack: Vec<BlobId> = repo.snapshots().unwrap().into_iter().map(|(_, s)| s.tree).collect();
    while let Some(tree) = stack.pop() {
        if !used.insert(tree) {
            continue;
        }
        for node in repo.load_tree(&index, &tree).unwrap().nodes {
            match node.kind {
                NodeKind::Dir => stack.extend(node.subtree),
                NodeKind::File => used.extend(node.content),
                _ => {}
            }
        }
    }
    used
}

fn prune_now(repo: &Repository) -> PruneStats {
    let mut opts = PruneOptions::default();
    opts.max_unused = MAX_UNUSED;
    opts.grace = Duration::ZERO;
    prune::run(repo, &opts).unwrap()
}

#[test]
fn a_year_of_tiered_retention_restores_every_kept_snapshot() {
    let slots: usize = std::env::var("CAIRN_CHAIN_SLOTS").ok().and_then(|s| s.parse().ok()).unwrap_or(SLOTS);
    let days = slots.div_ceil(SLOTS_PER_DAY);
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let scratch = work.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let store: Arc<dyn Store> = Arc::new(ObjectStoreBackend::open(repo_dir.to_str().unwrap(), &creating()).unwrap());
    let mut init = InitOptions::default();
    init.chunker_params = ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 };
    init.pack_size = 64 * 1024;
    init.compression = 3;
    init.kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let mut repo = Repository::init(store.clone(), PASSWORD, &init).unwrap();
    let policy = tier_policy();

    let start: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
    let mut rng = Rng(0x00C0_FFEE_CA1B);
    let mut schedule = Rng(0x5C4E_D01E);
    // The source in a directory of its own, so snapshots hold as few trees above it as possible.
    let source_dir = tempfile::tempdir().unwrap();
    let source_root = source_dir.path().to_path_buf();
    let mut tree = SourceTree::new(source_root.clone(), &mut rng, start);
    let dump_path = work.path().join("db.sql");
    let mut dump = Dump::new(dump_path.clone(), &mut rng);
    let dump_command: Vec<String> = vec!["sh".into(), "-c".into(), format!("cat '{}'", dump_path.display())];

    let mut kept: BTreeMap<SnapshotId, Kept> = BTreeMap::new();
    let (mut backups, mut forgotten) = (0usize, 0usize);
    let mut prune_totals = PruneStats::default();
    let (mut t_backup, mut t_prune, mut t_restore) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);

    for slot in 0..slots {
        let time = start.checked_add(jiff::SignedDuration::from_secs(SLOT_SECS * slot as i64)).unwrap();
        let day = slot / SLOTS_PER_DAY;
        if slot > 0 {
            tree.edit_some(&mut rng, time);
            if slot.is_multiple_of(SLOTS_PER_DAY) {
                tree.daily_churn(&mut rng, time);
            }
            dump.step(&mut rng);
        }
        let dense = day.is_multiple_of(DENSE_EVERY) || day + DENSE_LAST_DAYS >= days;
        let (do_tree, do_dump) = (schedule.chance(P_TREE), schedule.chance(P_DUMP));

        let t0 = Instant::now();
        if dense || do_tree {
            let mut opts = BackupOptions::default();
            opts.time = Some(time);
            opts.host = Some(HOST.into());
            opts.tags = vec!["tree".into()];
            opts.threads = 2;
            let want = manifest(&source_root);
            let r = backup::run(&repo, BackupSource::paths([&source_root]), &opts, &NoProgress).unwrap();
            assert!(r.unreadable.is_empty(), "{:?}", r.unreadable);
            kept.insert(r.snapshot, Kept { time, group: "tree", expected: Expected::Tree(want) });
            backups += 1;
        }
        if dense || do_dump {
            let mut opts = BackupOptions::default();
            opts.time = Some(time);
            opts.host = Some(HOST.into());
            opts.tags = vec!["dump".into()];
            opts.threads = 2;
            let r =
                backup::run(&repo, BackupSource::command("db.sql", dump_command.clone()), &opts, &NoProgress).unwrap();
            kept.insert(r.snapshot, Kept { time, group: "dump", expected: Expected::Dump(Digest::of(&dump.bytes())) });
            backups += 1;
        }
        t_backup += t0.elapsed();

        if !(slot + 1).is_multiple_of(SLOTS_PER_DAY) && slot + 1 != slots {
            continue;
        }
        // End of a simulated day: forget by policy, then prune.
        let day = day + 1;
        let t0 = Instant::now();
        let snaps = repo.snapshots().unwrap();
        let infos: Vec<SnapshotInfo> = snaps
            .iter()
            .map(|(_, s)| SnapshotInfo {
                time: s.time,
                host: s.host.clone(),
                paths: s.paths.clone(),
                tags: s.tags.clone(),
            })
            .collect();
        let plan = RetentionPlan::compute(&infos, &policy, &GroupBy::default());
        assert!(plan.groups.len() <= 2, "one group for the tree, one for the dump");
        for i in plan.forget_indices() {
            let id = snaps[i].0;
            repo.store().delete(&ObjectKey::new(ObjectKind::Snapshot, id.0)).unwrap();
            assert!(kept.remove(&id).is_some(), "forgot {id}, which this test never made or already forgot");
            forgotten += 1;
        }
        // The model, from the times recorded here, must agree with what the repository holds.
        let mut model = BTreeSet::new();
        for group in ["tree", "dump"] {
            let members: Vec<(Timestamp, SnapshotId)> =
                kept.iter().filter(|(_, k)| k.group == group).map(|(id, k)| (k.time, *id)).collect();
            model.extend(model_keep(&members));
        }
        let in_repo: BTreeSet<SnapshotId> = repo.snapshots().unwrap().into_iter().map(|(id, _)| id).collect();
        let recorded: BTreeSet<SnapshotId> = kept.keys().copied().collect();
        assert_eq!(in_repo, recorded, "day {day}: the repository holds other snapshots than the test recorded");
        if model != recorded {
            let describe = |ids: &BTreeSet<SnapshotId>| -> Vec<String> {
                ids.iter().map(|id| kept.get(id).map_or(id.short(), |k| format!("{} {}", k.group, k.time))).collect()
            };
            panic!(
                "day {day}: tier policy kept {:?} that the model forgets; the model keeps {:?} that it forgot",
                describe(&recorded.difference(&model).copied().collect()),
                model.difference(&recorded).map(|id| id.short()).collect::<Vec<_>>(),
            );
        }
        let stats = prune_now(&repo);
        prune_totals.packs_repacked += stats.packs_repacked;
        prune_totals.packs_deleted += stats.packs_deleted;
        prune_totals.bytes_freed += stats.bytes_freed;
        prune_totals.packs_resurrected += stats.packs_resurrected;
        t_prune += t0.elapsed();

        if CHECKPOINT_DAYS.contains(&day) && slot + 1 != slots {
            let t0 = Instant::now();
            // A fresh handle, as the next cron run would open it.
            repo = Repository::open(store.clone(), PASSWORD).unwrap();
            restore_all(&repo, &kept, &source_root, &scratch);
            let report = check::run(&repo, ReadData::None).unwrap();
            assert!(report.ok(), "day {day}: check found {:?}", report.problems);
            t_restore += t0.elapsed();
        }
    }

    // The end: everything kept restores exactly.
    let t0 = Instant::now();
    repo = Repository::open(store.clone(), PASSWORD).unwrap();
    restore_all(&repo, &kept, &source_root, &scratch);
    t_restore += t0.elapsed();
    let per_group = |g: &str| kept.values().filter(|k| k.group == g).count();
    // 4 six-hourly + 6 more daily + about 4 weekly + 12 monthly at most, per group.
    for g in ["tree", "dump"] {
        assert!(per_group(g) <= 4 + 7 + 5 + 13, "{g}: {} snapshots kept", per_group(g));
    }

    // Sweep everything marked, then compare the packs with what the kept snapshots need. Prune
    // measures the unused share before it repacks, so the state is judged once a prune finds
    // nothing more to do (marking nothing, it also leaves no garbage behind).
    let mut last: Vec<PruneStats> = Vec::new();
    loop {
        let stats = prune_now(&repo);
        let settled = stats.packs_repacked == 0 && stats.packs_marked == 0;
        last.push(stats);
        if settled && last.len() >= 2 {
            break;
        }
        assert!(last.len() < 8, "prune does not settle on unchanged snapshots: {last:?}");
    }
    let index_files = repo.index_files().unwrap();
    let index = repo.load_index().unwrap();
    let used = referenced_blobs(&repo);
    // Trees are stored twice (FORMAT.md §10): both copies are needed.
    let need_sealed: u64 = used
        .iter()
        .map(|id| {
            let e = index.get(id).unwrap_or_else(|| panic!("used blob {id} is not indexed"));
            let copies = if e.kind() == BlobKind::Tree { 2 } else { 1 };
            u64::from(e.length) * copies
        })
        .sum();
    let mut indexed: HashMap<PackId, u64> = HashMap::new();
    for (_, f) in &index_files {
        for p in &f.packs {
            indexed.entry(p.id).or_insert(p.entries.len() as u64);
        }
    }
    let listed: Vec<(PackId, u64)> =
        store.list(ObjectKind::Pack).unwrap().into_iter().map(|i| (PackId(i.key.id), i.size)).collect();
    let total: u64 = listed.iter().map(|(_, s)| s).sum();
    // Marked by the last prune and not yet swept: packs no index names.
    let garbage: u64 = listed.iter().filter(|(id, _)| !indexed.contains_key(id)).map(|(_, s)| s).sum();
    let kept_packs = listed.len() as u64 - listed.iter().filter(|(id, _)| !indexed.contains_key(id)).count() as u64;
    let headers: u64 = listed
        .iter()
        .filter_map(|(id, _)| indexed.get(id))
        .map(|entries| PACK_SALT + SEAL_OVERHEAD + 5 + ENTRY_LEN * entries + 4)
        .sum();
    let need = need_sealed + headers;
    let unused = total - garbage - need;
    eprintln!(
        "chain: {slots} slots, {backups} backups, {forgotten} forgotten, {} kept ({} tree, {} dump); \
         prunes repacked {} packs, deleted {} ({} bytes), resurrected {}; \
         end: {kept_packs} packs, {total} bytes = {need_sealed} blob bytes needed + {headers} header bytes + \
         {unused} unused ({:.2}%) + {garbage} garbage; last prunes {last:?}; \
         times: backup {t_backup:.1?}, forget+prune {t_prune:.1?}, restore {t_restore:.1?}",
        kept.len(),
        per_group("tree"),
        per_group("dump"),
        prune_totals.packs_repacked,
        prune_totals.packs_deleted,
        prune_totals.bytes_freed,
        prune_totals.packs_resurrected,
        unused as f64 * 100.0 / total as f64,
    );
    assert!(prune_totals.packs_repacked > 0, "the chain is meant to exercise repacking");
    assert_eq!(garbage, 0, "two prunes with no grace period sweep everything marked");
    assert!(
        total <= need + garbage + (MAX_UNUSED * total as f64) as u64,
        "packs hold {total} bytes: more than the {need} bytes the kept snapshots need plus the {}% unused share \
         plus {garbage} bytes of garbage",
        MAX_UNUSED * 100.0
    );

    let t0 = Instant::now();
    let report = check::run(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "check --read-data found {:?}", report.problems);
    assert!(report.unindexed_packs.is_empty(), "unindexed packs left: {:?}", report.unindexed_packs);
    assert_eq!(report.snapshots as usize, kept.len());
    eprintln!("check --read-data {:.1?}; whole test {:.1?}", t0.elapsed(), started.elapsed());
}

/// Store options that create a missing repository directory, as `init` does.
fn creating() -> cairn_core::store::object_store::BackendOptions {
    cairn_core::store::object_store::BackendOptions { create: true, ..Default::default() }
}
