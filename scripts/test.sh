#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script and nothing else).
# Installs and starts what the tests need (PostgreSQL for real dumps, SeaweedFS for S3,
# cargo-fuzz), on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "PostgreSQL for real dump tests, SeaweedFS for S3 tests (127.0.0.1 only)"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/s3.sh
source scripts/s3.sh
# shellcheck source=scripts/azurite.sh
source scripts/azurite.sh
# shellcheck source=scripts/webdav.sh
source scripts/webdav.sh
trap 'rc=$?; stop_postgres; stop_s3; stop_azurite; stop_webdav; exit $rc' EXIT
start_postgres || echo "PostgreSQL unavailable: the pg_dump tests will fail loudly"
start_s3 || echo "SeaweedFS unavailable: the S3 tests will fail loudly"
start_azurite || echo "Azurite unavailable: the az:// tests will fail loudly"
start_webdav || echo "rclone WebDAV unavailable: the http:// tests will fail loudly"

step "unit, property and end-to-end tests"
cargo test --workspace --no-fail-fast

step "benchmark suite, once on tiny inputs (no timing asserted)"
scripts/bench.sh --no-peers

step "fuzz targets, each for a bounded time (FUZZ_SECONDS, default 10 here)"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" scripts/fuzz.sh
