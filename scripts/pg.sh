#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs PostgreSQL if missing, starts a throw-away cluster on
# 127.0.0.1 and exports CAIRN_TEST_PG_DUMP (a pg_dump command line) for the tests.

pg_bin() {
  for d in /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

start_postgres() {
  local bin
  if ! bin=$(pg_bin); then
    echo "installing PostgreSQL from Debian's packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || return 1
    bin=$(pg_bin) || return 1
  fi
  PG_DIR=$(mktemp -d /tmp/cairn-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r -M postgres
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null || return 1
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p 25432 -k $PG_DIR" start >/dev/null || { cat "$PG_DIR/log"; return 1; }
  PG_STOP=("${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -t 20 stop)
  export CAIRN_TEST_PG_HOST=127.0.0.1 CAIRN_TEST_PG_PORT=25432 CAIRN_TEST_PG_BIN="$bin"
  psql_cmd() { "$bin/psql" -h 127.0.0.1 -p 25432 -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
  psql_cmd -c "CREATE DATABASE shop" &&
  psql_cmd -d shop -c "CREATE TABLE customers (id serial primary key, name text, email text, created timestamptz, balance numeric(12,2), profile jsonb);
    INSERT INTO customers (name, email, created, balance, profile)
    SELECT 'name ' || g, 'user' || g || '@example.com', now() - (g || ' minutes')::interval, g * 1.5,
           jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7))
    FROM generate_series(1, 50000) g;" || return 1
  echo "PostgreSQL running on 127.0.0.1:25432 (database shop)"
}

stop_postgres() {
  # A server that has not stopped within pg_ctl's 20 s is killed, so a test run always ends.
  if [ -n "${PG_STOP+x}" ] && ! "${PG_STOP[@]}" >/dev/null 2>&1; then
    local pid
    pid=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null) &&
      { echo "PostgreSQL (pid $pid) did not stop within 20 s: killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  [ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
  return 0
}
