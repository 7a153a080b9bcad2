//! `cairn-bench`: generate datasets, measure the pipeline stages, and run the end-to-end
//! comparison that writes `docs/BENCHMARKS.md`. See the library's documentation for what each
//! part measures.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_bench::dataset::{self, media, sql, tree};
use cairn_bench::harness::{self, Options, human};
use cairn_bench::stages::{self, DataKind};
use cairn_bench::tools::Kind;
use cairn_bench::{measure, report};
use clap::{Parser, Subcommand};

/// Cairn's benchmark suite.
#[derive(Parser, Debug)]
#[command(name = "cairn-bench", max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the end-to-end comparison and write the report.
    Run(Box<RunArgs>),
    /// Measure each pipeline stage and print the pipeline limit.
    Limit(LimitArgs),
    /// Write a dataset.
    #[command(subcommand)]
    Gen(Gen),
    /// Measure opening a repository whose index names many blobs (time, peak RSS, breakdown).
    Index(IndexArgs),
    /// Run a command and write its wall time, CPU time and peak RSS as JSON (used by `run`).
    #[command(hide = true)]
    Measure {
        /// Where to write the result.
        #[arg(long)]
        out: PathBuf,
        /// The command.
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Base size: the day-0 dump and the media library are this size, the tree 1.5× with
    /// 30,000 files per GiB, the memory-flatness stream N is this size (and 10 N).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Days in the dump series.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Override the dump size.
    #[arg(long, value_parser = parse_size)]
    dump_size: Option<u64>,
    /// Override the media size.
    #[arg(long, value_parser = parse_size)]
    media_size: Option<u64>,
    /// Override the tree size.
    #[arg(long, value_parser = parse_size)]
    tree_size: Option<u64>,
    /// Override the tree's file count.
    #[arg(long)]
    tree_files: Option<usize>,
    /// Override N of the memory-flatness run (0 skips it).
    #[arg(long, value_parser = parse_size)]
    rss_size: Option<u64>,
    /// Factor of the memory-flatness run.
    #[arg(long, default_value_t = 10)]
    rss_factor: u64,
    /// Blobs in the index-open run (0 skips it).
    #[arg(long, default_value_t = 10_000_000)]
    index_blobs: u64,
    /// Milliseconds added to every store request in the latency figure (0 skips it).
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Object storage: the media library backed up to and restored from S3 (default: the media
    /// size; 0 skips the section).
    #[arg(long, value_parser = parse_size)]
    s3_size: Option<u64>,
    /// Object storage: the library of the latency runs (default: a quarter of --s3-size).
    #[arg(long, value_parser = parse_size)]
    s3_delayed_size: Option<u64>,
    /// Object storage: round trips the proxy adds, in ms, comma-separated (0 alone: none).
    #[arg(long, value_delimiter = ',', default_value = "20,80")]
    s3_latency_ms: Vec<u64>,
    /// Object storage: the single large file (default: --s3-size; 0 skips it).
    #[arg(long, value_parser = parse_size)]
    s3_file_size: Option<u64>,
    /// Object storage: the SeaweedFS binary to start a server from when S3_TEST_ENDPOINT names
    /// none (default: ~/.cache/cairn-ci/s3-venv/bin/weed, where scripts/s3.sh installs it).
    #[arg(long)]
    weed: Option<PathBuf>,
    /// Datasets, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "dump,media,tree,system,pgbench,pgbench-text")]
    datasets: Vec<String>,
    /// PostgreSQL server for the `pgbench` and `pgbench-text` datasets: host or socket directory
    /// (default: CAIRN_TEST_PG_HOST, which scripts/pg.sh sets; without either, they are not
    /// measured).
    #[arg(long, env = "CAIRN_TEST_PG_HOST")]
    pg_host: Option<String>,
    /// Its port.
    #[arg(long, env = "CAIRN_TEST_PG_PORT", default_value_t = 5432)]
    pg_port: u16,
    /// Its user, who may create databases.
    #[arg(long, default_value = "postgres")]
    pg_user: String,
    /// Where its client programs are (pgbench, pg_dump, psql, createdb, dropdb).
    #[arg(long, env = "CAIRN_TEST_PG_BIN", default_value = "/usr/bin")]
    pg_bin: PathBuf,
    /// Seconds of pgbench between the two dumps of each `pgbench` dataset.
    #[arg(long, default_value_t = 10)]
    pgbench_seconds: u64,
    /// What the `system` dataset copies and backs up: real files of this machine.
    #[arg(long, default_value = "/usr/share")]
    system_root: PathBuf,
    /// Peers to compare with when installed, comma-separated (restic, borg, rustic, bupstash).
    #[arg(long, value_delimiter = ',', default_value = "restic,borg,rustic,bupstash")]
    peers: Vec<String>,
    /// Compare with no peer.
    #[arg(long)]
    no_peers: bool,
    /// The cairn binary.
    #[arg(long, default_value = "target/release/cairn")]
    cairn: PathBuf,
    /// Work directory (default: a new directory under the system's temp directory).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Keep the work directory (datasets, repositories, logs).
    #[arg(long)]
    keep: bool,
    /// Dataset seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stage sample size.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    stage_sample: u64,
    /// Minimum milliseconds per stage measurement.
    #[arg(long, default_value_t = 1500)]
    stage_ms: u64,
    /// Write the report here (it is printed to stdout otherwise).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only the report.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct IndexArgs {
    /// Blobs in the index.
    #[arg(long, default_value_t = 10_000_000)]
    blobs: u64,
    /// Blobs per index object.
    #[arg(long, default_value_t = 1_000_000)]
    per_object: u64,
    /// Blobs per pack.
    #[arg(long, default_value_t = 64)]
    per_pack: u64,
    /// The cairn binary.
    #[arg(long, default_value = "target/release/cairn")]
    cairn: PathBuf,
    /// Work directory, kept afterwards; an index repository already in it is reused
    /// (default: a new directory under the system's temp directory, removed afterwards).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Runs of each command.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Skip the in-process breakdown.
    #[arg(long)]
    no_breakdown: bool,
}

#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Sample size.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    sample: u64,
    /// Minimum milliseconds per stage.
    #[arg(long, default_value_t = 500)]
    ms: u64,
    /// Read criterion's results from this directory (`target/criterion`) instead of measuring.
    #[arg(long)]
    criterion: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Gen {
    /// A daily series of SQL dumps: DIR/day-00.sql, day-01.sql, …
    Dump {
        /// Day-0 size.
        #[arg(long, default_value = "64MiB", value_parser = parse_size)]
        size: u64,
        /// Days.
        #[arg(long, default_value_t = 3)]
        days: u32,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        out: PathBuf,
    },
    /// A media library.
    Media {
        /// Size.
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        size: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Turn an existing library (same size and seed) into its next version.
        #[arg(long)]
        mutate: bool,
        /// Output directory.
        out: PathBuf,
    },
    /// A file tree.
    Tree {
        /// Files.
        #[arg(long, default_value_t = 3000)]
        files: usize,
        /// Size.
        #[arg(long, default_value = "150MiB", value_parser = parse_size)]
        size: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Turn an existing tree (same files, size and seed) into its next version.
        #[arg(long)]
        mutate: bool,
        /// Output directory.
        out: PathBuf,
    },
    /// Incompressible bytes to standard output.
    Stream {
        /// Bytes.
        #[arg(long, value_parser = parse_size)]
        bytes: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// `1GiB`, `512MiB`, `100MB`, `64K`, `12345`.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        _ => return Err(format!("`{s}`: unknown unit (use KiB, MiB, GiB, KB, MB, GB)")),
    };
    Ok((n * mult) as u64)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Measure { out, command } => measure::measure_main(&out, &command),
        Command::Gen(g) => generate(g),
        Command::Limit(a) => limit(&a),
        Command::Run(a) => run(*a),
        Command::Index(a) => index(a),
    }
}

fn generate(g: Gen) -> Result<()> {
    match g {
        Gen::Dump { size, days, seed, out } => {
            std::fs::create_dir_all(&out)?;
            let mut db = sql::Database::new(seed, size);
            for day in 0..days {
                if day > 0 {
                    db.advance_day(&sql::DailyChange::default());
                }
                let path = out.join(format!("day-{day:02}.sql"));
                let mut w = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&path)?);
                let n = db.write_dump(&mut w)?;
                w.flush()?;
                eprintln!("{}: {}", path.display(), human(n));
            }
        }
        Gen::Media { size, seed, mutate, out } => {
            let files = if mutate { media::mutate(&out, seed, size)? } else { media::generate(&out, seed, size)? };
            eprintln!("{}: {} files", out.display(), files.len());
        }
        Gen::Tree { files, size, seed, mutate, out } => {
            if mutate {
                let m = tree::mutate(&out, seed, files, size)?;
                eprintln!("{}: {} changed, {} removed, {} added", out.display(), m.changed, m.removed, m.added);
            } else {
                let specs = tree::generate(&out, seed, files, size)?;
                eprintln!("{}: {} files, {}", out.display(), specs.len(), human(harness::dir_size(&out)));
            }
        }
        Gen::Stream { bytes, seed } => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match dataset::random_stream(seed, bytes, &mut lock) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r?,
            }
        }
    }
    Ok(())
}

fn limit(a: &LimitArgs) -> Result<()> {
    let cores = cairn_bench::machine::num_cpus();
    println!("stage rates in GB/s of input per core; limit = 1 / Σ(1/rate) per core, × {cores} cores");
    for kind in [DataKind::Text, DataKind::Random] {
        let t = match &a.criterion {
            Some(dir) => stages::from_criterion(dir, kind).with_context(|| {
                format!(
                    "no criterion results for `{}` under {}: run `cargo bench -p cairn-bench` first",
                    kind.name(),
                    dir.display()
                )
            })?,
            None => stages::measure(kind, usize::try_from(a.sample)?, Duration::from_millis(a.ms)),
        };
        let rates: Vec<String> = t.times.iter().map(|(s, _)| format!("{s} {:.2}", t.rate(s) / 1e9)).collect();
        println!(
            "{:6} (stored/input {:.2}): {}\n       limit {:.0} MB/s per core, {:.0} MB/s on {cores} cores ({:.0} MB/s per core with the whole-file hash)",
            kind.name(),
            t.compression_ratio,
            rates.join(", "),
            t.per_core_limit() / 1e6,
            t.limit(cores) / 1e6,
            t.per_core_engine() / 1e6
        );
    }
    Ok(())
}

fn index(a: IndexArgs) -> Result<()> {
    let work = a
        .work
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cairn-bench-index-{}", std::process::id())));
    let opts = cairn_bench::index_bench::IndexBenchOptions {
        blobs: a.blobs,
        per_object: a.per_object,
        per_pack: a.per_pack,
        cairn: a.cairn,
        work: work.clone(),
        repeat: a.repeat,
        no_breakdown: a.no_breakdown,
    };
    let result = cairn_bench::index_bench::run(&opts);
    if a.work.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run(a: RunArgs) -> Result<()> {
    let peers = if a.no_peers {
        vec![]
    } else {
        a.peers
            .iter()
            .map(|p| match p.as_str() {
                "restic" => Ok(Kind::Restic),
                "borg" => Ok(Kind::Borg),
                "rustic" => Ok(Kind::Rustic),
                "bupstash" => Ok(Kind::Bupstash),
                other => bail!("unknown peer `{other}` (restic, borg, rustic, bupstash)"),
            })
            .collect::<Result<Vec<_>>>()?
    };
    let work = match &a.work {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("cairn-bench-{}", std::process::id())),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let s3_bytes = a.s3_size.unwrap_or(a.media_size.unwrap_or(a.size));
    let s3 = cairn_bench::s3::S3Options {
        bytes: s3_bytes,
        delayed_bytes: a.s3_delayed_size.unwrap_or(s3_bytes / 4),
        delays_ms: a.s3_latency_ms.iter().copied().filter(|&d| d > 0).collect(),
        file_bytes: a.s3_file_size.unwrap_or(s3_bytes),
        weed: a.weed.clone().or_else(cairn_bench::s3::default_weed),
    };
    let opts = Options {
        dump_bytes: a.dump_size.unwrap_or(a.size),
        days: a.days.max(2),
        media_bytes: a.media_size.unwrap_or(a.size),
        tree_files: a.tree_files.unwrap_or(((a.size as f64 / (1u64 << 30) as f64) * 30_000.0).max(100.0) as usize),
        tree_bytes: a.tree_size.unwrap_or(a.size * 3 / 2),
        rss_bytes: a.rss_size.unwrap_or(a.size),
        rss_factor: a.rss_factor.max(1),
        index_blobs: a.index_blobs,
        latency_ms: a.latency_ms,
        datasets: a.datasets.clone(),
        system_root: a.system_root.clone(),
        postgres: a.pg_host.clone().map(|host| cairn_bench::dataset::pgbench::Postgres {
            bin: a.pg_bin.clone(),
            host,
            port: a.pg_port,
            user: a.pg_user.clone(),
        }),
        pgbench_seconds: a.pgbench_seconds,
        peers,
        s3,
        cairn: a.cairn.clone(),
        work: work.clone(),
        keep: a.keep,
        seed: a.seed,
        stage_sample: usize::try_from(a.stage_sample)?,
        stage_time: Duration::from_millis(a.stage_ms),
        command: format!("cargo run --release -p cairn-bench -- {}", args.join(" ")),
        verbose: !a.quiet,
    };
    let result = harness::run(&opts);
    if !a.keep && a.work.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    let results = result?;
    let md = report::markdown(&results);
    match &a.out {
        Some(path) => {
            // A hand-written analysis at the end of the old report is about its figures: keep it,
            // marked as such, for its author to redo against the new ones.
            let old = std::fs::read_to_string(path).unwrap_or_default();
            let md = md + &report::kept_notes(&old);
            std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
            if !a.quiet {
                eprintln!("[cairn-bench] wrote {}", path.display());
            }
        }
        None => print!("{md}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("lots").is_err());
    }
}
