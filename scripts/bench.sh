#!/usr/bin/env bash
# Runs Cairn's benchmark suite once on tiny inputs, so it never rots: the dataset generators,
# the per-stage criterion benches (one iteration each), the pipeline-limit figure and the
# end-to-end harness (with restic/borg/rustic/bupstash too when they are installed). It asserts that
# everything runs and that the report is written, never any timing. Takes seconds once built.
#
# The real figures come from `cargo run --release -p cairn-bench -- run --out docs/BENCHMARKS.md`
# (see docs/BENCHMARKS.md for the exact command and scale).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
Usage: scripts/bench.sh [--no-peers] [--keep] [--help]

Smoke-runs the benchmark suite on tiny inputs (debug builds, a few MiB of data):
  1. criterion stage benches in test mode (each benchmark once),
  2. `cairn-bench limit` (pipeline limit from the stage rates),
  3. `cairn-bench run` end to end: dump series, media, tree, a copy of core/src as real files,
     real pg_dump output of pgbench, with blank and with row-specific filler (with
     CAIRN_TEST_PG_HOST, as scripts/test.sh sets it);
     memory flatness; index open; object storage (a few MiB to S3 and back, directly and with
     20 ms round trips, and one file) against the server S3_TEST_* name (as scripts/test.sh
     exports them while its SeaweedFS runs), else one it starts from
     ~/.cache/cairn-ci/s3-venv/bin/weed, else the report says it was not measured;
     writes the report to a temporary file and checks it has its sections.
No timing is asserted. Peers (restic, borg, rustic, bupstash) are included when on PATH.

  --no-peers  run cairn only, even when peers are installed
  --keep      keep the work directory (datasets, repositories, logs, report)
  --help      this text
USAGE
}

peers=()
extra=()
keep=0
for arg in "$@"; do
    case "$arg" in
        --help | -h) usage; exit 0 ;;
        --no-peers) peers=(--no-peers) ;;
        --keep) keep=1; extra=(--keep) ;;
        *) echo "bench.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-smoke.XXXXXX")
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; else echo "kept $work"; fi; }
trap cleanup EXIT

step() { printf '\n== bench: %s\n' "$*"; }

step "build (debug)"
cargo build -q -p cairn-cli -p cairn-bench --features cairn-cli/testing

step "stage benches, one iteration each"
CAIRN_BENCH_SAMPLE_BYTES=$((1 << 20)) cargo test -q -p cairn-bench --benches

step "pipeline limit"
bin="${CARGO_TARGET_DIR:-target}/debug"
"$bin/cairn-bench" limit --sample 1MiB --ms 0

step "end-to-end harness on tiny inputs"
"$bin/cairn-bench" run "${peers[@]}" \
    --cairn "$bin/cairn" --work "$work/run" \
    --size 2MiB --days 2 --tree-files 100 --rss-size 1MiB --rss-factor 3 --index-blobs 20000 \
    --system-root core/src --pgbench-seconds 1 \
    --s3-size 4MiB --s3-delayed-size 1MiB --s3-latency-ms 20 --s3-file-size 4MiB \
    --stage-sample 1MiB --stage-ms 0 --out "$work/BENCHMARKS.md" "${extra[@]}"
for section in "## Machine and load" "## Pipeline limit" "## Results" "### dump" "### media" "### tree" "### system" "## Latency" "## The restore's limit: writing files" "## Object storage (SeaweedFS on this machine)" "## Targets (issues 4 and 5)" "initial (policy run)"; do
    grep -qF "$section" "$work/BENCHMARKS.md" || { echo "bench.sh: the report lacks '$section'" >&2; exit 1; }
done
# With the server scripts/test.sh starts, the real pg_dump datasets run too.
if [ -n "${CAIRN_TEST_PG_HOST:-}" ]; then
    for dataset in pgbench pgbench-text; do
        grep -qxF "### $dataset" "$work/BENCHMARKS.md" || { echo "bench.sh: the report lacks the $dataset dataset" >&2; exit 1; }
    done
fi
# With an S3 server (the tests' one, or SeaweedFS installed where scripts/s3.sh puts it), the
# object storage section is measured, not just mentioned.
if [ -n "${S3_TEST_ENDPOINT:-}" ] || [ -x "$HOME/.cache/cairn-ci/s3-venv/bin/weed" ]; then
    for row in "### The media library" "| 0 ms | restore | cairn |" "| 20 ms | backup | cairn |" "| 20 ms | restore | cairn |" "### One large file"; do
        grep -qF "$row" "$work/BENCHMARKS.md" || { echo "bench.sh: the object storage section lacks '$row'" >&2; exit 1; }
    done
fi
echo "report written and complete: $(wc -l <"$work/BENCHMARKS.md") lines"
