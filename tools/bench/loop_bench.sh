#!/bin/bash
# loop_bench: starts three kvnodes on loopback (ports 7470-7472) in a fresh
# temporary directory, runs write_bench against them with the given flags,
# and stops them. Example: tools/bench/loop_bench.sh --threads 64 --seconds 10
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
bazel build -c opt //kvnode //tools/bench:write_bench >/dev/null 2>&1 \
  || { echo "loop_bench: build failed: run" \
       "'bazel build -c opt //kvnode //tools/bench:write_bench'" >&2; exit 1; }
BIN=$(bazel info -c opt bazel-bin 2>/dev/null)
KVNODE=$BIN/kvnode/kvnode
BENCH=$BIN/tools/bench/write_bench
DIR=$(mktemp -d /tmp/loop-bench.XXXXXX)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for i in 1 2 3; do
  "$KVNODE" --node-id "$i" --listen "127.0.0.1:747$((i - 1))" --data-dir "$DIR/n$i" \
    >"$DIR/n$i.log" 2>&1 &
  PIDS+=($!)
done
# Wait (at most 30 s) until all three listen.
for port in 7470 7471 7472; do
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done
"$BENCH" --nodes 127.0.0.1:7470,127.0.0.1:7471,127.0.0.1:7472 "$@"
