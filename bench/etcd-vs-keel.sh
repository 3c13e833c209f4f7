#!/usr/bin/env bash
# Side-by-side benchmark of Keel against etcd 3.4 on this machine, in the same run (issue 5, docs/performance.md).
#
# Starts a 3-node etcd cluster on loopback, runs the Keel.LoadBench suite against it (puts with 1, 64 and 1000
# clients, linearizable and serializable reads with 64 clients), stops it; then the same for a 3-node Keel cluster
# started with the same cluster flags. Rounds alternate the order (etcd, keel | keel, etcd | ...) so that a drift
# of the machine's speed during the run falls on both systems alike. Every cluster starts from empty data
# directories. Prints a table of both with the ratio Keel/etcd per row and writes it as markdown.
#
# Usage: bench/etcd-vs-keel.sh [--quick] [--rounds N] [--out DIR] [--etcd-only] [--no-build] [-- SUITE ARGS]
#   --quick      one round, a tenth of the requests, 3 s per row: checks the script, is not a measurement
#   --rounds N   rounds of (etcd, keel); default 2 (about 7 minutes on 2 cores)
#   --out DIR    where the JSON of every run, the server logs and etcd-vs-keel.md go (default: a new /tmp folder)
#   --etcd-only  measure etcd only (also what happens when keel has no working `serve` command)
#   --no-build   use the Release builds already there
#   -- ARGS      passed to `Keel.LoadBench suite` (e.g. -- --puts-to all --time-limit 20 --rows put-1000)
# Environment: ETCD_BIN (default /usr/bin/etcd); KEEL_DLL (default src/Keel.Cli/bin/Release/net10.0/keel.dll, built
# first; a KEEL_DLL elsewhere is used as it is); ETCD_FLAGS and KEEL_FLAGS, extra flags for one system only (e.g.
# KEEL_FLAGS="--snapshot-count 100000"); the default is none, so each runs with its own defaults.
#
# While a cluster runs, the script holds /tmp/keel-dotnet.lock (KEEL_BENCH_LOCK) so that no build on this shared machine disturbs the
# measurement; it releases it between clusters. On exit (normal, error or Ctrl-C) it kills every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0 ROUNDS=2 OUT="" ETCD_ONLY=0 BUILD=1 SUITE_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; ROUNDS=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --etcd-only) ETCD_ONLY=1 ;;
    --no-build) BUILD=0 ;;
    --) shift; SUITE_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
  shift
done

LOCK=${KEEL_BENCH_LOCK:-/tmp/keel-dotnet.lock}   # the lock every build and test on this machine takes
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
KEEL_DLL=${KEEL_DLL:-src/Keel.Cli/bin/Release/net10.0/keel.dll}   # KEEL_DLL=... measures a build made elsewhere
BENCH_DLL=bench/Keel.LoadBench/bin/Release/net10.0/Keel.LoadBench.dll
WORK=$(mktemp -d /tmp/etcd-vs-keel.XXXXXX)   # data directories: on disk (/tmp is not tmpfs here), fsync is real
OUT=${OUT:-$(mktemp -d /tmp/etcd-vs-keel-results.XXXXXX)}
mkdir -p "$OUT"
PIDS=()
LOCKED=0

stop_cluster() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

release_lock() {
  if [[ $LOCKED -eq 1 ]]; then flock -u 9; LOCKED=0; fi
}

cleanup() {
  stop_cluster
  release_lock
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $BUILD -eq 1 ]]; then
  flock "$LOCK" dotnet build -c Release -v q -nologo bench/Keel.LoadBench >"$OUT/build-loadbench.log" 2>&1 \
    || { cat "$OUT/build-loadbench.log"; exit 1; }
  if [[ $ETCD_ONLY -eq 0 && $KEEL_DLL == src/Keel.Cli/* ]]; then
    flock "$LOCK" dotnet build -c Release -v q -nologo src/Keel.Cli >"$OUT/build-keel.log" 2>&1 \
      || { echo "keel: the build failed (see $OUT/build-keel.log); measuring etcd only"; ETCD_ONLY=1; }
  fi
fi
if [[ $ETCD_ONLY -eq 0 ]] && ! dotnet "$KEEL_DLL" serve --help >/dev/null 2>&1; then
  echo "keel: $KEEL_DLL has no working 'serve' command yet; measuring etcd only"
  ETCD_ONLY=1
fi
echo "$("$ETCD_BIN" --version 2>&1 | sed -n 1p)"

# start_cluster SYSTEM ROUND CLIENT_PORT_BASE PEER_PORT_BASE: three members on 127.0.0.1, ports BASE+1..BASE+3.
start_cluster() {
  local system=$1 round=$2 cbase=$3 pbase=$4 i
  local cluster="" endpoints=""
  for i in 1 2 3; do
    if ss -Htan "( sport = :$((cbase + i)) or sport = :$((pbase + i)) )" | grep -qv TIME-WAIT; then
      echo "$system: port $((cbase + i)) or $((pbase + i)) is already in use" >&2; return 1
    fi
    cluster+="${cluster:+,}n$i=http://127.0.0.1:$((pbase + i))"
    endpoints+="${endpoints:+,}http://127.0.0.1:$((cbase + i))"
  done
  for i in 1 2 3; do
    local data="$WORK/$system-r$round-n$i" log="$OUT/$system-r$round-n$i.log"
    local flags=(--name "n$i" --data-dir "$data"
      --listen-client-urls "http://127.0.0.1:$((cbase + i))" --advertise-client-urls "http://127.0.0.1:$((cbase + i))"
      --listen-peer-urls "http://127.0.0.1:$((pbase + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((pbase + i))"
      --initial-cluster "$cluster" --initial-cluster-state new)
    # 9>&-: the servers must not inherit the lock's descriptor, or they would hold the lock.
    if [[ $system == etcd ]]; then
      # shellcheck disable=SC2086 # ETCD_FLAGS is a list of words
      "$ETCD_BIN" "${flags[@]}" ${ETCD_FLAGS:-} >"$log" 2>&1 9>&- &
    else
      # shellcheck disable=SC2086
      dotnet "$KEEL_DLL" serve "${flags[@]}" ${KEEL_FLAGS:-} >"$log" 2>&1 9>&- &
    fi
    PIDS+=($!)
  done
  ENDPOINTS=$endpoints
  if ! dotnet "$BENCH_DLL" ready --endpoints "$ENDPOINTS" --timeout 60 9>&-; then
    echo "$system: the cluster did not become ready; last lines of its logs:" >&2
    tail -n 5 "$OUT/$system-r$round"-n*.log >&2 || true
    return 1
  fi
}

# measure SYSTEM ROUND: start the cluster, run the suite, stop the cluster, all under the lock.
measure() {
  local system=$1 round=$2 cbase pbase rc=0
  # Below Linux's ephemeral range (32768-60999): an outgoing connection can never hold one of these ports.
  if [[ $system == etcd ]]; then cbase=21370 pbase=21380; else cbase=21470 pbase=21480; fi
  exec 9>>"$LOCK"
  flock 9
  LOCKED=1
  echo "== $system, round $round ($(date -u +%H:%M:%S) UTC)"
  if start_cluster "$system" "$round" "$cbase" "$pbase"; then
    local quick=()
    [[ $QUICK -eq 1 ]] && quick=(--quick)
    local pids
    pids=$(IFS=,; echo "${PIDS[*]}")
    dotnet "$BENCH_DLL" suite --endpoints "$ENDPOINTS" --label "$system" --round "$round" --server-pids "$pids" --server-metrics \
      --json "$OUT/$system-r$round.json" "${quick[@]}" "${SUITE_ARGS[@]}" 9>&- || rc=$?
  else
    rc=1
  fi
  stop_cluster
  release_lock
  return $rc
}

started=$(date +%s)
failed=0
for round in $(seq 1 "$ROUNDS"); do
  if [[ $ETCD_ONLY -eq 1 ]]; then
    order=(etcd)
  elif (( round % 2 == 1 )); then
    order=(etcd keel)
  else
    order=(keel etcd)
  fi
  for system in "${order[@]}"; do
    measure "$system" "$round" || { echo "$system, round $round: failed (exit $?)"; failed=1; }
  done
done

shopt -s nullglob
reports=("$OUT"/*-r*.json)
if [[ ${#reports[@]} -eq 0 ]]; then echo "no run produced results; logs in $OUT" >&2; exit 1; fi
echo
echo "== results ($(( $(date +%s) - started )) s; JSON, logs and etcd-vs-keel.md in $OUT)"
dotnet "$BENCH_DLL" compare --baseline etcd --candidate keel --markdown "$OUT/etcd-vs-keel.md" "${reports[@]}"
exit $failed
