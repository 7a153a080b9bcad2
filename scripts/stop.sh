#!/usr/bin/env bash
# Sourced by the server scripts (s3.sh, azurite.sh, webdav.sh): stops a server they started, in
# bounded time. A server that ignores SIGTERM for 15 s is killed, so a test run always ends (CI
# has a hard time limit, and a server stuck in its shutdown once held a run past it).

# stop_server NAME PID
stop_server() {
  local name=$1 pid=$2 waited=0
  [ -n "$pid" ] || return 0
  # `|| true` on each: test.sh runs with errexit, and a server killed by a signal waits with 143.
  kill "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  while server_alive "$pid"; do
    if [ "$waited" -ge 150 ]; then
      echo "$name (pid $pid) did not stop within 15 s of SIGTERM: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  wait "$pid" 2>/dev/null || true
  return 0
}

# Alive and not a zombie waiting to be reaped.
server_alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
