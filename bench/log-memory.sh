#!/usr/bin/env bash
# Memory held for Raft's log between snapshots (issue 11, "bounded memory"): one etcd 3.4 member and one Keel member in
# turn, each with history compaction on (--auto-compaction-mode revision, 1,000 revisions kept) so the store stays
# small, loaded with PUTS overwrites of 1,000 keys with VALUE-byte values from 16 clients. The log since the last
# snapshot (up to --snapshot-count entries, 100,000 by default in both) is what is left to hold memory. Prints RSS
# after the load, 2 s later, per system.
#
# Usage: bench/log-memory.sh [--puts N] [--value-bytes N] [--keel-dll PATH[=LABEL]]... [--out DIR]
# Every process the script starts is killed on exit; each system runs under /tmp/keel-dotnet.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PUTS=20000 VALUE=32768 OUT="" KEELS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --puts) PUTS="$2"; shift ;;
    --value-bytes) VALUE="$2"; shift ;;
    --keel-dll) KEELS+=("$2"); shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
  shift
done
[[ ${#KEELS[@]} -eq 0 ]] && KEELS=("src/Keel.Cli/bin/Release/net10.0/keel.dll=keel")
LOCK=/tmp/keel-dotnet.lock
BENCH_DLL=bench/Keel.LoadBench/bin/Release/net10.0/Keel.LoadBench.dll
WORK=$(mktemp -d /tmp/keel-logmem.XXXXXX)
OUT=${OUT:-$(mktemp -d /tmp/keel-logmem-results.XXXXXX)}
mkdir -p "$OUT"
CPORT=21670 PPORT=21680 ENDPOINT=http://127.0.0.1:21670 PID=""
stop_server() {
  [[ -z $PID ]] && return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

measure() {
  local system=$1 dll=$2 label=$3
  local flags=(--name n1 --data-dir "$WORK/$label"
    --listen-client-urls "$ENDPOINT" --advertise-client-urls "$ENDPOINT"
    --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT"
    --initial-cluster "n1=http://127.0.0.1:$PPORT" --initial-cluster-state new
    --auto-compaction-mode revision --auto-compaction-retention 1000)
  exec 9>>"$LOCK"; flock 9
  if [[ $system == etcd ]]; then /usr/bin/etcd "${flags[@]}" >"$OUT/$label.log" 2>&1 9>&- &
  else dotnet "$dll" serve "${flags[@]}" >"$OUT/$label.log" 2>&1 9>&- & fi
  PID=$!
  dotnet "$BENCH_DLL" ready --endpoints "$ENDPOINT" --timeout 60 9>&- >/dev/null
  dotnet "$BENCH_DLL" put --endpoints "$ENDPOINT" --clients 16 --conns 4 --total "$PUTS" --key-space 1000 \
    --val-size "$VALUE" --time-limit 300 --label "$label" 9>&- | tail -1
  sleep 2
  local rss_kb; rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  stop_server
  flock -u 9
  rm -rf "${WORK:?}/$label"
  echo "label=$label puts=$PUTS value_bytes=$VALUE rss_mb=$(( rss_kb / 1024 ))" | tee "$OUT/$label.result"
}

echo "== $(date -u +%H:%M:%S) UTC: $PUTS puts of $VALUE-byte values over 1,000 keys, history compacted to 1,000 revisions"
measure etcd "" etcd
for spec in "${KEELS[@]}"; do
  dll=${spec%%=*}; label=${spec#*=}; [[ $label == "$spec" ]] && label=keel
  measure keel "$dll" "$label"
done
