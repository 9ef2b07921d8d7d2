#!/bin/bash
# compare: the same kvbench workloads against a three-member etcd cluster and
# a three-node Basalt cluster on this machine, one after the other (never at
# once), and one table with both and their ratios.
#
#   tools/bench/compare.sh [--seconds N] [--records N] [--work DIR] [--keep]
#
# etcd (Debian's etcd-server) runs on 127.0.0.1 ports 23791-23793 (peers
# 23801-23803) with its defaults, fsync included; Basalt runs from
# `tools/basalt up --shards 1 --split-qps 0 --split-size-mb 0` on port 23890
# (nodes on 23891-23893), split by hand into 8 shards over kvbench's keys
# ("user" and 16 hex digits), so every run measures the same layout and no
# shard splits in the middle of a measurement. Each workload runs N
# seconds (default 10) after one load of --records records (default 10000)
# of 1000 bytes. Reports (kvbench's JSON, one per
# system and workload) and the logs stay in DIR (default: a new directory
# under /tmp), which is removed at the end unless --keep.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_EACH=10
RECORDS=10000
WORK=
KEEP=false
ETCD_CLIENT_PORT=23791 # and the next two
ETCD_PEER_PORT=23801   # and the next two
BASALT_PORT=23890
# How long a cluster may take to serve, or Basalt's leaders to spread.
READY_TIMEOUT_S=90

# name, then kvbench flags: the set docs/performance.md records.
WORKLOADS=(
  "put-seq-1c|--workload put --sequential-keys --clients 1 --conns 1"
  "put-64c|--workload put --clients 64 --conns 8"
  "put-256c|--workload put --clients 256 --conns 16"
  "get-strong-64c|--workload get --clients 64 --conns 8"
  "get-eventual-64c|--workload get --consistency eventual --clients 64 --conns 8"
  "ycsb-a-64c|--workload a --clients 64 --conns 8"
  "ycsb-b-64c|--workload b --clients 64 --conns 8"
)

say() { printf 'compare: %s\n' "$*" >&2; }
die() { printf 'compare: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECONDS_EACH=${2:?--seconds needs a value}; shift 2 ;;
    --records) RECORDS=${2:?--records needs a value}; shift 2 ;;
    --work) WORK=${2:?--work needs a value}; shift 2 ;;
    --keep) KEEP=true; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] && [ "$SECONDS_EACH" -ge 1 ] \
  || die "--seconds takes a whole number of seconds, at least 1"
[[ "$RECORDS" =~ ^[0-9]+$ ]] && [ "$RECORDS" -ge 1 ] || die "--records takes a number, at least 1"
[ -n "$WORK" ] || WORK=$(mktemp -d /tmp/basalt-compare.XXXXXX)
mkdir -p "$WORK/results" "$WORK/logs"

ETCD_PIDS=()
cleanup() {
  local pid
  for pid in "${ETCD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$ROOT/tools/basalt" down --dir "$WORK/basalt" >/dev/null 2>&1 || true
  if $KEEP; then say "reports and logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---- setup ----

ensure_etcd() {
  command -v etcd >/dev/null && command -v etcdctl >/dev/null && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing etcd-server and etcd-client"
  "${sudo[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
    etcd-server etcd-client >/dev/null || die "apt-get install etcd-server etcd-client failed"
}

# `tools/basalt up` installs what Basalt needs and builds kvbench with it;
# this only builds, for the etcd half that runs first.
build_kvbench() {
  say "building kvbench"
  (cd "$ROOT" && bazel build //tools/kvbench >"$WORK/logs/build.log" 2>&1) \
    || die "building kvbench failed; see $WORK/logs/build.log"
  install -m 755 "$ROOT/bazel-bin/tools/kvbench/kvbench" "$WORK/kvbench"
}

machine() {
  printf '%s, %s cores, %s GiB, Linux %s; %s; kvbench at %s\n' \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" "$(nproc)" \
    "$(($(grep MemTotal /proc/meminfo | awk '{print $2}') / 1048576))" "$(uname -r)" \
    "$(etcd --version | head -n 1)" \
    "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo "an unknown commit")"
}

# ---- running the set ----

# Loads the records once, then runs every workload for SECONDS_EACH against
# $1 (a kvbench target), saving reports as $WORK/results/$2-NAME.json.
run_set() {
  local target=$1 system=$2 entry name flags
  say "$system: loading $RECORDS records"
  "$WORK/kvbench" --target "$target" --workload a --phase load --records "$RECORDS" \
    --clients 64 --conns 8 --output json >"$WORK/results/$system-load.json" \
    || die "$system: the load failed; see $WORK/results/$system-load.json"
  for entry in "${WORKLOADS[@]}"; do
    name=${entry%%|*}
    flags=${entry#*|}
    say "$system: $name for ${SECONDS_EACH}s"
    # shellcheck disable=SC2086 # flags are words
    "$WORK/kvbench" --target "$target" $flags --phase run --records "$RECORDS" \
      --duration "${SECONDS_EACH}s" --output json >"$WORK/results/$system-$name.json" \
      || say "$system: $name had failed operations (counted in its report)"
  done
}

# ---- etcd ----

# Starts the members; sets ETCD_ENDPOINTS.
etcd_start() {
  local i cluster="" endpoints=""
  for i in 0 1 2; do
    cluster+="${cluster:+,}e$i=http://127.0.0.1:$((ETCD_PEER_PORT + i))"
    endpoints+="${endpoints:+,}127.0.0.1:$((ETCD_CLIENT_PORT + i))"
  done
  for i in 0 1 2; do
    etcd --name "e$i" --data-dir "$WORK/etcd-$i" \
      --listen-client-urls "http://127.0.0.1:$((ETCD_CLIENT_PORT + i))" \
      --advertise-client-urls "http://127.0.0.1:$((ETCD_CLIENT_PORT + i))" \
      --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER_PORT + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER_PORT + i))" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      >"$WORK/logs/etcd-$i.log" 2>&1 &
    ETCD_PIDS+=($!)
  done
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] \
      || die "etcd did not serve within ${READY_TIMEOUT_S}s; logs: $WORK/logs"
    sleep 0.2
  done
  ETCD_ENDPOINTS=$endpoints
}

etcd_stop() {
  local pid
  for pid in "${ETCD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${ETCD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  ETCD_PIDS=()
}

# ---- Basalt ----

# True once no node leads more than one shard over another.
basalt_leaders_spread() {
  "$WORK/basalt/bin/kvctl" --endpoints "127.0.0.1:$BASALT_PORT" --output json status \
    | /usr/bin/python3 -c '
import json, sys
leaders = [n["leaders"] for n in json.load(sys.stdin)["nodes"]]
sys.exit(0 if len(leaders) == 3 and max(leaders) - min(leaders) <= 1 else 1)'
}

# Where shard 1 is split: 8 shards, each with 2 of the 16 first hex digits
# of kvbench's hashed keys. The last key first, so shard 1 keeps the start.
BASALT_SPLIT_KEYS=(usere userc usera user8 user6 user4 user2)

basalt_start() {
  "$ROOT/tools/basalt" up --dir "$WORK/basalt" --port "$BASALT_PORT" --shards 1 --split-qps 0 \
    --split-size-mb 0 >"$WORK/logs/basalt-up.log" 2>&1 \
    || die "tools/basalt up failed; see $WORK/logs/basalt-up.log"
  local key
  for key in "${BASALT_SPLIT_KEYS[@]}"; do
    "$WORK/basalt/bin/kvctl" --endpoints "127.0.0.1:$BASALT_PORT" --timeout 30s split 1 "$key" \
      >/dev/null || die "splitting shard 1 at '$key' failed"
  done
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until basalt_leaders_spread; do
    [ $SECONDS -lt $deadline ] || die "Basalt's leaders did not spread within ${READY_TIMEOUT_S}s"
    sleep 1
  done
}

# ---- the table ----

print_table() {
  /usr/bin/python3 - "$WORK/results" "${WORKLOADS[@]%%|*}" <<'EOF'
import json, os, sys

results, names = sys.argv[1], sys.argv[2:]

def report(system, name):
    try:
        with open(os.path.join(results, "%s-%s.json" % (system, name))) as f:
            return json.load(f)["phases"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None

def ratio(b, e):
    return "%.2fx" % (b / e) if b and e else "-"

head = ("workload", "op", "etcd ops/s", "etcd p99 ms", "basalt ops/s", "basalt p99 ms",
        "ops ratio", "p99 ratio")
print("%-17s %-7s %11s %12s %13s %14s %10s %10s" % head)
for name in names:
    e, b = report("etcd", name), report("basalt", name)
    kinds = sorted(set((e or {}).get("ops", {})) | set((b or {}).get("ops", {})))
    for kind in kinds:
        eo = (e or {}).get("ops", {}).get(kind)
        bo = (b or {}).get("ops", {}).get(kind)
        # Throughput is the phase's; each kind's share of it.
        erate = e["ops_per_sec"] * eo["count"] / e["operations"] if eo else 0
        brate = b["ops_per_sec"] * bo["count"] / b["operations"] if bo else 0
        ep99 = eo["latency_us"]["p99"] / 1000 if eo else 0
        bp99 = bo["latency_us"]["p99"] / 1000 if bo else 0
        errors = (eo or {}).get("errors", 0) + (bo or {}).get("errors", 0)
        print("%-17s %-7s %11.0f %12.2f %13.0f %14.2f %10s %10s%s" % (
            name, kind[:7], erate, ep99, brate, bp99, ratio(brate, erate), ratio(bp99, ep99),
            "  (%d failed operations: see the reports)" % errors if errors else ""))
print("ops ratio: Basalt's throughput over etcd's (above 1: Basalt is faster);"
      " p99 ratio: Basalt's p99 over etcd's (below 1: Basalt's tail is shorter)")
EOF
}

# ---- main ----

ensure_etcd
build_kvbench
say "machine: $(machine)"
say "starting etcd (3 members)"
etcd_start
run_set "etcd://$ETCD_ENDPOINTS" etcd
etcd_stop
say "starting Basalt (router and 3 kvnodes)"
basalt_start
run_set "basalt://127.0.0.1:$BASALT_PORT" basalt
"$ROOT/tools/basalt" down --dir "$WORK/basalt" >/dev/null
echo "machine: $(machine)"
echo "each workload ${SECONDS_EACH}s after a load of $RECORDS records" \
  "of 24-byte keys and 1000-byte values"
print_table
