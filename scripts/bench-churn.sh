#!/usr/bin/env bash
# What the container engine's work does to the load balancer's latency on
# this host, with nothing of a stack update around it (issue 4, "p99 during
# the cutover"; docs/benchmarks.md, "Where the cutover's slow requests come
# from").
#
# The autopatch load balancer (crates/loadbalancer/examples/bench_proxy.rs)
# in front of two plain host processes (examples/bench_backend.rs), so no
# container is on the request path, loaded by `autopatch watch` at 600
# requests/s on 8 keep-alive connections. Each run is 14 s of load: a steady
# window (1-8 s), then at 8 s the variant's engine work, and the "churn"
# window (8-13 s) is compared with the steady one by p99.
#
# Variants (the order rotates from one repetition to the next):
#   none         nothing happens: how much p99 moves between two windows anyway
#   nonet        two `podman run -d --network none` of the image, one after
#                the other; 2 s later `podman stop` + `podman rm` of both
#   net          the same with a published port (`-p 127.0.0.1::80`), as
#                instances are started
#   net-nice     `net` with every podman command under `nice -n 19`
#   net-lb-prio  `net` with the load balancer's worker threads at nice -10
#   svc          `net` through the Podman API service (`podman --remote`),
#                as autopatch drives the engine, with the engine's cgroups
#                (scripts/lib/engine-cpu.sh) set to the default CPU weight
#   svc-low      the same at the low weight scripts/setup-host.sh gives them
#
# Usage (as root, from anywhere, with Podman's CLI working):
#
#   scripts/bench-churn.sh           # 3 repetitions of each variant
#
# Environment: BENCH_REPS (3), BENCH_VARIANTS (all of the above, in that
# order; e.g. "none svc svc-low"), BENCH_RATE (600), BENCH_CONCURRENCY (8),
# BENCH_IMAGE (default: the newest localhost/autopatch-test/webapp:bookworm-*
# image, which the stacks tests bake), BENCH_BASE_PORT (18090: uses this
# port and the next three), AUTOPATCH_BIN (default target/release/autopatch,
# built with the examples unless given).
#
# Loopback only; every run is bounded (14 s of load); on exit the processes
# and the containers it started are gone. Markdown on stdout, progress on
# stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPS=${BENCH_REPS:-3}
RATE=${BENCH_RATE:-600}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
BASE=${BENCH_BASE_PORT:-18090}
PROXY_PORT=$BASE BACKEND1=$((BASE + 2)) BACKEND2=$((BASE + 3))
BIN=${AUTOPATCH_BIN:-$ROOT/target/release/autopatch}
EXAMPLES=$ROOT/target/release/examples
read -r -a VARIANTS <<<"${BENCH_VARIANTS:-none nonet net net-nice net-lb-prio svc svc-low}"
SOCKET=/run/podman/podman.sock
RUN_ID="bc$$"

BENCH_NAME=bench-churn
# shellcheck source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"
require_tools python3 podman curl renice
IMAGE=${BENCH_IMAGE:-$(newest_test_image)}
[ -n "$IMAGE" ] && podman image exists "$IMAGE" \
  || die "no image: run the stacks tests once (they bake localhost/autopatch-test/webapp:bookworm-<hash>) or set BENCH_IMAGE"
ensure_binary -p autopatch-loadbalancer --example bench_backend --example bench_proxy
for program in "$EXAMPLES/bench_proxy" "$EXAMPLES/bench_backend"; do
  [ -x "$program" ] || die "no program at $program"
done

WORK=$(mktemp -d /tmp/bench-churn.XXXXXX)
WEIGHTED=0
PIDS=()
WATCH_PID=""
cleanup() {
  local status=$? pid
  set +e
  [ -n "$WATCH_PID" ] && kill -INT "$WATCH_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  podman rm -f "$RUN_ID-1" "$RUN_ID-2" >/dev/null 2>&1
  [ "$WEIGHTED" = 1 ] && engine_weight "$ENGINE_CPU_SHARES"
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_url() {
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  die "$1 never answered"
}

"$EXAMPLES/bench_backend" "127.0.0.1:$BACKEND1" 2>"$WORK/backend1.log" & PIDS+=($!)
"$EXAMPLES/bench_backend" "127.0.0.1:$BACKEND2" 2>"$WORK/backend2.log" & PIDS+=($!)
wait_for_url "http://127.0.0.1:$BACKEND1/"
wait_for_url "http://127.0.0.1:$BACKEND2/"
"$EXAMPLES/bench_proxy" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$BACKEND1" "127.0.0.1:$BACKEND2" \
  2>"$WORK/proxy.log" & PROXY_PID=$!
PIDS+=("$PROXY_PID")
for _ in $(seq 1 100); do grep -q ready "$WORK/proxy.log" && break; sleep 0.1; done
grep -q ready "$WORK/proxy.log" || die "the proxy never became ready: $(cat "$WORK/proxy.log")"

# engine_weight SHARES: cpu.shares of the service's and conmon's cgroups
# (cgroup v1, the service in $ENGINE_CGROUP, as setup-host.sh leaves it).
engine_weight() {
  local root dir
  root=$(engine_cpu_root)
  for dir in "$root/$ENGINE_CGROUP" "$root/$ENGINE_CONMON_CGROUP"; do
    [ -w "$dir/cpu.shares" ] && echo "$1" >"$dir/cpu.shares"
  done
  return 0
}
WEIGHTED=0
if [[ " ${VARIANTS[*]} " == *" svc"* ]]; then
  WEIGHTED=1
  [[ "$(engine_cpu_describe)" == *"/$ENGINE_CGROUP, cpu.shares"* ]] \
    || die "the svc variants need the podman service in the cgroup $ENGINE_CGROUP on cgroup v1 (scripts/setup-host.sh): $(engine_cpu_describe)"
  [ -S "$SOCKET" ] || die "no podman API socket at $SOCKET"
fi

# churn COMMAND...: the two containers' start, 2 s, their stop and removal,
# each with COMMAND (podman, perhaps behind nice or with --remote).
churn() {
  local n
  for n in 1 2; do
    "$@" run -d --name "$RUN_ID-$n" --init "${NETWORK[@]}" "$IMAGE" sleep infinity >/dev/null
  done
  sleep 2
  "$@" stop -t 10 "$RUN_ID-1" "$RUN_ID-2" >/dev/null
  "$@" rm "$RUN_ID-1" "$RUN_ID-2" >/dev/null
}

# run VARIANT REP: one 14 s watch with the variant's work at 8 s.
run() {
  local variant=$1 rep=$2 out=$WORK/$1-$2.jsonl
  [ "$variant" = net-lb-prio ] && lb_nice -10 "$PROXY_PID"
  "$BIN" watch "http://127.0.0.1:$PROXY_PORT/" --concurrency "$CONCURRENCY" --rate "$RATE" \
    --duration 14s --quiet --output json --jsonl "$out" >"$WORK/$variant-$rep.summary" 2>&1 &
  WATCH_PID=$!
  sleep 8
  NETWORK=(-p 127.0.0.1::80)
  case $variant in
    none) ;;
    nonet) NETWORK=(--network none); churn podman ;;
    net | net-lb-prio) churn podman ;;
    net-nice) churn nice -n 19 podman ;;
    svc) engine_weight 1024; churn podman --remote --url "unix://$SOCKET"; engine_weight "$ENGINE_CPU_SHARES" ;;
    svc-low) churn podman --remote --url "unix://$SOCKET" ;;
  esac
  wait "$WATCH_PID" || die "watch failed in $variant, repetition $rep: $(cat "$WORK/$variant-$rep.summary")"
  WATCH_PID=""
  [ "$variant" = net-lb-prio ] && lb_nice 0 "$PROXY_PID"
  return 0
}

log "image $IMAGE; $REPS repetitions of ${VARIANTS[*]}"
for rep in $(seq 1 "$REPS"); do
  for offset in $(seq 0 $((${#VARIANTS[@]} - 1))); do
    variant=${VARIANTS[$(( (offset + rep - 1) % ${#VARIANTS[@]} ))]}
    log "repetition $rep/$REPS: $variant"
    run "$variant" "$rep"
  done
done

python3 - "$WORK" "$REPS" "${VARIANTS[@]}" <<'EOF'
import json, statistics, sys
work, reps, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def p99(values):
    values = sorted(values)
    return values[max(0, -(-len(values) * 99 // 100) - 1)]  # nearest rank

print("| variant | failed | p99 steady (ms) | p99 churn window (ms) | **p99 churn / steady** |")
print("|---|---:|---:|---:|---:|")
for variant in variants:
    steady, churn, ratios, failed = [], [], [], 0
    for rep in range(1, reps + 1):
        rows = [json.loads(line) for line in open(f"{work}/{variant}-{rep}.jsonl")]
        failed += sum(1 for row in rows if row.get("error"))
        s = p99([r["latency_ms"] for r in rows if 1000 <= r["t_ms"] < 8000])
        c = p99([r["latency_ms"] for r in rows if 8000 <= r["t_ms"] < 13000])
        steady.append(s); churn.append(c); ratios.append(c / s)
    span = lambda xs, f: f"{f.format(statistics.median(xs))} ({f.format(min(xs))}–{f.format(max(xs))})"
    print(f"| {variant} | {failed} | {span(steady, '{:.3f}')} | {span(churn, '{:.3f}')} | {span(ratios, '{:.2f}')} |")
EOF
