//! `cairn-bench index`: how long `cairn` takes to open a repository whose index names many
//! blobs, how much memory it takes, and where the time goes.
//!
//! Issue 4's target: an index of 10 million blobs opens in under 2 s within 600 MB RSS.
//!
//! 1. An empty repository: `cairn backup --stdin` of nothing, the baseline (process start,
//!    argon2id key derivation, an empty backup).
//! 2. A repository whose index objects name `--blobs` made-up blobs (`--per-pack` blobs per
//!    pack, `--per-object` blobs per index object), written through `cairn-core` in parallel.
//! 3. `cairn backup --stdin` of nothing into it (which loads the whole index): once with no
//!    index table in the local cache (it decodes every index object and writes the table), then
//!    again (it maps the table); and `cairn snapshots` (which loads no index); each timed with
//!    peak RSS by [`crate::measure`].
//! 4. The same steps inside this process, one at a time, to split the cost: key derivation,
//!    listing, fetching, hashing, decrypting, decoding, building and sorting the table; then
//!    [`Repository::load_index`] as the commands run it, and lookups in the loaded index.
//!
//! ```text
//! cargo build --release -p cairn-cli --features testing
//! cargo run --release -p cairn-bench -- index --blobs 10000000
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use cairn_core::Repository;
use cairn_core::advanced::compress::Codec;
use cairn_core::format::blob::BlobKind;
use cairn_core::format::pack::{PackEntry, PackSeal};
use cairn_core::id::{BlobId, Digest, IndexId, PackId};
use cairn_core::store::ObjectKind;
use cairn_core::store::object_store::{BackendOptions, ObjectStoreBackend};
use cairn_core::{
    advanced::index::Index,
    format::index::{INDEX_AAD, IndexFile, IndexedPack},
};
use rayon::prelude::*;

use crate::measure::{self, Input, Usage};
use crate::rng::Rng;
use crate::tools::{Kind, Tool, version_of};

/// What to build and measure.
#[derive(Debug, Clone)]
pub struct IndexBenchOptions {
    /// Blobs the index names.
    pub blobs: u64,
    /// Blobs per index object (a backup checkpoint names 32 packs, about 2 000 blobs; prune
    /// writes objects of up to 4 096 packs).
    pub per_object: u64,
    /// Blobs per pack (a 16 MiB pack of 256 KiB chunks holds 64).
    pub per_pack: u64,
    /// The `cairn` binary.
    pub cairn: PathBuf,
    /// Work directory.
    pub work: PathBuf,
    /// Runs of each command (the best is reported, with every run's figures).
    pub repeat: usize,
    /// Skip the in-process breakdown.
    pub no_breakdown: bool,
}

const PASSWORD: &[u8] = b"benchmark-password-not-secret";

/// Runs the measurement and prints the figures on stdout.
///
/// # Errors
/// A failing command, or I/O.
pub fn run(o: &IndexBenchOptions) -> Result<()> {
    std::fs::create_dir_all(&o.work)?;
    let logs = o.work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let version = version_of(&o.cairn, Kind::Cairn);
    println!("cairn: {} ({version})", o.cairn.display());
    println!(
        "index: {} blobs, {} per pack, {} per index object; load average {:.2}",
        o.blobs,
        o.per_pack,
        o.per_object,
        crate::machine::load_average()
    );

    let empty_dir = o.work.join("empty");
    let _ = std::fs::remove_dir_all(&empty_dir);
    let mut empty = Tool::new(Kind::Cairn, o.cairn.clone(), version.clone(), &empty_dir);
    for job in empty.init() {
        measure::run(&job, &logs.join("empty-init.log"))?;
    }
    let baseline = best(o.repeat, || measure::run(&empty.backup_stdin("empty", Input::Null), &logs.join("empty.log")))?;
    report("backup --stdin, empty repository", &baseline);

    let dir = o.work.join("index");
    let mut tool = Tool::new(Kind::Cairn, o.cairn.clone(), version, &dir);
    if tool.repo.join("config").exists() {
        println!("reusing the repository in {}", tool.repo.display());
    } else {
        for job in tool.init() {
            measure::run(&job, &logs.join("index-init.log"))?;
        }
        let t = Instant::now();
        let stored = fill(&tool.repo, o)?;
        println!(
            "wrote {} blobs in {:.1} s ({:.1} MiB of index objects)",
            o.blobs,
            t.elapsed().as_secs_f64(),
            stored as f64 / f64::from(1 << 20)
        );
    }
    let snapshots = best(o.repeat, || {
        let mut job = tool.backup_stdin("empty", Input::Null);
        // `cairn -r REPO snapshots -q`: the same process start and key derivation, no index.
        job.argv.truncate(3);
        job.argv.push("snapshots".into());
        measure::run(&job, &logs.join("snapshots.log"))
    })?;
    report("snapshots (no index load)", &snapshots);
    // The first open decodes every index object and writes the cache's table (FORMAT.md §11a);
    // the later ones map it.
    let _ = std::fs::remove_dir_all(tool.home.join(".cache/cairn/index"));
    let first = measure::run(&tool.backup_stdin("empty", Input::Null), &logs.join("first.log"))?;
    report(&format!("backup --stdin, index of {} blobs, first open", o.blobs), &first);
    let loaded = best(o.repeat, || measure::run(&tool.backup_stdin("empty", Input::Null), &logs.join("loaded.log")))?;
    report(&format!("backup --stdin, index of {} blobs, mapped", o.blobs), &loaded);
    println!(
        "index load in the backup: +{:.2} s, +{:.0} MiB over the empty repository",
        loaded.wall - baseline.wall,
        (loaded.max_rss_kib as f64 - baseline.max_rss_kib as f64) / 1024.0
    );

    if !o.no_breakdown {
        breakdown(&tool.repo)?;
    }
    println!("load average {:.2}", crate::machine::load_average());
    Ok(())
}

/// Runs `f` `n` times and keeps the fastest run (peak RSS is the largest seen).
fn best(n: usize, mut f: impl FnMut() -> Result<Usage>) -> Result<Usage> {
    let mut all = Vec::new();
    for _ in 0..n.max(1) {
        all.push(f()?);
    }
    let walls: Vec<String> = all.iter().map(|u| format!("{:.2}", u.wall)).collect();
    let rss: Vec<String> = all.iter().map(|u| format!("{:.0}", u.max_rss_kib as f64 / 1024.0)).collect();
    println!("  runs: wall {} s; peak RSS {} MiB", walls.join(" "), rss.join(" "));
    let mut b = *all.iter().min_by(|a, b| a.wall.total_cmp(&b.wall)).context("no run")?;
    b.max_rss_kib = all.iter().map(|u| u.max_rss_kib).max().unwrap_or(0);
    Ok(b)
}

fn report(what: &str, u: &Usage) {
    println!(
        "{what:45} {:6.2} s wall, {:6.2} s cpu, peak RSS {:6.0} MiB",
        u.wall,
        u.cpu(),
        u.max_rss_kib as f64 / 1024.0
    );
}

fn open(repo_dir: &Path) -> Result<Repository> {
    let store = Arc::new(
        ObjectStoreBackend::open(&repo_dir.to_string_lossy(), &BackendOptions::default())
            .map_err(|e| anyhow!("{e}"))?,
    );
    Repository::open(store, PASSWORD).map_err(|e| anyhow!("{e}"))
}

/// Writes index objects naming `o.blobs` made-up blobs, in parallel; returns the bytes stored.
fn fill(repo_dir: &Path, o: &IndexBenchOptions) -> Result<u64> {
    fill_index(repo_dir, o.blobs, o.per_object, o.per_pack)
}

/// Writes index objects naming `blobs` made-up blobs (`per_pack` to a pack, `per_object` to an
/// index object) into the repository at `repo_dir`, through the library, in parallel; returns
/// the bytes stored. The harness's index-open figure uses it too.
///
/// # Errors
/// Opening the repository or saving an index object.
pub fn fill_index(repo_dir: &Path, blobs: u64, per_object: u64, per_pack: u64) -> Result<u64> {
    let repo = open(repo_dir)?;
    let per_object = per_object.max(1);
    let per_pack = per_pack.max(1);
    let objects = blobs.div_ceil(per_object);
    let sizes: Vec<u64> = (0..objects)
        .into_par_iter()
        .map(|k| {
            let mut rng = Rng::derive(99, &[k]);
            let mut digest = || {
                let mut d = [0u8; 32];
                rng.fill(&mut d);
                Digest(d)
            };
            let in_object = per_object.min(blobs - k * per_object);
            let mut packs = Vec::new();
            let mut n = 0;
            while n < in_object {
                let in_pack = per_pack.min(in_object - n);
                let entries = (0..in_pack)
                    .map(|i| PackEntry {
                        kind: if i == 0 { BlobKind::Tree } else { BlobKind::Data },
                        codec: Codec::Zstd,
                        id: BlobId(digest()),
                        offset: 16 + (i as u32) * (256 << 10),
                        length: 200 << 10,
                        raw_len: 256 << 10,
                    })
                    .collect();
                packs.push(IndexedPack { id: PackId(digest()), seal: PackSeal::salted([7; 16]), entries });
                n += in_pack;
            }
            let file = IndexFile { supersedes: vec![], packs };
            let sealed_len = (file.encode().len() + 44) as u64;
            repo.save_index(&file).map_err(|e| anyhow!("{e}"))?;
            Ok(sealed_len)
        })
        .collect::<Result<_>>()?;
    Ok(sizes.iter().sum())
}

fn secs(d: Duration) -> String {
    format!("{:6.3} s", d.as_secs_f64())
}

/// Each step of loading the index, timed alone in this process, one object at a time.
fn breakdown(repo_dir: &Path) -> Result<()> {
    println!("breakdown (in this process; fetch/hash/decrypt/decode one object at a time, one thread):");
    let t = Instant::now();
    let repo = open(repo_dir)?;
    println!("  open (config, argon2id key derivation) {}", secs(t.elapsed()));
    let t = Instant::now();
    let infos = repo.store().list(ObjectKind::Index).map_err(|e| anyhow!("{e}"))?;
    println!("  list {} index objects            {}", infos.len(), secs(t.elapsed()));
    let (mut fetch, mut hash, mut decrypt, mut decode, mut add) = Default::default();
    let mut index = Index::default();
    let mut bytes = 0u64;
    for info in &infos {
        let t = Instant::now();
        let data = repo.store().get(&info.key).map_err(|e| anyhow!("{e}"))?;
        fetch += t.elapsed();
        bytes += data.len() as u64;
        let t = Instant::now();
        let ok = Digest::of(&data) == info.key.id;
        hash += t.elapsed();
        anyhow::ensure!(ok, "index {} does not match its name", info.key);
        let t = Instant::now();
        let plain = repo.master().open_object(&data, INDEX_AAD).map_err(|e| anyhow!("{e}"))?;
        decrypt += t.elapsed();
        drop(data);
        let t = Instant::now();
        let file = IndexFile::decode(&plain).map_err(|e| anyhow!("index {}: {e}", IndexId(info.key.id)))?;
        decode += t.elapsed();
        drop(plain);
        let t = Instant::now();
        index.add_file(&file);
        add += t.elapsed();
    }
    let mib = bytes as f64 / f64::from(1 << 20);
    let rate = |d: Duration| mib / d.as_secs_f64().max(1e-9);
    println!("  fetch {mib:.0} MiB                          {} ({:.0} MiB/s)", secs(fetch), rate(fetch));
    println!("  verify (BLAKE3 of the stored bytes)    {} ({:.0} MiB/s)", secs(hash), rate(hash));
    println!("  decrypt (AES-256-GCM)                  {} ({:.0} MiB/s)", secs(decrypt), rate(decrypt));
    println!("  decode to IndexFile (old path)         {}", secs(decode));
    println!("  append to the table                    {}", secs(add));
    let t = Instant::now();
    index.finalize();
    println!("  sort + dedup {} entries          {}", index.len(), secs(t.elapsed()));
    let mut sample: Vec<BlobId> = index.entries().step_by((index.len() / 1_000_000).max(1)).map(|e| e.id).collect();
    // In random order, as a backup meets them (sorted lookups would share cache lines).
    let mut rng = Rng::new(3);
    for i in (1..sample.len()).rev() {
        sample.swap(i, rng.below(i as u64 + 1) as usize);
    }
    drop(index);

    for run in 0..2 {
        let t = Instant::now();
        let index = repo.load_index().map_err(|e| anyhow!("{e}"))?;
        println!("  Repository::load_index (as the commands run it, run {}) {}", run + 1, secs(t.elapsed()));
        if run == 1 {
            lookups(&index, &sample);
        }
    }
    Ok(())
}

/// Lookups of blobs the index has and of blobs it lacks, single-threaded.
fn lookups(index: &Index, present: &[BlobId]) {
    let t = Instant::now();
    let found = present.iter().filter(|id| index.contains(id)).count();
    let hit = t.elapsed();
    let mut rng = Rng::new(5);
    let absent: Vec<BlobId> = (0..present.len())
        .map(|_| {
            let mut d = [0u8; 32];
            rng.fill(&mut d);
            BlobId(Digest(d))
        })
        .collect();
    let t = Instant::now();
    let missing = absent.iter().filter(|id| !index.contains(id)).count();
    let miss = t.elapsed();
    let ns = |d: Duration| d.as_secs_f64() * 1e9 / present.len().max(1) as f64;
    println!(
        "  lookups: {:.0} ns per hit ({found}/{} found), {:.0} ns per miss ({missing}/{} absent)",
        ns(hit),
        present.len(),
        ns(miss),
        absent.len()
    );
}
