#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs Azurite (Microsoft's Azure Storage emulator, from npm) into
# a cache directory if missing, starts its blob service on 127.0.0.1 only with a temporary data
# directory, creates the test container and exports AZURE_TEST_* for the az:// tests.
# Stopped (and its data removed) by stop_azurite.
# shellcheck source=scripts/stop.sh
source "$(dirname "${BASH_SOURCE[0]}")/stop.sh"

AZURITE_ACCOUNT=devstoreaccount1
# The emulator's documented, public development key (not a secret).
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

start_azurite() {
  AZURITE_DIR="${AZURITE_DIR:-$HOME/.cache/cairn-ci/azurite}"
  local bin="$AZURITE_DIR/node_modules/.bin/azurite-blob"
  if [ ! -x "$bin" ]; then
    command -v npm >/dev/null || { echo "npm is missing: cannot install Azurite"; return 1; }
    mkdir -p "$AZURITE_DIR"
    npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error azurite@3.37.0 || return 1
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  AZURITE_DATA=$(mktemp -d /tmp/cairn-azurite.XXXXXX)
  "$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$AZURITE_DATA" --skipApiVersionCheck \
    --loose --disableTelemetry --silent > "$AZURITE_DATA.log" 2>&1 &
  AZURITE_PID=$!
  export AZURE_TEST_BLOB_URL="http://127.0.0.1:$port" AZURE_TEST_ACCOUNT=$AZURITE_ACCOUNT \
         AZURE_TEST_KEY=$AZURITE_KEY AZURE_TEST_CONTAINER=cairn-ci
  export AZURE_TEST_ENDPOINT="$AZURE_TEST_BLOB_URL/$AZURITE_ACCOUNT"
  for _ in $(seq 1 300); do
    # Any HTTP answer (403 without a signature) means the service is up.
    if curl -s -o /dev/null "$AZURE_TEST_ENDPOINT?comp=list"; then
      azurite_create_container || { echo "creating the Azurite container failed"; return 1; }
      echo "Azurite blob service on $AZURE_TEST_BLOB_URL"; return 0
    fi
    kill -0 "$AZURITE_PID" 2>/dev/null || { echo "azurite died:"; cat "$AZURITE_DATA.log"; return 1; }
    sleep 0.1
  done
  echo "azurite not ready"; cat "$AZURITE_DATA.log"; return 1
}

# Creates the container with one Shared Key signed request (curl cannot sign these itself).
azurite_create_container() {
  python3 - <<'PY'
import base64, hashlib, hmac, os, urllib.error, urllib.request
from email.utils import formatdate
account, key = os.environ["AZURE_TEST_ACCOUNT"], os.environ["AZURE_TEST_KEY"]
container = os.environ["AZURE_TEST_CONTAINER"]
date, version = formatdate(usegmt=True), "2021-08-06"
to_sign = "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n" \
    + f"/{account}/{account}/{container}\nrestype:container"
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"{os.environ['AZURE_TEST_ENDPOINT']}/{container}?restype=container", method="PUT",
    headers={"x-ms-date": date, "x-ms-version": version, "Authorization": f"SharedKey {account}:{sig}"})
try:
    urllib.request.urlopen(req, timeout=5)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: the container is already there
        raise
PY
}

stop_azurite() {
  stop_server Azurite "${AZURITE_PID:-}"
  [ -n "${AZURITE_DATA:-}" ] && rm -rf "$AZURITE_DATA" "$AZURITE_DATA.log"
  return 0
}
