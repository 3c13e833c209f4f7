#!/usr/bin/env bash
# Where a put's time and CPU go on a 3-member Keel cluster (issue 12, docs/performance.md "2026-12-04, later").
#
# Starts three Keel members on loopback (fresh data directories, metrics on 2381x), warms them with 5,000 puts, runs
# `Keel.LoadBench put` with CLIENTS clients spread over every member, and prints per member, from /metrics before and
# after: WAL fsyncs per second, mean fsync time, the share of wall time spent in fsync, loop batches per second and
# CPU cores used. With PERF=1 it also records `perf record -a` (499 Hz) for 8 s, PERF_DELAY seconds into the load, to
# PERF_DATA (default /tmp/perf.data), with the members' JIT code named (DOTNET_PerfMapEnabled=1,
# DOTNET_EnableWriteXorExecute=0): `perf report -i /tmp/perf.data --sort comm` or `--sort dso,sym`.
#
# Environment: CLIENTS (default 64), TOTAL puts (default 60000), TIME_LIMIT seconds (default 20), KEEL_DLL,
# SERVER_ENV (extra environment for the members only, e.g. "DOTNET_TieredPGO=1"), KEEL_FLAGS, PERF, PERF_DELAY.
# Holds /tmp/keel-dotnet.lock while it runs; every process it starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-64} TOTAL=${TOTAL:-60000} TIME_LIMIT=${TIME_LIMIT:-20}
KEEL_DLL=${KEEL_DLL:-src/Keel.Cli/bin/Release/net10.0/keel.dll}
BENCH_DLL=bench/Keel.LoadBench/bin/Release/net10.0/Keel.LoadBench.dll
PERF_DATA=${PERF_DATA:-/tmp/perf.data}
W=$(mktemp -d /tmp/cluster-profile.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
exec 9>/tmp/keel-dotnet.lock
flock 9
cluster=n1=http://127.0.0.1:23801,n2=http://127.0.0.1:23802,n3=http://127.0.0.1:23803
endpoints=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793
perf_env=()
[[ -n ${PERF:-} ]] && perf_env=(DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0)
for i in 1 2 3; do
  # shellcheck disable=SC2086 # SERVER_ENV and KEEL_FLAGS are lists of words
  env "${perf_env[@]}" ${SERVER_ENV:-} dotnet "$KEEL_DLL" serve --name "n$i" --data-dir "$W/n$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$cluster" --initial-cluster-state new --listen-metrics-urls "http://127.0.0.1:2381$i" \
    ${KEEL_FLAGS:-} >"$W/n$i.log" 2>&1 9>&- &
  PIDS+=($!)
done
dotnet "$BENCH_DLL" ready --endpoints "$endpoints" --timeout 60 >/dev/null 9>&-
scrape() {
  local i
  for i in 1 2 3; do
    curl -s "http://127.0.0.1:2381$i/metrics" |
      grep -E '^(etcd_disk_wal_fsync_duration_seconds_(sum|count)|keel_loop_batches_total|etcd_server_is_leader|process_cpu_seconds_total)(\{\})? ' |
      sed -e 's/{}//' -e "s/^/n$i /"
  done
}
dotnet "$BENCH_DLL" put --endpoints "$endpoints" --clients "$CLIENTS" --conns 8 --total 5000 >/dev/null 9>&-
scrape >"$W/before"
t0=$(date +%s.%N)
if [[ -n ${PERF:-} ]]; then
  (sleep "${PERF_DELAY:-3}"; perf record -F 499 -a -o "$PERF_DATA" -- sleep 8 >/dev/null 2>&1) 9>&- &
  PIDS+=($!)
fi
dotnet "$BENCH_DLL" put --endpoints "$endpoints" --clients "$CLIENTS" --conns 8 --total "$TOTAL" --time-limit "$TIME_LIMIT" 9>&- | tail -1
t1=$(date +%s.%N)
scrape >"$W/after"
awk -v t0="$t0" -v t1="$t1" '
  BEGIN { elapsed = t1 - t0 }
  FNR == NR { before[$1 " " $2] = $3; next }
  { after[$1 " " $2] = $3; members[$1] = 1 }
  END {
    for (m in members) {
      fs = after[m " etcd_disk_wal_fsync_duration_seconds_sum"] - before[m " etcd_disk_wal_fsync_duration_seconds_sum"]
      fc = after[m " etcd_disk_wal_fsync_duration_seconds_count"] - before[m " etcd_disk_wal_fsync_duration_seconds_count"]
      b = after[m " keel_loop_batches_total"] - before[m " keel_loop_batches_total"]
      cpu = after[m " process_cpu_seconds_total"] - before[m " process_cpu_seconds_total"]
      printf "%s %-8s fsyncs/s %6.0f  fsync %5.2f ms  fsync share of wall time %4.2f  loop batches/s %6.0f  cpu %4.2f cores\n",
        m, after[m " etcd_server_is_leader"] == 1 ? "leader" : "follower", fc / elapsed, 1000 * fs / (fc > 0 ? fc : 1),
        fs / elapsed, b / elapsed, cpu / elapsed
    }
  }' "$W/before" "$W/after" | sort
