#!/usr/bin/env bash
# Does `cairn pg wal-push` keep up with pgbench running flat out, and what does one WAL
# segment cost?
#
#   sudo DURATION=60 bench/pg-wal.sh > /tmp/pg-wal-bench.md
#
# Run as root (PostgreSQL itself, the repositories and the archive_command run as the user
# postgres, through runuser). Builds nothing: CAIRN is the binary to measure (default
# target/release/cairn of this checkout; build it with `cargo build --release -p cairn-cli`).
# Needs PostgreSQL (initdb, pg_ctl, psql, pgbench in /usr/lib/postgresql/*/bin).
#
# Phase 1: a cluster archiving through `cairn pg wal-push`, `pgbench -i -s $SCALE`, then
#   `pgbench -c 4 -j 2 -T $DURATION` flat out, the archive backlog (pg_wal/archive_status/*.ready)
#   sampled every second, then the time until the backlog is gone.
# Phase 2: $NSEG real 16 MiB segments (copied from the cluster's pg_wal once archived) pushed
#   one call at a time into a fresh repository, timed: with the key cache, with
#   --no-key-cache, and `cp` (with and without fsync) of the same files; `dd` 1 GiB with
#   conv=fdatasync for the disk's sequential write rate.
# Progress goes to standard error, a markdown summary to standard output.
#
# Environment: CAIRN, DURATION (60), SCALE (20), NSEG (30), NOCACHE_RUNS (5),
# CATCHUP_TIMEOUT (600 s), KEEP=1 to keep the scratch directory, PG_CONF: lines added to
# postgresql.conf (e.g. PG_CONF='synchronous_commit = off' for more WAL per second).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAIRN=${CAIRN:-target/release/cairn}
[[ $CAIRN = /* ]] || CAIRN="$ROOT/$CAIRN"
DURATION=${DURATION:-60}
SCALE=${SCALE:-20}
NSEG=${NSEG:-30}
NOCACHE_RUNS=${NOCACHE_RUNS:-5}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-600}
SEG_BYTES=$((16 * 1024 * 1024))

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (PostgreSQL runs as the user postgres through runuser)"
id postgres >/dev/null 2>&1 || die "no user postgres"
[[ -x $CAIRN ]] || die "$CAIRN: no such program (build it: cargo build --release -p cairn-cli)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n $PGBIN && -x $PGBIN/pg_ctl ]] || die "PostgreSQL not found in /usr/lib/postgresql/*/bin"
PGVERSION=$("$PGBIN/postgres" --version)

S=$(mktemp -d /tmp/cairn-pg-wal.XXXXXX)
chmod 755 "$S"
# The key caches live where cairn's default puts them, on a memory file system.
KC_ROOT=$(mktemp -d /dev/shm/cairn-pg-wal.XXXXXX 2>/dev/null || mktemp -d "$S/kc.XXXXXX")
chmod 755 "$KC_ROOT"
SAMPLER=
cleanup() {
  local rc=$?
  set +e
  [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null
  if [[ -f $S/data/postmaster.pid ]]; then
    (cd "$S" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$S/data" -m immediate -w stop >/dev/null 2>&1)
  fi
  rm -rf "$KC_ROOT"
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $S"; else rm -rf "$S"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$S" # runuser keeps the working directory; postgres must be able to enter it
as_pg() { runuser -u postgres -- "$@"; }
# The postgres user must be able to run the binary; if it cannot reach it, use a copy.
if ! as_pg test -x "$CAIRN"; then
  install -m 755 "$CAIRN" "$S/cairn"
  CAIRN=$S/cairn
fi

install -d -o postgres -g postgres -m 700 "$S/data" "$S/log" "$S/repo-parent" "$S/segs" "$S/cp" "$S/cpsync"
install -d -o postgres -g postgres -m 755 "$S/sock"
install -d -o postgres -g postgres -m 700 "$KC_ROOT/archive" "$KC_ROOT/bench"
REPO=$S/repo-parent/repo   # the cluster's archive
REPO2=$S/repo-parent/repo2 # the direct per-segment measurements
PW=$S/pw
head -c 24 /dev/urandom | base64 >"$PW"
chown postgres:postgres "$PW"
chmod 600 "$PW"
cairn_pg() { as_pg "$CAIRN" --password-file "$PW" "$@"; }

psql_q() { as_pg "$PGBIN/psql" -h "$S/sock" -d postgres -XAtq -c "$1"; }
ready_count() {
  local f n=0
  for f in "$S"/data/pg_wal/archive_status/*.ready; do [[ -e $f ]] && n=$((n + 1)); done
  echo "$n"
}
now() { echo "$EPOCHREALTIME"; }
# Processes of other users than postgres using 10 % of a core or more, over one second.
busy_others() {
  top -bn2 -d1 -w 200 | awk '/^top -/ {n++} n == 2 && $1 ~ /^[0-9]+$/ && $2 != "postgres" && $9 + 0 >= 10 {
    printf "%s%s %s%%", sep, $12, $9; sep = ", "}'
}
CLK_TCK=$(getconf CLK_TCK)
# CPU time (ticks) of the machine, busy: user, nice, system, irq, softirq, steal.
cpu_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# CPU time (ticks) of the server: the postmaster and its children, with the children they
# reaped (the archiver reaps its archive_command, the postmaster its exited backends).
pg_ticks() {
  local pm f line rest n=0
  pm=$(head -n 1 "$S/data/postmaster.pid")
  for f in /proc/[0-9]*/stat; do
    line=$(<"$f") 2>/dev/null || continue
    rest=${line##*) }
    read -r -a w <<<"$rest"
    if [[ ${f//[^0-9]/} == "$pm" || ${w[1]} == "$pm" ]]; then n=$((n + w[11] + w[12] + w[13] + w[14])); fi
  done
  echo "$n"
}

# ---------------------------------------------------------------------------------------
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
BUSY_BEFORE=$(busy_others)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "cairn: $CAIRN ($("$CAIRN" --version 2>/dev/null || echo '?')); $PGVERSION; scratch $S"

cairn_pg -r "$REPO" init >/dev/null
cairn_pg -r "$REPO2" init >/dev/null

as_pg "$PGBIN/initdb" -D "$S/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
ARCHIVE_COMMAND="CAIRN_KEY_CACHE=$KC_ROOT/archive $CAIRN -r $REPO --password-file $PW pg wal-push %p"
cat >>"$S/data/postgresql.conf" <<EOF

# bench/pg-wal.sh
listen_addresses = ''
unix_socket_directories = '$S/sock'
wal_level = replica
archive_mode = on
archive_command = '$ARCHIVE_COMMAND'
max_wal_size = 1GB
log_checkpoints = on
${PG_CONF:+$PG_CONF}
EOF
as_pg "$PGBIN/pg_ctl" -D "$S/data" -l "$S/log/server.log" -w start >/dev/null
log "server up; archive_command = '$ARCHIVE_COMMAND'"

wait_backlog_zero() { # seconds to wait; prints seconds waited, or "timeout"
  local t0 t
  t0=$(now)
  while :; do
    [[ $(ready_count) -eq 0 ]] && break
    t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')
    if awk -v t="$t" -v m="$1" 'BEGIN{exit !(t > m)}'; then echo timeout; return; fi
    sleep 0.2
  done
  awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'
}

log "pgbench -i -s $SCALE"
I_LSN0=$(psql_q "select pg_current_wal_lsn()")
I_T0=$(now)
as_pg "$PGBIN/pgbench" -h "$S/sock" -i -s "$SCALE" -q postgres >"$S/pgbench-init.log" 2>&1
I_T1=$(now)
I_WAL=$(psql_q "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$I_LSN0')")
I_CATCHUP=$(wait_backlog_zero "$CATCHUP_TIMEOUT")
log "init: $((I_WAL / 1048576)) MiB of WAL in $(awk -v a="$I_T0" -v b="$I_T1" 'BEGIN{printf "%.1f", b-a}') s; archive caught up $I_CATCHUP s later"
psql_q "checkpoint" >/dev/null

# ---------------------------------------------------------------------------------------
log "pgbench -c 4 -j 2 -T $DURATION, sampling the backlog every second"
read -r A0 F0 < <(psql_q "select archived_count, failed_count from pg_stat_archiver" | tr '|' ' ')
LSN0=$(psql_q "select pg_current_wal_lsn()")
C0=$(cpu_busy)
P0=$(pg_ticks)
T0=$(now)
(sleep $((DURATION / 2)); busy_others >"$S/busy-during") &
(
  while :; do
    printf '%s %s %s\n' "$(awk -v a="$T0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')" "$(ready_count)" \
      "$(cut -d' ' -f1 /proc/loadavg)"
    sleep 1
  done
) >"$S/backlog.tsv" &
SAMPLER=$!
as_pg /usr/bin/time -f '%U %S' -o "$S/log/pgbench.cpu" \
  "$PGBIN/pgbench" -h "$S/sock" -c 4 -j 2 -T "$DURATION" -P 10 postgres >"$S/pgbench.log" 2>&1
T1=$(now)
C1=$(cpu_busy)
P1=$(pg_ticks)
RUN_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}')
LSN1=$(psql_q "select pg_current_wal_lsn()")
read -r A1 F1 < <(psql_q "select archived_count, failed_count from pg_stat_archiver" | tr '|' ' ')
BACKLOG_END=$(ready_count)
CATCHUP=$(wait_backlog_zero "$CATCHUP_TIMEOUT")
T2=$(now)
kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null || true
SAMPLER=

read -r A2 F2 LAST_FAILED < <(psql_q "select archived_count, failed_count, coalesce(last_failed_wal, '-') from pg_stat_archiver" | tr '|' ' ')
BUSY_DURING=$(cat "$S/busy-during" 2>/dev/null || true)
# Cores in use on average during the run: all, the server (with archive_command), pgbench.
CORES_ALL=$(awk -v c=$((C1 - C0)) -v k="$CLK_TCK" -v t="$RUN_S" 'BEGIN{printf "%.2f", c/k/t}')
CORES_PG=$(awk -v c=$((P1 - P0)) -v k="$CLK_TCK" -v t="$RUN_S" 'BEGIN{printf "%.2f", c/k/t}')
CORES_BENCH=$(awk -v t="$RUN_S" '{printf "%.2f", ($1+$2)/t}' "$S/log/pgbench.cpu")
CORES_OTHER=$(awk -v a="$CORES_ALL" -v b="$CORES_PG" -v c="$CORES_BENCH" 'BEGIN{x=a-b-c; if (x<0) x=0; printf "%.2f", x}')
TPS=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$S/pgbench.log" | head -n 1)
WAL_BYTES=$(psql_q "select pg_wal_lsn_diff('$LSN1', '$LSN0')")
MAX_BACKLOG=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$S/backlog.tsv")
log "run: tps $TPS, $((WAL_BYTES / 1048576)) MiB WAL in $RUN_S s, archived $((A1 - A0)) during, $((A2 - A1)) after; backlog max $MAX_BACKLOG, at end $BACKLOG_END, gone after $CATCHUP s; failed $((F2 - F0))"
if ((F2 > F0)); then
  log "archive_command failed $((F2 - F0)) times (last: $LAST_FAILED); server log:"
  grep -iE -B2 -A3 'archive command failed|cairn' "$S/log/server.log" | tail -n 40 >&2 || true
fi

# Real segments for phase 2: complete, archived ones still in pg_wal, copied before a
# checkpoint recycles them.
mapfile -t DONE < <(cd "$S/data/pg_wal/archive_status" && ls -- *.done 2>/dev/null | sed -n 's/^\([0-9A-F]\{24\}\)\.done$/\1/p' | sort | tail -n "$NSEG")
i=0
for name in "${DONE[@]}"; do
  dest=$(printf '%s/000000010000000A000000%02X' "$S/segs" "$i")
  if cp "$S/data/pg_wal/$name" "$dest" 2>/dev/null && [[ $(stat -c %s "$dest") -eq $SEG_BYTES ]]; then
    i=$((i + 1))
  else
    rm -f "$dest"
  fi
done
REAL_SEGS=$i
# Short of real ones (a small DURATION): fill up from the archive itself, through wal-fetch.
LAST=$(psql_q "select last_archived_wal from pg_stat_archiver")
SEGNO=$(( (16#${LAST:8:8}) * 256 + 16#${LAST:16:8} ))
while ((i < NSEG && SEGNO > 1)); do
  name=$(printf '%s%08X%08X' "${LAST:0:8}" $((SEGNO / 256)) $((SEGNO % 256)))
  dest=$(printf '%s/000000010000000A000000%02X' "$S/segs" "$i")
  if (cd "$S/segs" && cairn_pg -r "$REPO" pg wal-fetch --prefetch 0 "$name" "$dest.tmp" 2>/dev/null); then
    mv "$dest.tmp" "$dest"
    i=$((i + 1))
  fi
  SEGNO=$((SEGNO - 1))
done
chown postgres:postgres "$S"/segs/*
NSEG_ASKED=$NSEG
NSEG=$i
((NSEG > NOCACHE_RUNS)) || die "only $NSEG segments to measure"
# Round trip: the newest real segment, fetched back from the cluster's archive.
ROUNDTRIP=skipped
if ((REAL_SEGS > 0)); then
  name=${DONE[$((REAL_SEGS - 1))]}
  if (cd "$S/segs" && cairn_pg -r "$REPO" pg wal-fetch --prefetch 0 "$name" "$S/segs/roundtrip" 2>/dev/null) &&
    cmp -s "$S/segs/roundtrip" "$(printf '%s/000000010000000A000000%02X' "$S/segs" $((REAL_SEGS - 1)))"; then
    ROUNDTRIP="ok ($name)"
  else
    ROUNDTRIP="FAILED ($name)"
  fi
  rm -f "$S/segs/roundtrip"
fi

REPO_WAL_FILES=$(find "$REPO/wal" -type f | wc -l)
REPO_WAL_STORED=$(find "$REPO/wal" -type f -printf '%s\n' | awk '{s+=$1} END{print s+0}')
as_pg "$PGBIN/pg_ctl" -D "$S/data" -m fast -w stop >/dev/null
log "server stopped; $NSEG segments to push ($REAL_SEGS from pg_wal)"

# ---------------------------------------------------------------------------------------
# Phase 2. Each call is timed from the shell (fork + exec + run + exit), as PostgreSQL sees it.
# Each push is of a fresh name, so a file is stored every time.
: >"$S/failures" ; : >"$S/t-nocache" ; : >"$S/t-cache" ; : >"$S/t-cp" ; : >"$S/t-cpsync" ; : >"$S/t-help" ; : >"$S/t-zstd"
timed() { # file, command...
  local out=$1 t0 t1
  shift
  t0=$(now)
  "$@" || echo "$out: $*" >>"$S/failures"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f\n", (b-a)*1000}' >>"$out"
}
KC=$KC_ROOT/bench
SEGS=("$S"/segs/000000010000000A000000??)
# Startup alone: the same binary, parsing arguments and exiting.
for _ in 1 2 3 4 5 6 7 8 9 10; do timed "$S/t-help" as_pg "$CAIRN" --help >/dev/null; done
# The key cache filled once (wal-fetch of a name never archived opens the repository, exit 1).
as_pg env CAIRN_KEY_CACHE="$KC" "$CAIRN" -r "$REPO2" --password-file "$PW" pg wal-fetch --prefetch 0 \
  000000010000000B000000FF "$S/none" >/dev/null 2>&1 || true
for ((k = 0; k < NSEG; k++)); do
  seg=${SEGS[$k]}
  if ((k < NOCACHE_RUNS)); then
    timed "$S/t-nocache" cairn_pg -r "$REPO2" pg wal-push --no-key-cache "$seg"
  else
    timed "$S/t-cache" as_pg /usr/bin/time -a -f '%U %S' -o "$S/log/push.cpu" env CAIRN_KEY_CACHE="$KC" "$CAIRN" -r "$REPO2" --password-file "$PW" pg wal-push "$seg"
  fi
  timed "$S/t-cp" as_pg cp "$seg" "$S/cp/"
  timed "$S/t-cpsync" as_pg sh -c 'cp "$1" "$2/" && sync "$2/${1##*/}"' sh "$seg" "$S/cpsync"
  timed "$S/t-zstd" as_pg sh -c 'zstd -q -3 -c "$1" >/dev/null' sh "$seg"
done
PUSHED_BYTES=$((NSEG * SEG_BYTES))
REPO2_STORED=$(find "$REPO2/wal" -type f -printf '%s\n' | awk '{s+=$1} END{print s+0}')
# Does a push make its file durable? (fsync-family calls of one push)
FSYNCS=n/a
if command -v strace >/dev/null; then
  cp "${SEGS[0]}" "$S/segs/000000010000000C00000001" && chown postgres:postgres "$S/segs/000000010000000C00000001"
  FSYNCS=$(strace -f -qq -c -e trace=fsync,fdatasync,sync_file_range,syncfs,sync \
    runuser -u postgres -- env CAIRN_KEY_CACHE="$KC" "$CAIRN" -r "$REPO2" --password-file "$PW" pg wal-push \
    "$S/segs/000000010000000C00000001" 2>&1 >/dev/null | awk '$NF ~ /^(fsync|fdatasync|sync_file_range|syncfs|sync)$/ {n += $4} END{print n+0}')
fi

log "dd 1 GiB, conv=fdatasync"
DD=$(dd if=/dev/zero of="$S/dd.tmp" bs=1M count=1024 conv=fdatasync 2>&1 | tail -n 1)
rm -f "$S/dd.tmp"
DD_MBS=$(sed -n 's/.*, \([0-9.,]* [kMG]B\/s\)$/\1/p' <<<"$DD")

# ---------------------------------------------------------------------------------------
stats() { # file -> "median / p95 / max" in ms (nearest rank)
  sort -n "$1" | awk '{v[NR]=$1} END{
    if (NR == 0) {print "n/a"; exit}
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    p = int(0.95 * NR + 0.999999); if (p < 1) p = 1; if (p > NR) p = NR
    printf "%.0f / %.0f / %.0f (n=%d)", m, v[p], v[NR], NR}'
}
median() { sort -n "$1" | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
f2() { awk -v x="$1" 'BEGIN{printf "%.2f", x}'; }

SEG_GEN_S=$(f2 "$(awk -v w="$WAL_BYTES" -v s="$SEG_BYTES" -v t="$RUN_S" 'BEGIN{print w/s/t}')")
WAL_MBS=$(f2 "$(awk -v w="$WAL_BYTES" -v t="$RUN_S" 'BEGIN{print w/1e6/t}')")
ARCH_S=$(f2 "$(awk -v a=$((A1 - A0)) -v t="$RUN_S" 'BEGIN{print a/t}')")
ARCH_ALL_S=$(f2 "$(awk -v a=$((A2 - A0)) -v a0="$T0" -v b="$T2" 'BEGIN{print a/(b-a0)}')")
PUSH_MED=$(median "$S/t-cache")
CAP=$(f2 "$(awk -v m="$PUSH_MED" 'BEGIN{print 1000/m}')")
RATIO_BENCH=$(f2 "$(awk -v a="$PUSHED_BYTES" -v b="$REPO2_STORED" 'BEGIN{print a/b}')")
RATIO_ARCH=$(f2 "$(awk -v a=$((REPO_WAL_FILES * SEG_BYTES)) -v b="$REPO_WAL_STORED" 'BEGIN{print (b>0)?a/b:0}')")
if [[ $CATCHUP == timeout ]]; then KEEPS_UP="no: the backlog was not gone ${CATCHUP_TIMEOUT} s after pgbench ended"
elif ((MAX_BACKLOG <= 2 && F2 == F0)); then KEEPS_UP="yes: the backlog never exceeded $MAX_BACKLOG"
else KEEPS_UP="not while pgbench runs flat out: the backlog reached $MAX_BACKLOG segments, gone $CATCHUP s after pgbench ended"; fi

cat <<EOF
# cairn pg wal-push under pgbench

- Command: \`DURATION=$DURATION SCALE=$SCALE NSEG=$NSEG_ASKED${PG_CONF:+ PG_CONF='$PG_CONF'} bench/pg-wal.sh\` (as root), CAIRN=$CAIRN
- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); cairn $("$CAIRN" --version 2>/dev/null | awk '{print $NF}'); $PGVERSION
- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, scratch on $(df --output=source "$S" | tail -n 1)
- Other load: load average before $LOAD_BEFORE; other processes busy before: ${BUSY_BEFORE:-none}; mid-run: ${BUSY_DURING:-none}
- CPU during the run (cores of $(nproc), average): all $CORES_ALL = server incl. archive_command $CORES_PG + pgbench $CORES_BENCH + other processes $CORES_OTHER
- Cluster: \`pgbench -i -s $SCALE\` ($((I_WAL / 1048576)) MiB WAL, archive caught up ${I_CATCHUP} s after), then \`pgbench -c 4 -j 2 -T $DURATION\`: $TPS tps
- Keeps up: $KEEPS_UP; archive_command failures: $((F2 - F0)); round trip of an archived segment through wal-fetch: $ROUNDTRIP

| pgbench run ($RUN_S s) | |
|---|---|
| WAL generated | $((WAL_BYTES / 1048576)) MiB = $WAL_MBS MB/s = $SEG_GEN_S segments/s |
| segments archived during the run | $((A1 - A0)) = $ARCH_S /s (incl. catch-up: $((A2 - A0)) = $ARCH_ALL_S /s) |
| archive backlog (.ready): max / at pgbench end | $MAX_BACKLOG / $BACKLOG_END |
| catch-up after pgbench ended | $CATCHUP s |

| one 16 MiB segment, $NSEG real segments | median / p95 / max ms |
|---|---|
| \`cairn pg wal-push\`, key cache | $(stats "$S/t-cache") |
| (its CPU time, user + system) | $(awk '{print ($1+$2)*1000}' "$S/log/push.cpu" >"$S/t-pushcpu"; stats "$S/t-pushcpu") |
| \`cairn pg wal-push --no-key-cache\` | $(stats "$S/t-nocache") |
| \`cp\` (archive_command = 'cp %p …') | $(stats "$S/t-cp") |
| \`cp\` + fsync of the copy | $(stats "$S/t-cpsync") |
| \`cairn --help\` (process start alone) | $(stats "$S/t-help") |
| \`zstd -3\` of the segment (compression alone, one thread) | $(stats "$S/t-zstd") |

- wal-push capacity at the median (key cache): $CAP segments/s = $(f2 "$(awk -v c="$CAP" 'BEGIN{print c*16.777216}')") MB/s of WAL, against $SEG_GEN_S segments/s generated
- Compression ratio (segment bytes / stored bytes): $RATIO_BENCH for the $NSEG measured segments; $RATIO_ARCH over the cluster's whole archive ($REPO_WAL_FILES files in REPO/wal)
- fsync-family calls in one wal-push: $FSYNCS; failed timed calls: $(wc -l <"$S/failures")
- Disk sequential write (dd 1 GiB, conv=fdatasync): ${DD_MBS:-$DD}
EOF
