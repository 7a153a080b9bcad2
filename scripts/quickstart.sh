#!/usr/bin/env bash
# Builds cairn and runs a real backup and restore of a directory into a local repository.
# Usage: scripts/quickstart.sh [DIRECTORY]   (default: this source tree)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(realpath "${1:-.}")
cargo build --release -p cairn-cli
cairn=$PWD/target/release/cairn
work=$(mktemp -d /tmp/cairn-quickstart.XXXXXX)
export CAIRN_REPOSITORY="$work/repo" CAIRN_PASSWORD="quickstart-password"
echo "== init $CAIRN_REPOSITORY"; "$cairn" init
echo "== backup $src"; "$cairn" backup --exclude target "$src"
echo "== backup again (unchanged files are not read)"; "$cairn" backup --exclude target "$src"
echo "== snapshots"; "$cairn" snapshots
echo "== restore --verify"; "$cairn" restore latest --target "$work/restore" --verify
echo "== compare"; diff -r --no-dereference --exclude target "$src" "$work/restore$src" && echo "restored tree is identical to $src"
echo "repository and restore left in $work"
