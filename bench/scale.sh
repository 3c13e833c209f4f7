#!/usr/bin/env bash
# The store at real size (issue 11): one etcd 3.4 member and one Keel member in turn, each on loopback with a fresh
# data directory, loaded with N new 8-byte keys carrying 256-byte values from 64 concurrent clients (Keel.LoadBench
# put, the same client for both). Prints keel/etcd ratios of: errors during the load, resident memory after the load,
# max put latency, the time of `etcdctl endpoint status`, the data directory's size, and restart time to the first
# answered get.
#
# Usage: bench/scale.sh N [--keel-dll PATH[=LABEL]]... [--no-build] [--out DIR]
#   N              keys to load (e.g. 300000)
#   --keel-dll P   a Keel build to measure (repeatable: e.g. a baseline build and the current one, in the same run);
#                  P=LABEL names it in the table. Default: src/Keel.Cli/bin/Release/net10.0/keel.dll, built first.
#   --no-build     use the Release builds already there
#   --out DIR      logs and results (default: a new /tmp folder)
# Environment: ETCD_BIN (default /usr/bin/etcd), ETCDCTL_BIN (default /usr/bin/etcdctl), CONNS (gRPC connections
# shared by the 64 clients, default 8), TIME_LIMIT (seconds bound of one load, default 900), KEEL_FLAGS, ETCD_FLAGS.
#
# Each system runs under /tmp/keel-dotnet.lock (the shared machine's lock) so no build disturbs it; every process the
# script starts is killed on exit (normal, error or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:?usage: bench/scale.sh N [--keel-dll PATH[=LABEL]]... [--no-build] [--out DIR]}
shift
BUILD=1 OUT="" KEELS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keel-dll) KEELS+=("$2"); shift ;;
    --no-build) BUILD=0 ;;
    --out) OUT="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
  shift
done
[[ ${#KEELS[@]} -eq 0 ]] && KEELS=("src/Keel.Cli/bin/Release/net10.0/keel.dll=keel")

LOCK=/tmp/keel-dotnet.lock
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL_BIN=${ETCDCTL_BIN:-/usr/bin/etcdctl}
CONNS=${CONNS:-8}
TIME_LIMIT=${TIME_LIMIT:-900}
BENCH_DLL=bench/Keel.LoadBench/bin/Release/net10.0/Keel.LoadBench.dll
WORK=$(mktemp -d /tmp/keel-scale.XXXXXX)
OUT=${OUT:-$(mktemp -d /tmp/keel-scale-results.XXXXXX)}
mkdir -p "$OUT"
CPORT=21570 PPORT=21580
ENDPOINT=http://127.0.0.1:$CPORT
PID=""

stop_server() {
  [[ -z $PID ]] && return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $BUILD -eq 1 ]]; then
  flock "$LOCK" dotnet build -c Release -v q -nologo bench/Keel.LoadBench >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
  for spec in "${KEELS[@]}"; do
    if [[ ${spec%%=*} == src/Keel.Cli/* ]]; then
      flock "$LOCK" dotnet build -c Release -v q -nologo src/Keel.Cli >>"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
    fi
  done
fi

now_ms() { date +%s%3N; }

# start SYSTEM DLL DATA LOG: one member on loopback; sets PID.
start() {
  local system=$1 dll=$2 data=$3 log=$4
  local flags=(--name n1 --data-dir "$data"
    --listen-client-urls "$ENDPOINT" --advertise-client-urls "$ENDPOINT"
    --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT"
    --initial-cluster "n1=http://127.0.0.1:$PPORT" --initial-cluster-state new)
  if [[ $system == etcd ]]; then
    # shellcheck disable=SC2086
    "$ETCD_BIN" "${flags[@]}" ${ETCD_FLAGS:-} >>"$log" 2>&1 9>&- &
  else
    # shellcheck disable=SC2086
    dotnet "$dll" serve "${flags[@]}" ${KEEL_FLAGS:-} >>"$log" 2>&1 9>&- &
  fi
  PID=$!
}

# first_get: milliseconds until `etcdctl get scale-probe` returns the probe's value (bounded to 300 s).
wait_first_get() {
  local t0=$1 deadline=$(( $(now_ms) + 300000 ))
  while (( $(now_ms) < deadline )); do
    if [[ $("$ETCDCTL_BIN" --endpoints "$ENDPOINT" --command-timeout 2s get scale-probe --print-value-only 2>/dev/null) == probe ]]; then
      echo $(( $(now_ms) - t0 )); return 0
    fi
    sleep 0.05
  done
  echo -1
}

# measure SYSTEM DLL LABEL: prints one line of key=value results into $OUT/LABEL.result.
measure() {
  local system=$1 dll=$2 label=$3
  local data="$WORK/$label" log="$OUT/$label.log" json="$OUT/$label-put.json"
  rm -rf "$data"
  exec 9>>"$LOCK"; flock 9
  echo "== $label ($(date -u +%H:%M:%S) UTC): $N keys"
  start "$system" "$dll" "$data" "$log"
  dotnet "$BENCH_DLL" ready --endpoints "$ENDPOINT" --timeout 60 9>&- >/dev/null || { echo "$label: not ready" >&2; tail -5 "$log" >&2; stop_server; flock -u 9; return 1; }
  "$ETCDCTL_BIN" --endpoints "$ENDPOINT" put scale-probe probe >/dev/null
  dotnet "$BENCH_DLL" put --endpoints "$ENDPOINT" --clients 64 --conns "$CONNS" --total "$N" --key-size 8 --val-size 256 \
    --time-limit "$TIME_LIMIT" --label "$label" --json "$json" 9>&- | tail -1 || true
  sleep 2   # let the last applies and a background snapshot settle before reading RSS (both systems alike)
  local rss_kb; rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
  local t0 t1; t0=$(now_ms)
  "$ETCDCTL_BIN" --endpoints "$ENDPOINT" --command-timeout 60s endpoint status >"$OUT/$label.status" 2>&1 || true
  t1=$(now_ms)
  local status_ms=$(( t1 - t0 ))
  # etcdctl's own start-up is in that figure; subtract an equally timed `etcdctl version` (no RPC).
  t0=$(now_ms); "$ETCDCTL_BIN" version >/dev/null; t1=$(now_ms)
  status_ms=$(( status_ms - (t1 - t0) )); (( status_ms < 0 )) && status_ms=0
  stop_server
  local du_bytes; du_bytes=$(du -sb "$data" | cut -f1)
  t0=$(now_ms)
  start "$system" "$dll" "$data" "$log"
  local restart_ms; restart_ms=$(wait_first_get "$t0")
  stop_server
  flock -u 9
  local errors max_ms ok
  errors=$(jq '.rows[0].errors' "$json" 2>/dev/null || echo -1)
  ok=$(jq '.rows[0].succeeded' "$json" 2>/dev/null || echo -1)
  max_ms=$(jq '.rows[0].maxMs' "$json" 2>/dev/null || echo -1)
  printf 'label=%s ok=%s errors=%s rss_mb=%s max_ms=%s status_ms=%s data_mb=%s restart_ms=%s\n' "$label" "$ok" "$errors" \
    $(( rss_kb / 1024 )) "$max_ms" "$status_ms" $(( du_bytes / 1048576 )) "$restart_ms" | tee "$OUT/$label.result"
  rm -rf "$data"
}

started=$(date +%s)
measure etcd "" etcd || true
for spec in "${KEELS[@]}"; do
  dll=${spec%%=*}; label=${spec#*=}; [[ $label == "$spec" ]] && label=keel
  measure keel "$dll" "$label" || true
done

get() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$OUT/$1.result" 2>/dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "" || a == "" || b + 0 == 0) print (a + 0 == 0 ? "0/0" : "n/a"); else printf "%.2f", a / b }'; }
{
  echo
  echo "### $N keys, 64 clients, 8-byte keys, 256-byte values ($(date -u +%Y-%m-%d), $(( $(date +%s) - started )) s)"
  echo
  header="| measure | etcd 3.4 |"; sep="|---|---|"
  for spec in "${KEELS[@]}"; do l=${spec#*=}; [[ $l == "$spec" ]] && l=keel; header+=" $l | $l/etcd |"; sep+="---|---|"; done
  echo "$header"; echo "$sep"
  for row in "errors:errors" "rss_mb:RSS after the load (MB)" "max_ms:max put latency (ms)" \
             "status_ms:etcdctl endpoint status (ms)" "data_mb:data directory (MB)" "restart_ms:restart to first get (ms)" "ok:puts answered"; do
    key=${row%%:*}; name=${row#*:}; e=$(get etcd "$key")
    line="| $name | $e |"
    for spec in "${KEELS[@]}"; do
      l=${spec#*=}; [[ $l == "$spec" ]] && l=keel
      k=$(get "$l" "$key"); line+=" $k | $(ratio "$k" "$e") |"
    done
    echo "$line"
  done
} | tee "$OUT/scale.md"
echo "(logs and JSON in $OUT)"
