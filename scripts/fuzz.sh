#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECONDS each (default 20), starting from a copy of
# the committed seed corpus so a run never grows fuzz/corpus/. Fails if any target crashes,
# panics, trips a property assertion, leaks past libFuzzer's limits or fails to build.
#
#   scripts/fuzz.sh                    # all targets
#   scripts/fuzz.sh tree index         # some targets
#   FUZZ_SECONDS=300 scripts/fuzz.sh   # longer runs
#
# cargo-fuzz needs nightly-only rustc flags (sanitizers, coverage instrumentation); the
# machine's stable toolchain accepts them with RUSTC_BOOTSTRAP=1. A crash leaves its input in
# fuzz/artifacts/<target>/ (gitignored); replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-…
# and turn it into a `fuzz_<target>_…` unit test in the core module (STYLE.md §2.7).
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# One build for all targets, with overflow checks and debug assertions on (-a); the runs below
# use the same flags, so they only start the binaries.
cargo fuzz build -a

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
    corpus="$work/$target"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$target" ]; then
        cp fuzz/corpus/"$target"/seed-* "$corpus"/ 2>/dev/null || true
    fi
    echo "fuzz: $target for ${seconds}s" >&2
    # -malloc_limit_mb: no single allocation may exceed 64 MiB (every target caps its claimed
    # sizes far below that), so a decoder that trusts a hostile length fails here.
    if ! cargo fuzz run -a "$target" "$corpus" -- \
        -max_total_time="$seconds" -malloc_limit_mb=64 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$target.log" 2>&1; then
        failed+=("$target")
        echo "fuzz: $target FAILED; last lines of its log:" >&2
        tail -n 40 "$work/$target.log" >&2
    else
        grep -E '^stat::number_of_executed_units|^Done ' "$work/$target.log" | sed "s/^/fuzz: $target: /" >&2 || true
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
    exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
