#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script and nothing else).
# Installs and starts what the tests need (PostgreSQL for real dumps, SeaweedFS for S3,
# Chromium to render the HTML report, cargo-fuzz), on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "API documentation of cairn-core (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -p cairn-core --no-deps

step "PostgreSQL for real dump tests, SeaweedFS for S3 tests (127.0.0.1 only)"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/s3.sh
source scripts/s3.sh
# shellcheck source=scripts/azurite.sh
source scripts/azurite.sh
# shellcheck source=scripts/webdav.sh
source scripts/webdav.sh
# shellcheck source=scripts/chromium.sh
source scripts/chromium.sh
trap 'rc=$?; stop_postgres; stop_s3; stop_azurite; stop_webdav; exit $rc' EXIT
start_postgres || echo "PostgreSQL unavailable: the pg_dump tests will fail loudly"
start_s3 || echo "SeaweedFS unavailable: the S3 tests will fail loudly"
start_azurite || echo "Azurite unavailable: the az:// tests will fail loudly"
start_webdav || echo "rclone WebDAV unavailable: the http:// tests will fail loudly"
ensure_chromium || echo "Chromium unavailable: the report rendering test will fail loudly"

step "unit, property and end-to-end tests"
cargo test --workspace --no-fail-fast

step "examples of cairn-core, each as an embedder runs it (the S3 one against SeaweedFS)"
examples_cache=$(mktemp -d)
for example in stream_backup retention s3_backup; do
    cargo run -q -p cairn-core --example "$example"
done
CAIRN_EXAMPLE_REPOSITORY="s3://$S3_TEST_BUCKET/examples-$$" AWS_ACCESS_KEY_ID="$S3_TEST_KEY" \
    AWS_SECRET_ACCESS_KEY="$S3_TEST_SECRET" AWS_REGION="$S3_TEST_REGION" AWS_ENDPOINT_URL="$S3_TEST_ENDPOINT" \
    XDG_CACHE_HOME="$examples_cache" cargo run -q -p cairn-core --example s3_backup
rm -rf "$examples_cache"

step "benchmark suite, once on tiny inputs (no timing asserted)"
scripts/bench.sh --no-peers

step "fuzz targets, each for a bounded time (FUZZ_SECONDS, default 10 here)"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" scripts/fuzz.sh
