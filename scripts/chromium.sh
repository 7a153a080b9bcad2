#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs Chromium from Debian's packages if missing, so the
# report test can render `cairn report`'s HTML headless, and exports CAIRN_TEST_CHROMIUM.

ensure_chromium() {
  local bin
  bin=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$bin" ]; then
    echo "installing Chromium from Debian's packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || return 1
    bin=$(command -v chromium) || return 1
  fi
  export CAIRN_TEST_CHROMIUM="$bin"
  echo "Chromium at $bin"
}
