#!/usr/bin/env bash
# Cutover benchmark (issue 4, "Performance"): a blue/green stack update of
# pattern3-app (AutoScalingReplacingUpdate) while `autopatch watch` loads the
# load balancer on loopback with keep-alive connections. Per update: failed
# requests; p99 latency during the cutover against a steady window before it;
# time from the update's start to the new group taking traffic (the first
# response the new image served, by its X-Image-Id header) and to the old
# group retired (the last response of the old image, and the old group's
# DELETE_COMPLETE), against the floor the template's settings impose:
# instance start + signal + HealthyThresholdCount x HealthCheckIntervalSeconds
# (+ the deregistration delay for the retirement).
#
# Usage (from anywhere, as root, with Podman answering on its API socket):
#
#   scripts/bench-update.sh          # 3 updates (A->B, B->A, A->B), medians reported
#
# Environment:
#   BENCH_ITERATIONS   updates to measure (default 3; each flips the image)
#   BENCH_RATE         requests per second in all (default 600)
#   BENCH_CONCURRENCY  keep-alive connections, one worker each (default 8)
#   BENCH_STEADY       seconds of load before the update starts (default 10)
#   BENCH_TAIL         seconds of load after UPDATE_COMPLETE (default 5)
#   BENCH_PEER_WINDOW  seconds of the peer's second window, at most (default 20)
#   BENCH_IMAGE        image A (default: the newest test image
#                      localhost/autopatch-test/webapp:bookworm-<hash>); it must
#                      set X-Image-Id (components/webapp.yml does)
#   BENCH_KEEP=1       keep the temporary directory
#   BENCH_LB_NICE      if set, the daemon's load balancer worker threads
#                      (autopatch-lb-*) are reniced to it once the stack
#                      serves (an experiment: does the proxy's CPU priority
#                      change the cutover's p99? docs/benchmarks.md)
#   AUTOPATCH_BIN      the binary to measure (default target/release/autopatch,
#                      built first with `cargo build --release -p autopatch-cli`)
#
# Image B is image A with one more label (`podman commit`): another image id,
# the same pages, as a patched image would be. It is removed at the end.
#
# The peers, in the same iteration (the order rotates): the same watch load
# against the same load balancer and instances with no update, cut into the
# same two windows (the steady one, then one as long as that iteration's
# cutover):
# - "no update": nothing else happens. It shows how much p99 moves from one
#   window to the next on this machine when nothing changes.
# - "container churn": at the second window's start two containers of the
#   image start (`podman run -d`, one after the other, Apache started as the
#   user data does), and about as long after as the new group took to
#   complete they are stopped and removed (`podman stop`, `podman rm`), as
#   the update does with the old group's; no load balancer change. It shows
#   what the engine's work alone does to the proxy's latency on shared cores.
# A proxy (nginx) in front of the same instances would measure another proxy
# instead, which scripts/bench-proxy.sh already does.
#
# Clocks: the events' timestamps (1 ms), the instance folders' mtimes (a few
# ms), and watch's t_ms offset by the time watch was spawned (its run starts
# a few ms later, so its responses are placed up to that much early).
#
# Loopback only; every wait is bounded. On exit (however it exits) the
# stacks are deleted, the daemon stopped, image B removed and no instance
# container of this run's stacks may remain. The markdown report goes to
# stdout, progress to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/teardown-lab.sh
source "$ROOT/scripts/lib/teardown-lab.sh"

ITERATIONS=${BENCH_ITERATIONS:-3}
RATE=${BENCH_RATE:-600}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
STEADY_S=${BENCH_STEADY:-10}
TAIL_S=${BENCH_TAIL:-5}
PEER_WINDOW_S=${BENCH_PEER_WINDOW:-20}
BIN=${AUTOPATCH_BIN:-$ROOT/target/release/autopatch}
APP=pattern3-app
BASE=pattern3-base
UPDATE_DEADLINE_S=300

BENCH_NAME=bench-update
# shellcheck source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"
require_tools python3 podman curl timeout
ensure_engine
ensure_binary

WORK=$(mktemp -d /tmp/bench-update.XXXXXX)
STATE=$WORK/state
mkdir -p "$STATE"
RUN_ID="bu$$"
IMAGE_B=localhost/autopatch-bench/webapp-b:$RUN_ID
IMAGE_B_MADE=0
STACK_IDS=()
DAEMON_STARTED=0
VPC_NETWORK=""
WATCH_PID=""
PEER_CONTAINERS=()

ap() { "$BIN" --state-dir "$STATE" "$@"; }

cleanup() {
  local status=$? c
  set +e
  trap - INT TERM
  if [ -n "$WATCH_PID" ]; then kill -INT "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null; fi
  for c in "${PEER_CONTAINERS[@]}"; do podman rm -f "$c" >/dev/null 2>&1; done
  teardown_lab || status=1
  if [ "$IMAGE_B_MADE" = 1 ]; then podman rmi "$IMAGE_B" >/dev/null 2>&1; fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  printf 'nproc=%s\n' "$(nproc)"
  printf 'memory=%s\n' "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  printf 'cpu=%s\n' "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  printf 'kernel=%s\n' "$(uname -r)"
  printf 'engine_cpu=%s\n' "$(engine_cpu_describe || echo 'no podman service')"
  printf 'podman=%s\n' "$(podman version --format '{{.Server.Version}}' 2>/dev/null || podman --version)"
  printf 'date=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'loadavg_start=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'others=%s\n' "$(pgrep -x cargo | wc -l) cargo, $(podman ps -q | wc -l) containers running at the start"
  printf 'engine_nice=%s\n' "$(ps -o ni= -p "$(engine_service_pids | head -1)" 2>/dev/null | tr -d ' ' || true)"
  printf 'iterations=%s\n' "$ITERATIONS"
  printf 'load=%s\n' "--concurrency $CONCURRENCY --rate $RATE"
  printf 'steady=%s\n' "$STEADY_S"
  printf 'binary=%s\n' "${BIN#"$ROOT"/}"
  if git rev-parse --short HEAD >/dev/null 2>&1; then
    dirty=$(git status --porcelain --untracked-files=no -- crates templates Cargo.lock | wc -l)
    printf 'commit=%s%s\n' "$(git rev-parse --short HEAD)" "$( [ "$dirty" = 0 ] || echo " (+$dirty modified files)")"
  fi
} >"$WORK/machine.txt"

# Images A and B.
IMAGE_A=${BENCH_IMAGE:-$(newest_test_image)}
[ -n "$IMAGE_A" ] && podman image exists "$IMAGE_A" \
  || die "no image A: run the stacks tests once (crates/testkit bakes localhost/autopatch-test/webapp:bookworm-<hash>) or set BENCH_IMAGE"
log "image B: $IMAGE_A + a label, as $IMAGE_B"
container=$(podman create "$IMAGE_A")
IMAGE_B_MADE=1
podman commit -q --change "LABEL autopatch.bench.image=$IMAGE_B" "$container" "$IMAGE_B" >/dev/null
podman rm "$container" >/dev/null
{
  printf 'image_a=%s (image id %s)\n' "$IMAGE_A" "$(podman image inspect --format '{{.Id}}' "$IMAGE_A" | cut -c1-12)"
  printf 'image_b=%s (image id %s)\n' "$IMAGE_B" "$(podman image inspect --format '{{.Id}}' "$IMAGE_B" | cut -c1-12)"
} >>"$WORK/machine.txt"

log "autopatch up ($STATE)"
DAEMON_STARTED=1
ap up >&2 || die "autopatch up failed"
timeout 120 "$BIN" --state-dir "$STATE" stack create "$BASE" --template templates/pattern3-base.yml \
  >"$WORK/base-create.log" 2>&1 || { tail -20 "$WORK/base-create.log" >&2; die "stack create $BASE failed"; }
VPC_NETWORK=autopatch-$(ap --output json stack resources "$BASE" | python3 -c '
import json, sys
print(next(r["PhysicalResourceId"] for r in json.load(sys.stdin)["StackResources"] if r["LogicalResourceId"] == "Pattern3VPC"))')
log "stack create $APP on $IMAGE_A"
timeout 120 "$BIN" --state-dir "$STATE" stack create "$APP" --template templates/pattern3-app.yml \
  --parameter "BaselineVpcStack=$BASE" --parameter "AmazonMachineImage=$IMAGE_A" \
  >"$WORK/app-create.log" 2>&1 || { tail -20 "$WORK/app-create.log" >&2; die "stack create $APP failed"; }
STACK_IDS+=("$(ap --output json stack describe "$APP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Stacks"][0]["StackId"])')")
URL=http://$(ap --output json stack describe "$APP" | python3 -c '
import json, sys
print(next(o["OutputValue"] for o in json.load(sys.stdin)["Stacks"][0]["Outputs"] if o["OutputKey"] == "OutputPattern3ALBDNSName"))')/
ARN=$(ap --output json fleet | python3 -c 'import json,sys; print(json.load(sys.stdin)["AutoScalingGroups"][0]["TargetGroupARNs"][0])')
# CREATE_COMPLETE means signalled: wait until both targets are healthy.
for _ in $(seq 1 600); do
  [ "$(ap --output json targets --target-group "$ARN" | grep -Ec '"State": *"healthy"')" -ge 2 ] && break
  sleep 0.1
done
header=$(curl -fsS -D - -o /dev/null "$URL" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-image-id" {print $2}')
[ "$header" = "$IMAGE_A" ] || die "the page's X-Image-Id is '$header', not $IMAGE_A: bake the image from the current components/webapp.yml"
log "serving $URL (X-Image-Id: $header)"
if [ -n "${BENCH_LB_NICE:-}" ]; then
  lb_nice "$BENCH_LB_NICE"
  printf 'lb_nice=%s\n' "$BENCH_LB_NICE" >>"$WORK/machine.txt"
fi

# run_watch DIR SECONDS: the load, in the background; WATCH_PID, DIR/spawn.ns.
run_watch() {
  local dir=$1 seconds=$2
  now_ns >"$dir/spawn.ns"
  "$BIN" --state-dir "$STATE" watch "$URL" --concurrency "$CONCURRENCY" --rate "$RATE" \
    --duration "${seconds}s" --quiet --output json --jsonl "$dir/watch.jsonl" \
    >"$dir/summary.json" 2>"$dir/watch.err" &
  WATCH_PID=$!
}

stop_watch() {
  local dir=$1 rc=0
  kill -INT "$WATCH_PID" 2>/dev/null || true
  wait "$WATCH_PID" || rc=$?
  WATCH_PID=""
  echo "$rc" >"$dir/watch.rc"
}

# update_iteration I FROM TO: steady load, the update under it, a tail.
update_iteration() {
  local i=$1 from=$2 to=$3 dir=$WORK/run$1/update rc=0
  mkdir -p "$dir"
  log "iteration $i: update $from -> $to under load"
  ap --output json fleet >"$dir/fleet-before.json"
  run_watch "$dir" "$UPDATE_DEADLINE_S"
  sleep "$STEADY_S"
  now_ns >"$dir/update-start.ns"
  timeout "$UPDATE_DEADLINE_S" "$BIN" --state-dir "$STATE" stack update "$APP" --use-previous-template \
    --parameter "AmazonMachineImage=$to" >"$dir/update.out" 2>"$dir/update.err" || rc=$?
  now_ns >"$dir/update-end.ns"
  sleep "$TAIL_S"
  stop_watch "$dir"
  [ "$rc" = 0 ] || { cat "$dir/update.err" >&2; die "stack update exited $rc"; }
  grep -q "UPDATE_COMPLETE" "$dir/update.out" || die "stack update did not end UPDATE_COMPLETE: $(cat "$dir/update.out")"
  ap --output json stack events "$APP" >"$dir/events.json"
  ap --output json fleet >"$dir/fleet.json"
  python3 - "$STATE" "$dir" "$from" "$to" >"$dir/breakdown.json" <<'EOF'
import glob, json, os, re, sqlite3, subprocess, sys
from datetime import datetime

state, d, old_image, new_image = sys.argv[1:]
def iso_ms(text):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return int(datetime.fromisoformat(m.group(1) + zone).timestamp()) * 1000 + int((m.group(2) or "0").ljust(3, "0")[:3])
def iso_ns(text):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return int(datetime.fromisoformat(m.group(1) + zone).timestamp()) * 10**9 + int((m.group(2) or "0").ljust(9, "0")[:9])
read_ns = lambda name: int(open(os.path.join(d, name)).read())
spawn_ms = read_ns("spawn.ns") / 1e6
cli_start_ms = read_ns("update-start.ns") / 1e6

old_group = json.load(open(os.path.join(d, "fleet-before.json")))["AutoScalingGroups"][0]["AutoScalingGroupName"]
new_fleet = json.load(open(os.path.join(d, "fleet.json")))["AutoScalingGroups"]
assert len(new_fleet) == 1, new_fleet
new_group = new_fleet[0]["AutoScalingGroupName"]
assert new_group != old_group
new_instances = [x["InstanceId"] for x in new_fleet[0]["Instances"]]
assert all(x.get("ImageId") == new_image for x in new_fleet[0]["Instances"]), new_fleet

# This update's events: from its stack UPDATE_IN_PROGRESS on.
events = list(reversed(json.load(open(os.path.join(d, "events.json")))["StackEvents"]))
starts = [k for k, e in enumerate(events) if e["ResourceType"] == "AWS::CloudFormation::Stack"
          and e["ResourceStatus"] == "UPDATE_IN_PROGRESS" and iso_ms(e["Timestamp"]) >= cli_start_ms - 1]
events = events[starts[0]:]
def at(logical=None, status=None, physical=None):
    found = [iso_ms(e["Timestamp"]) for e in events
             if (logical is None or e["LogicalResourceId"] == logical) and e["ResourceStatus"] == status
             and (physical is None or e.get("PhysicalResourceId") == physical)]
    assert len(found) == 1, (logical, status, physical, found)
    return found[0]
update_start = at(status="UPDATE_IN_PROGRESS", logical="pattern3-app")
ev = {
    "new_group_in_progress": at("Pattern3ASG", "UPDATE_IN_PROGRESS", new_group),
    "new_group_complete": at("Pattern3ASG", "UPDATE_COMPLETE", new_group),
    "cleanup": at("pattern3-app", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
    "old_delete_in_progress": at("Pattern3ASG", "DELETE_IN_PROGRESS", old_group),
    "old_delete_complete": at("Pattern3ASG", "DELETE_COMPLETE", old_group),
    "update_complete": at("pattern3-app", "UPDATE_COMPLETE"),
}

# The new instances: launch (row), container running, in service
# (registered), signal.
db = sqlite3.connect(f"file:{state}/autopatch.db?mode=ro", uri=True)
instances = []
for instance_id in new_instances:
    (launched_at,) = db.execute("SELECT launched_at FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    folder = os.path.join(state, "instances", instance_id)
    inspect = json.loads(subprocess.run(["podman", "inspect", f"autopatch-{instance_id}"],
                                        check=True, capture_output=True, text=True).stdout)[0]
    signals = []
    for path in glob.glob(os.path.join(folder, "signals", "*.signal")):
        fields = dict(line.split("=", 1) for line in open(path).read().splitlines() if "=" in line)
        if fields.get("status") == "SUCCESS":
            signals.append(os.stat(path).st_mtime_ns / 1e6)
    assert signals, f"{instance_id}: no SUCCESS signal"
    instances.append({
        "id": instance_id,
        "launched": launched_at,
        "running": iso_ns(inspect["State"]["StartedAt"]) / 1e6,
        "in_service": os.stat(os.path.join(folder, "imds/latest/meta-data/local-ipv4")).st_mtime_ns / 1e6,
        "signal": min(signals),
    })

# The load, on the wall clock: watch's t_ms from its spawn.
responses = []
for line in open(os.path.join(d, "watch.jsonl")):
    r = json.loads(line)
    r["start"] = spawn_ms + r["t_ms"]
    r["end"] = r["start"] + r["latency_ms"]
    responses.append(r)
summary = json.load(open(os.path.join(d, "summary.json")))
new = [r for r in responses if r["error"] is None and r["image"] == new_image]
old = [r for r in responses if r["error"] is None and r["image"] == old_image]
unknown = [r for r in responses if r["error"] is None and r["image"] not in (new_image, old_image)]
assert not unknown, unknown[:3]
json.dump({
    "update_start": update_start, "cli_start": cli_start_ms,
    "cli_end": read_ns("update-end.ns") / 1e6, "spawn": spawn_ms,
    "events": ev, "instances": instances,
    "first_new": min(r["start"] for r in new), "first_new_end": min(r["end"] for r in new),
    "last_old": max(r["end"] for r in old),
    "requests": len(responses), "failures": sum(1 for r in responses if r["error"]),
    "failures_by_kind": summary["failures_by_kind"], "summary_failures": summary["failures"],
    "watch_rc": int(open(os.path.join(d, "watch.rc")).read()),
    "latency": [(r["start"], r["latency_ms"], r["error"] is not None) for r in responses],
}, sys.stdout)
EOF
}

# peer_iteration I KIND: the same load, no update, for the steady window
# plus BENCH_PEER_WINDOW seconds; KIND "churn" starts two containers at the
# second window's start and stops and removes them CHURN_S later.
CHURN_S=4.5
peer_iteration() {
  local i=$1 kind=$2 dir=$WORK/run$1/$2 n c
  mkdir -p "$dir"
  log "iteration $i: peer $kind (the same load, no update)"
  run_watch "$dir" $((STEADY_S + PEER_WINDOW_S))
  if [ "$kind" = churn ]; then
    sleep "$STEADY_S"
    now_ns >"$dir/churn-start.ns"
    for n in 1 2; do
      c="$RUN_ID-i$i-churn-$n"
      PEER_CONTAINERS+=("$c")
      podman run -d --name "$c" --init --cpus "$(( $(nproc) < 2 ? $(nproc) : 2 ))" --memory 7680m \
        -p 127.0.0.1::80 "$current" \
        bash -c 'apache2ctl start; exec sleep infinity' >/dev/null
    done
    sleep "$CHURN_S"
    now_ns >"$dir/churn-stop.ns"
    podman stop -t 10 "$RUN_ID-i$i-churn-1" "$RUN_ID-i$i-churn-2" >/dev/null
    podman rm "$RUN_ID-i$i-churn-1" "$RUN_ID-i$i-churn-2" >/dev/null
    now_ns >"$dir/churn-end.ns"
  fi
  wait "$WATCH_PID" || true
  WATCH_PID=""
  python3 - "$dir" >"$dir/breakdown.json" <<'EOF'
import json, os, sys
d = sys.argv[1]
spawn_ms = int(open(os.path.join(d, "spawn.ns")).read()) / 1e6
responses = [json.loads(line) for line in open(os.path.join(d, "watch.jsonl"))]
summary = json.load(open(os.path.join(d, "summary.json")))
churn = {}
for name in ("churn-start", "churn-stop", "churn-end"):
    path = os.path.join(d, name + ".ns")
    if os.path.exists(path):
        churn[name] = (int(open(path).read()) / 1e6 - spawn_ms) / 1000
json.dump({"spawn": spawn_ms, "requests": len(responses), "churn": churn,
           "failures": sum(1 for r in responses if r["error"]), "summary_failures": summary["failures"],
           "latency": [(spawn_ms + r["t_ms"], r["latency_ms"], r["error"] is not None) for r in responses]},
          sys.stdout)
EOF
}

current=$IMAGE_A
for i in $(seq 1 "$ITERATIONS"); do
  if [ "$current" = "$IMAGE_A" ]; then next=$IMAGE_B; else next=$IMAGE_A; fi
  case $(( i % 3 )) in
    1) update_iteration "$i" "$current" "$next"; peer_iteration "$i" none; peer_iteration "$i" churn ;;
    2) peer_iteration "$i" none; peer_iteration "$i" churn; update_iteration "$i" "$current" "$next" ;;
    0) peer_iteration "$i" churn; update_iteration "$i" "$current" "$next"; peer_iteration "$i" none ;;
  esac
  current=$next
done
printf 'loadavg_end=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/machine.txt"

# The report.
python3 - "$WORK" "$ITERATIONS" "$STEADY_S" "$PEER_WINDOW_S" templates/pattern3-app.yml <<'EOF'
import json, math, re, statistics, sys
work, n, steady_s, peer_window_s, template = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
machine = dict(line.rstrip("\n").split("=", 1) for line in open(f"{work}/machine.txt"))
runs = [json.load(open(f"{work}/run{i}/update/breakdown.json")) for i in range(1, n + 1)]
peers = [json.load(open(f"{work}/run{i}/none/breakdown.json")) for i in range(1, n + 1)]
churns = [json.load(open(f"{work}/run{i}/churn/breakdown.json")) for i in range(1, n + 1)]

# The template's settings.
text = open(template).read()
def setting(pattern):
    m = re.search(pattern, text)
    if not m:
        raise SystemExit(f"{template}: no match for {pattern}")
    return float(m.group(1))
threshold = setting(r"\n\s*HealthyThresholdCount:\s*(\d+)")
interval = setting(r"\n\s*HealthCheckIntervalSeconds:\s*(\d+)")
delay = setting(r"deregistration_delay\.timeout_seconds\s*\n\s*Value:\s*\"?(\d+)")

def p99(values):
    values = sorted(values)
    return values[max(1, math.ceil(0.99 * len(values))) - 1] if values else float("nan")
def p50(values):
    values = sorted(values)
    return values[max(1, math.ceil(0.5 * len(values))) - 1] if values else float("nan")
def window(latency, lo, hi):
    return [l for start, l, failed in latency if lo <= start < hi]

rows = []
for i, (r, p, c) in enumerate(zip(runs, peers, churns)):
    u, ev = r["update_start"], r["events"]
    first_signal = min(x["signal"] for x in r["instances"])
    last_signal = max(x["signal"] for x in r["instances"])
    steady = window(r["latency"], r["spawn"] + 1000, u)          # the first second warms up
    cutover = window(r["latency"], u, ev["update_complete"])
    length = ev["update_complete"] - u
    peer_steady = window(p["latency"], p["spawn"] + 1000, p["spawn"] + steady_s * 1000)
    peer_cut = window(p["latency"], p["spawn"] + steady_s * 1000, p["spawn"] + steady_s * 1000 + min(length, peer_window_s * 1000))
    churn_steady = window(c["latency"], c["spawn"] + 1000, c["spawn"] + steady_s * 1000)
    churn_cut = window(c["latency"], c["spawn"] + steady_s * 1000, c["spawn"] + steady_s * 1000 + min(length, peer_window_s * 1000))
    first_in_service = min(x["in_service"] for x in r["instances"])
    last_in_service = max(x["in_service"] for x in r["instances"])
    floor_traffic = (first_signal - u) / 1000 + threshold * interval
    floor_retired = (last_signal - u) / 1000 + threshold * interval + delay
    # Health checks start when an instance is registered (in service), while
    # its user data runs; draining ends when no request is in flight.
    tight_traffic = (first_in_service - u) / 1000 + threshold * interval
    tight_retired = max((last_in_service - u) / 1000 + threshold * interval, (last_signal - u) / 1000)
    rows.append({
        "failures": r["failures"], "requests": r["requests"], "by_kind": r["failures_by_kind"],
        "rps": len(cutover) / (length / 1000) if length else 0,
        "steady_p50": p50(steady), "steady_p99": p99(steady), "steady_max": max(steady), "steady_n": len(steady),
        "cut_p50": p50(cutover), "cut_p99": p99(cutover), "cut_max": max(cutover), "cut_n": len(cutover),
        "ratio": p99(cutover) / p99(steady),
        "peer_steady_p99": p99(peer_steady), "peer_cut_p99": p99(peer_cut),
        "peer_ratio": p99(peer_cut) / p99(peer_steady), "peer_failures": p["failures"], "peer_requests": p["requests"],
        "churn_steady_p99": p99(churn_steady), "churn_cut_p99": p99(churn_cut),
        "churn_ratio": p99(churn_cut) / p99(churn_steady), "churn_failures": c["failures"], "churn_requests": c["requests"],
        "churn_stop": c["churn"].get("churn-stop", 0) - steady_s, "churn_end": c["churn"].get("churn-end", 0) - steady_s,
        "peer_window_s": min(length, peer_window_s * 1000) / 1000,
        "cli_to_event": (u - r["cli_start"]) / 1000,
        "new_group_start": (ev["new_group_in_progress"] - u) / 1000,
        "launch_first": (min(x["launched"] for x in r["instances"]) - u) / 1000,
        "running_last": (max(x["running"] for x in r["instances"]) - u) / 1000,
        "in_service_first": (min(x["in_service"] for x in r["instances"]) - u) / 1000,
        "in_service_last": (max(x["in_service"] for x in r["instances"]) - u) / 1000,
        "signal_first": (first_signal - u) / 1000,
        "signal_last": (last_signal - u) / 1000,
        "first_new": (r["first_new"] - u) / 1000,
        "first_new_end": (r["first_new_end"] - u) / 1000,
        "new_group_complete": (ev["new_group_complete"] - u) / 1000,
        "cleanup": (ev["cleanup"] - u) / 1000,
        "old_delete_in_progress": (ev["old_delete_in_progress"] - u) / 1000,
        "last_old": (r["last_old"] - u) / 1000,
        "old_delete_complete": (ev["old_delete_complete"] - u) / 1000,
        "update_complete": length / 1000,
        "cli_done": (r["cli_end"] - u) / 1000,
        "floor_traffic": floor_traffic, "floor_retired": floor_retired,
        "tight_traffic": tight_traffic, "tight_retired": tight_retired,
        "traffic_vs_tight": ((r["first_new"] - u) / 1000) / tight_traffic,
        "retired_vs_tight": ((ev["old_delete_complete"] - u) / 1000) / tight_retired,
        "traffic_vs_floor": ((r["first_new"] - u) / 1000) / floor_traffic,
        "retired_vs_floor": ((ev["old_delete_complete"] - u) / 1000) / floor_retired,
        "watch_rc": r["watch_rc"], "summary_failures": r["summary_failures"],
    })

def med(key, fmt="{:.3f}"):
    values = [row[key] for row in rows]
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"

print("## Stack update cutover benchmark (pattern3-app, AutoScalingReplacingUpdate)\n")
print(f"- autopatch: {machine['binary']} at commit {machine.get('commit', '?')}")
print(f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} memory, "
      f"kernel {machine['kernel']}, podman {machine['podman']}")
print(f"- engine: {machine.get('engine_cpu', '?')}")
print(f"- date: {machine['date']}; load average at start {machine['loadavg_start']}, at end {machine['loadavg_end']}; {machine['others']}")
print(f"- image A: {machine['image_a']}; image B: {machine['image_b']}")
print(f"- load: `autopatch watch {machine['load']}` on `/`, {steady_s:.0f} s before each update; "
      f"{n} updates, alternating A→B and B→A; figures are medians (min–max)")
if machine.get("engine_nice", "0") not in ("0", ""):
    print(f"- the engine (`podman system service`) runs at nice {machine['engine_nice']}")
if "lb_nice" in machine:
    print(f"- experiment: the load balancer's worker threads at nice {machine['lb_nice']} (BENCH_LB_NICE)")
print(f"- template: HealthyThresholdCount {threshold:.0f} × HealthCheckIntervalSeconds {interval:.0f} s, "
      f"deregistration delay {delay:.0f} s\n")

print("### Failures and latency\n")
print("| measure | update | peer: no update | peer: container churn, no update |")
print("|---|---|---|---|")
count = lambda key: f"{statistics.median(r[key] for r in rows):.0f}"
print(f"| failed requests | {med('failures', '{:.0f}')} of {med('requests', '{:.0f}')} | {count('peer_failures')} of {count('peer_requests')} | {count('churn_failures')} of {count('churn_requests')} |")
print(f"| p99 steady window (ms) | {med('steady_p99')} | {med('peer_steady_p99')} | {med('churn_steady_p99')} |")
print(f"| p99 cutover window (ms) | {med('cut_p99')} | {med('peer_cut_p99')} | {med('churn_cut_p99')} |")
print(f"| **p99 cutover / steady** | **{med('ratio', '{:.2f}')}** | {med('peer_ratio', '{:.2f}')} | {med('churn_ratio', '{:.2f}')} |")
print(f"| p50 steady / cutover (ms) | {med('steady_p50')} / {med('cut_p50')} | | |")
print(f"| max steady / cutover (ms) | {med('steady_max', '{:.1f}')} / {med('cut_max', '{:.1f}')} | | |")
print(f"| requests/s in the cutover window | {med('rps', '{:.0f}')} | | |")
print(f"\nChurn peer: two `podman run -d` at the second window's start, `podman stop` + `podman rm` at {med('churn_stop', '{:.2f}')} s, done at {med('churn_end', '{:.2f}')} s.")
print()
print("### Timeline from the update's start (stack UPDATE_IN_PROGRESS), seconds\n")
print("| event | time |")
print("|---|---|")
for label, key in (
    ("`stack update` command start → stack UPDATE_IN_PROGRESS", "cli_to_event"),
    ("new group UPDATE_IN_PROGRESS (launch configuration replaced first)", "new_group_start"),
    ("first new instance launched (row written)", "launch_first"),
    ("first new instance in service (registered with the target group)", "in_service_first"),
    ("last new instance container running", "running_last"),
    ("first new instance signalled", "signal_first"),
    ("last new instance signalled", "signal_last"),
    ("**first response served by the new image** (request start)", "first_new"),
    ("new group UPDATE_COMPLETE (signals and health checks passed)", "new_group_complete"),
    ("stack UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "cleanup"),
    ("old group DELETE_IN_PROGRESS (deregistered: draining)", "old_delete_in_progress"),
    ("**last response served by the old image** (response end)", "last_old"),
    ("**old group DELETE_COMPLETE** (containers stopped and removed)", "old_delete_complete"),
    ("stack UPDATE_COMPLETE", "update_complete"),
    ("`stack update` command exits", "cli_done"),
):
    print(f"| {label} | {med(key)} |")
print()
print("### Against the template's floor\n")
print("| | measured | floor | measured / floor |")
print("|---|---|---|---|")
print(f"| new group takes traffic: first new-image response | {med('first_new')} s | {med('floor_traffic')} s "
      f"(first signal + {threshold:.0f} × {interval:.0f} s) | **{med('traffic_vs_floor', '{:.2f}')}** |")
print(f"| old group retired: DELETE_COMPLETE | {med('old_delete_complete')} s | {med('floor_retired')} s "
      f"(last signal + {threshold:.0f} × {interval:.0f} s + {delay:.0f} s) | **{med('retired_vs_floor', '{:.2f}')}** |")
print(f"| new group takes traffic, against health checks from registration | {med('first_new')} s | {med('tight_traffic')} s "
      f"(first in service + {threshold:.0f} × {interval:.0f} s) | {med('traffic_vs_tight', '{:.2f}')} |")
print(f"| old group retired, against no wait for the delay | {med('old_delete_complete')} s | {med('tight_retired')} s "
      f"(last in service + {threshold:.0f} × {interval:.0f} s) | {med('retired_vs_tight', '{:.2f}')} |")
print()
print("Per update: " + "; ".join(
    f"{i + 1}: {row['failures']} failed of {row['requests']}, p99 {row['steady_p99']:.2f} → {row['cut_p99']:.2f} ms "
    f"(no update {row['peer_steady_p99']:.2f} → {row['peer_cut_p99']:.2f} ms, churn {row['churn_steady_p99']:.2f} → {row['churn_cut_p99']:.2f} ms, over {row['peer_window_s']:.1f} s), "
    f"traffic {row['first_new']:.2f} s, retired {row['old_delete_complete']:.2f} s, complete {row['update_complete']:.2f} s"
    for i, row in enumerate(rows)))
bad = [(i + 1, row["by_kind"]) for i, row in enumerate(rows) if row["failures"]]
if bad:
    print(f"\nFailures by kind: {bad}")
mismatch = [i + 1 for i, row in enumerate(rows) if row["summary_failures"] != row["failures"]]
if mismatch:
    print(f"\nwatch's summary and its JSON lines disagree on failures in updates {mismatch}")
EOF
