#!/bin/bash
# rejoin_bench: how soon a follower that was down for a while serves new
# writes after it restarts. Starts a cluster with `tools/basalt up` in a
# fresh directory on port P (default 17379), kills one follower with -9,
# keeps it down DOWN seconds (default 40: long enough for any reconnect
# backoff to grow), restarts it, writes a key through the router and times
# until the restarted node returns it from an eventual read.
# Example: tools/bench/rejoin_bench.sh 17379 40
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${1:-17379}
DOWN=${2:-40}
DIR=$(mktemp -d /tmp/rejoin-bench.XXXXXX)
cd "$ROOT"
cleanup() { tools/basalt down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT
tools/basalt up --dir "$DIR" --port "$PORT" >/dev/null
KVCTL=("$DIR/bin/kvctl" --endpoints "127.0.0.1:$PORT")
leader=$("${KVCTL[@]}" --output json shards \
  | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["shards"][0]["leader"])')
victim=$("${KVCTL[@]}" --output json status | /usr/bin/python3 -c "
import json, sys
print([n['address'] for n in json.load(sys.stdin)['nodes'] if n['id'] != $leader][0])")
index=$((${victim##*:} - PORT))
kill -9 "$(cat "$DIR/run/kvnode-$index.pid")"
echo "rejoin_bench: killed kvnode-$index ($victim), down for $DOWN s"
sleep "$DOWN"
tools/basalt up --dir "$DIR" --port "$PORT" >/dev/null
"${KVCTL[@]}" put rejoin-bench-key 1 >/dev/null
start=$(date +%s%N)
until "$DIR/bin/kvctl" --endpoints "$victim" get rejoin-bench-key --consistency eventual \
  >/dev/null 2>&1; do
  sleep 0.05
done
echo "rejoin_bench: the restarted follower served the new write after" \
  "$(( ($(date +%s%N) - start) / 1000000 )) ms"
