//! Per-stage microbenchmarks: chunk, hash, compress, seal and pack, each on text (a slice of
//! the SQL dump) and on incompressible data, through `cairn-core`'s own types (see
//! `cairn_bench::stages`). Every benchmark processes the same 16 MiB sample, so throughputs
//! are in bytes of input and the stage times add up to the pipeline limit:
//!
//! ```text
//! cargo bench -p cairn-bench
//! cargo run --release -p cairn-bench -- limit --criterion target/criterion
//! ```

use std::hint::black_box;

use cairn_bench::stages::{DataKind, Prepared, SAMPLE_BYTES};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn stages(c: &mut Criterion) {
    // A smaller sample for smoke runs (scripts/bench.sh); `limit --criterion` assumes the default.
    let sample = std::env::var("CAIRN_BENCH_SAMPLE_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(SAMPLE_BYTES);
    for kind in [DataKind::Text, DataKind::Random] {
        let p = Prepared::new(kind, sample);
        let mut g = c.benchmark_group(kind.name());
        g.throughput(Throughput::Bytes(p.data.len() as u64));
        g.sample_size(10);
        g.bench_function("chunk", |b| b.iter(|| black_box(p.chunk())));
        g.bench_function("hash", |b| b.iter(|| black_box(p.hash())));
        g.bench_function("compress", |b| b.iter(|| black_box(p.compress())));
        g.bench_function("seal", |b| b.iter(|| black_box(p.seal())));
        g.bench_function("pack", |b| {
            b.iter_batched(|| p.sealed_blobs(), |blobs| black_box(p.pack(blobs)), BatchSize::PerIteration)
        });
        g.bench_function("file-hash", |b| b.iter(|| black_box(p.file_hash())));
        g.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
