#!/usr/bin/env bash
# Restart time of a follower (issue 16): starts a 3-member Keel cluster on loopback (ports 24001-24003 peer,
# 24101-24103 client), then ROUNDS times kills member n3 with SIGKILL, restarts it on its data directory and times
# launch -> client port open -> first answered linearizable `etcdctl get`. Prints the times in ms. Every process it starts is killed on
# exit. Usage: bench/restart-time.sh [KEEL_DLL] [ROUNDS]
set -euo pipefail
K=${1:-src/Keel.Cli/bin/Release/net10.0/keel.dll}
R=${2:-3}
D=$(mktemp -d)
IC="n1=http://127.0.0.1:24001,n2=http://127.0.0.1:24002,n3=http://127.0.0.1:24003"
cleanup() { for i in 1 2 3; do [[ -f $D/pid$i ]] && kill -9 "$(cat "$D/pid$i")" 2>/dev/null || true; done; rm -rf "$D"; }
trap cleanup EXIT
start() {
  dotnet "$K" serve --name "n$1" --data-dir "$D/n$1" --listen-client-urls "http://127.0.0.1:2410$1" \
    --advertise-client-urls "http://127.0.0.1:2410$1" --listen-peer-urls "http://127.0.0.1:2400$1" \
    --initial-advertise-peer-urls "http://127.0.0.1:2400$1" --initial-cluster "$IC" --initial-cluster-state "$2" >> "$D/log$1" 2>&1 &
  echo $! > "$D/pid$1"
}
wait_get() { # bounded: 60 s
  # First the port (a tight loop: an etcdctl started before the port opens sits in gRPC's ~1 s reconnect backoff).
  for _ in $(seq 1 6000); do (exec 3<>"/dev/tcp/127.0.0.1/2410$1") 2>/dev/null && break; sleep 0.01; done
  for _ in $(seq 1 3000); do etcdctl --endpoints "127.0.0.1:2410$1" --command-timeout=1s "$2" x ${3:-} >/dev/null 2>&1 && return 0; sleep 0.02; done
  echo "member n$1 did not answer within 60 s; log: $D/log$1" >&2; return 1
}
for i in 1 2 3; do start "$i" new; done
wait_get 3 put 1
for _ in $(seq 1 "$R"); do
  kill -9 "$(cat "$D/pid3")"; sleep 1.5
  s=$(date +%s%N); start 3 existing; wait_get 3 get; e=$(date +%s%N)
  echo -n "$(( (e - s) / 1000000 )) "
done
echo
