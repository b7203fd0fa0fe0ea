#!/usr/bin/env bash
# Stack create benchmark (issue 3): how long `autopatch stack create
# pattern3-app` takes on this machine, broken down into where the time goes
# (resources before the Auto Scaling group, instances started, user data
# until the signal, signals to CREATE_COMPLETE, health checks), and what the
# same work takes by hand with bare podman, measured in the same run.
#
# Usage (from anywhere, as root, with Podman answering on its API socket):
#
#   scripts/bench-stack.sh           # BENCH_ITERATIONS=3 creates, medians reported
#
# Environment:
#   BENCH_ITERATIONS   creates to measure (default 3: create, measure, delete, repeat)
#   BENCH_IMAGE        the AmazonMachineImage to use (default: the engine reference
#                      newest localhost/autopatch-test/webapp:bookworm-<hash> if one exists, else
#                      an image baked by this script in its state directory)
#   BENCH_BAKE=1       bake the webapp image even if the test image exists
#   BENCH_KEEP=1       keep the temporary directory (stacks, containers and
#                      images this script made are still removed)
#   AUTOPATCH_BIN      the binary to measure (default target/release/autopatch,
#                      built first with `cargo build --release -p autopatch-cli`)
#
# What it does: a fresh temporary state directory, `autopatch up`, the base
# stack (templates/pattern3-base.yml), then per iteration `stack create
# pattern3-app` (templates/pattern3-app.yml) while polling the fleet and the
# target group's health every 100 ms until both targets are `healthy`; the
# breakdown is then read from the stack's events (DescribeStackEvents), the
# state database (instances.launched_at), the instance folders (mtimes of
# imds/.../local-ipv4, user-data.started, signals/*.signal, user-data.exit)
# and `podman inspect` (State.StartedAt), before `stack delete` removes them.
# All clocks are this host's, so the timestamps compare directly; file mtimes
# have the kernel's coarse resolution (a few ms), event timestamps 1 ms, and
# "both healthy" is the first 100 ms poll that saw it.
#
# The peer, in the same iteration (alternating which goes first): two
# `podman run -d` of the same image (sequential, as the fleet launches),
# port 80 published on 127.0.0.1, each running the template's user data
# steps as its command (apache2ctl start, wait for curl -fsS
# http://127.0.0.1/ inside; no cfn-signal), and the time until both answer
# on their host ports (curl every 50 ms). No load balancer, no health checks,
# no state: the floor autopatch's orchestration sits on.
#
# Loopback only: instances and the load balancer listen on 127.0.0.1. Every
# wait is bounded. On exit (however it exits) the stacks are deleted, the
# daemon stopped, the peer containers, the images this script baked and the
# temporary directory removed, and no instance container of its stacks may
# remain. The markdown report goes to stdout, progress and logs to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/teardown-lab.sh
source "$ROOT/scripts/lib/teardown-lab.sh"

ITERATIONS=${BENCH_ITERATIONS:-3}
BIN=${AUTOPATCH_BIN:-$ROOT/target/release/autopatch}
GOLDEN_TEST_IMAGE=localhost/autopatch-test/golden:bookworm
APP=pattern3-app
BASE=pattern3-base
INSTANCES=2                   # the template's NumberOfInstanceCluster default
HEALTH_DEADLINE_S=120         # create + both healthy, per iteration
PEER_DEADLINE_S=60

BENCH_NAME=bench-stack
# shellcheck source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"
require_tools python3 podman curl timeout
ensure_engine
ensure_binary
# The test image's tag carries a hash of the webapp components (crates/testkit).
TEST_IMAGE=$(newest_test_image)
TEST_IMAGE=${TEST_IMAGE:-localhost/autopatch-test/webapp:bookworm}

WORK=$(mktemp -d /tmp/bench-stack.XXXXXX)
STATE=$WORK/state
mkdir -p "$STATE"
RUN_ID="bs$$"                 # lowercase: engine repository names must be
CREATED_REFS=()               # engine tags this script made (baked images)
PEER_CONTAINERS=()
STACK_IDS=()                  # every stack this script created
DAEMON_STARTED=0
VPC_NETWORK=""                # the base stack's VPC network, autopatch-<vpc id>
CREATE_PID=""                 # the `stack create` being measured, while it runs

# ap ARGS...: the binary on this run's state directory.
ap() { "$BIN" --state-dir "$STATE" "$@"; }

cleanup() {
  local status=$? c
  set +e
  trap - INT TERM
  for c in "${PEER_CONTAINERS[@]}"; do podman rm -f "$c" >/dev/null 2>&1; done
  # A create cut short goes on in the daemon; its follower can go.
  if [ -n "$CREATE_PID" ]; then kill "$CREATE_PID" 2>/dev/null; fi
  teardown_lab || status=1
  if [ ${#CREATED_REFS[@]} -gt 0 ]; then
    log "removing the ${#CREATED_REFS[@]} images this run baked"
    for ref in "${CREATED_REFS[@]}"; do podman rmi -f "$ref" >/dev/null 2>&1; done
  fi
  log "instance containers on this host now (podman ps -a --filter label=autopatch.role=instance): $(podman ps -a -q --filter label=autopatch.role=instance | wc -l)"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The machine, read now.
{
  printf 'nproc=%s\n' "$(nproc)"
  printf 'memory=%s\n' "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  printf 'cpu=%s\n' "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  printf 'kernel=%s\n' "$(uname -r)"
  printf 'engine_cpu=%s\n' "$(engine_cpu_describe || echo 'no podman service')"
  printf 'podman=%s\n' "$(podman version --format '{{.Server.Version}}' 2>/dev/null || podman --version)"
  printf 'date=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'loadavg_start=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'iterations=%s\n' "$ITERATIONS"
  printf 'binary=%s\n' "${BIN#"$ROOT"/}"
  if git rev-parse --short HEAD >/dev/null 2>&1; then
    dirty=$(git status --porcelain --untracked-files=no -- crates templates Cargo.lock | wc -l)
    printf 'commit=%s%s\n' "$(git rev-parse --short HEAD)" "$( [ "$dirty" = 0 ] || echo " (+$dirty modified files)")"
  fi
} >"$WORK/machine.txt"

# The image: the test suite's engine reference, or one baked here the way
# crates/testkit/src/lib.rs bakes it (the shipped webapp components
# on the golden image), in this run's state directory.
bake_image() {
  local parent recipe=$WORK/bake/recipe.yml pipeline=$WORK/bake/pipeline.yml
  mkdir -p "$WORK/bake"
  if podman image exists "$GOLDEN_TEST_IMAGE"; then
    parent=$GOLDEN_TEST_IMAGE
  else
    log "bootstrapping a golden image ($RUN_ID-golden) with mmdebstrap"
    ap image bootstrap --name "$RUN_ID-golden" >"$WORK/bake/bootstrap.log" 2>&1 \
      || { tail -20 "$WORK/bake/bootstrap.log" >&2; die "image bootstrap failed"; }
    CREATED_REFS+=("$(engine_ref "$STATE" "$RUN_ID-golden/1.0.0/1")")
    parent=$RUN_ID-golden
  fi
  ap component create --file components/webapp.yml >/dev/null
  ap component create --file components/webapp-test.yml >/dev/null
  printf 'name: %s-webapp\nsemanticVersion: 1.0.0\nparentImage: %s\ncomponents:\n  - componentArn: webapp\n  - componentArn: webapp-test\n' \
    "$RUN_ID" "$parent" >"$recipe"
  printf 'name: %s-webapp\nimageRecipeArn: %s-webapp/1.0.0\n' "$RUN_ID" "$RUN_ID" >"$pipeline"
  ap recipe create --file "$recipe" >/dev/null
  ap pipeline create --file "$pipeline" >/dev/null
  log "baking $RUN_ID-webapp on $parent (pipeline start)"
  ap pipeline start "$RUN_ID-webapp" >"$WORK/bake/start.log" 2>&1 \
    || { tail -30 "$WORK/bake/start.log" >&2; die "pipeline start $RUN_ID-webapp failed"; }
  IMAGE=$RUN_ID-webapp/1.0.0/1
  ENGINE_IMAGE=$(engine_ref "$STATE" "$IMAGE")
  CREATED_REFS+=("$ENGINE_IMAGE")
  podman image exists "$ENGINE_IMAGE" || die "the baked image $ENGINE_IMAGE is not in the engine"
  IMAGE_NOTE="baked by this script: autopatch image version $IMAGE (engine $ENGINE_IMAGE) from $parent"
}

if [ -n "${BENCH_IMAGE:-}" ]; then
  IMAGE=$BENCH_IMAGE ENGINE_IMAGE=$BENCH_IMAGE
  podman image exists "$ENGINE_IMAGE" || die "BENCH_IMAGE must be an engine reference that exists: $BENCH_IMAGE"
  IMAGE_NOTE="given: engine reference $IMAGE"
elif [ "${BENCH_BAKE:-0}" != 1 ] && podman image exists "$TEST_IMAGE"; then
  IMAGE=$TEST_IMAGE ENGINE_IMAGE=$TEST_IMAGE
  IMAGE_NOTE="the test suite's engine reference $TEST_IMAGE (image id $(podman image inspect --format '{{.Id}}' "$TEST_IMAGE" | cut -c1-12))"
else
  bake_image
fi
log "image: $IMAGE_NOTE"
printf 'image=%s\n' "$IMAGE_NOTE" >>"$WORK/machine.txt"

log "autopatch up ($STATE)"
DAEMON_STARTED=1
ap up >&2 || die "autopatch up failed"
timeout 120 "$BIN" --state-dir "$STATE" stack create "$BASE" --template templates/pattern3-base.yml \
  >"$WORK/base-create.log" 2>&1 || { tail -20 "$WORK/base-create.log" >&2; die "stack create $BASE failed"; }
STACK_IDS+=("$(ap --output json stack describe "$BASE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Stacks"][0]["StackId"])')")
VPC_NETWORK=autopatch-$(ap --output json stack resources "$BASE" | python3 -c '
import json, sys
print(next(r["PhysicalResourceId"] for r in json.load(sys.stdin)["StackResources"] if r["LogicalResourceId"] == "Pattern3VPC"))')
podman network exists "$VPC_NETWORK" || die "the base stack made no engine network $VPC_NETWORK"

# autopatch_iteration I: create the application stack, poll until both
# targets are healthy, read the breakdown, delete the stack.
autopatch_iteration() {
  local i=$1 dir=$WORK/run$1/autopatch arn="" healthy=0 t0 end_ns cpid polls=0 deadline rc stack_id
  mkdir -p "$dir"
  log "iteration $i: stack create $APP"
  t0=$(now_ns)
  (
    rc=0
    timeout "$HEALTH_DEADLINE_S" "$BIN" --state-dir "$STATE" stack create "$APP" --template templates/pattern3-app.yml \
      --parameter "BaselineVpcStack=$BASE" --parameter "AmazonMachineImage=$IMAGE" \
      >"$dir/create.out" 2>"$dir/create.err" || rc=$?
    now_ns >"$dir/create.end"
    echo "$rc" >"$dir/create.rc"
  ) &
  cpid=$!
  CREATE_PID=$cpid
  deadline=$(( t0 + HEALTH_DEADLINE_S * 1000000000 ))
  # The target group's ARN appears in the fleet once the Auto Scaling group
  # starts; from then on its health, until both targets are healthy.
  while :; do
    if [ -z "$arn" ]; then
      arn=$(ap --output json fleet 2>/dev/null \
        | grep -o '"arn:aws:elasticloadbalancing:[^"]*:targetgroup/[^"]*"' | head -1 | tr -d '"') || arn=""
    fi
    if [ -n "$arn" ]; then
      healthy=$(ap --output json targets --target-group "$arn" 2>/dev/null | grep -Ec '"State": *"healthy"') || healthy=0
      polls=$((polls + 1))
      if [ "$healthy" -ge "$INSTANCES" ]; then HEALTHY_NS=$(now_ns); break; fi
    fi
    if [ -e "$dir/create.rc" ] && [ "$(cat "$dir/create.rc")" != 0 ]; then
      cat "$dir/create.err" >&2; die "stack create $APP failed (exit $(cat "$dir/create.rc"))"
    fi
    [ "$(now_ns)" -lt "$deadline" ] || die "$INSTANCES targets not healthy within ${HEALTH_DEADLINE_S}s"
    sleep 0.1
  done
  wait "$cpid" || true
  CREATE_PID=""
  rc=$(cat "$dir/create.rc")
  [ "$rc" = 0 ] || { cat "$dir/create.err" >&2; die "stack create $APP exited $rc"; }
  end_ns=$(cat "$dir/create.end")

  # Read everything before the delete removes it.
  ap --output json stack events "$APP" >"$dir/events.json"
  ap --output json fleet >"$dir/fleet.json"
  stack_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["StackEvents"][0]["StackId"])' "$dir/events.json")
  STACK_IDS+=("$stack_id")
  python3 - "$STATE" "$APP" "$stack_id" "$dir/events.json" "$t0" "$HEALTHY_NS" "$end_ns" "$polls" "$arn" \
    >"$dir/breakdown.json" <<'EOF'
import glob, json, os, re, sqlite3, subprocess, sys
from datetime import datetime

state, app, stack_id, events_path, t0, healthy, end, polls, arn = sys.argv[1:]
t0, healthy, end = int(t0), int(healthy), int(end)

def iso_ns(text):
    """RFC 3339 with up to 9 fractional digits (podman's, the API's) -> ns since the epoch."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        raise SystemExit(f"unparsed time {text!r}")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    seconds = datetime.fromisoformat(m.group(1) + zone).timestamp()
    fraction = (m.group(2) or "0").ljust(9, "0")[:9]
    return int(seconds) * 1_000_000_000 + int(fraction)

events = json.load(open(events_path))["StackEvents"]
def event(logical, status):
    found = [e for e in events if e["LogicalResourceId"] == logical and e["ResourceStatus"] == status]
    if len(found) != 1:
        raise SystemExit(f"expected one {logical} {status} event, found {len(found)}")
    return iso_ns(found[0]["Timestamp"])
stack_started = event(app, "CREATE_IN_PROGRESS")
asg_started = event("Pattern3ASG", "CREATE_IN_PROGRESS")
asg_complete = event("Pattern3ASG", "CREATE_COMPLETE")
stack_complete = event(app, "CREATE_COMPLETE")
resources_before_asg = sorted({e["LogicalResourceId"] for e in events
                               if e["ResourceStatus"] == "CREATE_COMPLETE" and iso_ns(e["Timestamp"]) <= asg_started
                               and e["LogicalResourceId"] != app})

db = sqlite3.connect(f"file:{state}/autopatch.db?mode=ro", uri=True)
# The store's own copy of the events (ms), to check the API's against.
db_events = {(logical, status): at for logical, status, at in db.execute(
    "SELECT logical_id, status, at FROM stack_events WHERE stack_id = ?", (stack_id,))}
assert db_events[(app, "CREATE_COMPLETE")] * 1_000_000 == stack_complete, "store and API events disagree"
rows = db.execute("SELECT instance_id, launched_at, lifecycle, zone FROM instances "
                  "WHERE stack_id = ? ORDER BY launched_at", (stack_id,)).fetchall()

instances = []
for instance_id, launched_at, lifecycle, zone in rows:
    folder = os.path.join(state, "instances", instance_id)
    inspect = json.loads(subprocess.run(["podman", "inspect", f"autopatch-{instance_id}"],
                                        check=True, capture_output=True, text=True).stdout)[0]
    def mtime(path):
        return os.stat(os.path.join(folder, path)).st_mtime_ns
    signals = []
    for path in glob.glob(os.path.join(folder, "signals", "*.signal")):
        fields = dict(line.split("=", 1) for line in open(path).read().splitlines() if "=" in line)
        signals.append((os.stat(path).st_mtime_ns, fields.get("status"), fields.get("resource")))
    success = [at for at, status, resource in signals if status == "SUCCESS" and resource == "Pattern3ASG"]
    if not success:
        raise SystemExit(f"{instance_id}: no SUCCESS signal in {folder}/signals: {signals}")
    instances.append({
        "id": instance_id, "zone": zone, "lifecycle": lifecycle,
        "launched": launched_at * 1_000_000,              # row written Pending (ms)
        "created": iso_ns(inspect["Created"]),
        "running": iso_ns(inspect["State"]["StartedAt"]),
        "in_service": mtime("imds/latest/meta-data/local-ipv4"),   # written by complete_launch
        "user_data_started": mtime("user-data.started"),
        "signal": min(success),
        "user_data_exit": mtime("user-data.exit"),
        "exit_code": open(os.path.join(folder, "user-data.exit")).read().strip(),
        "log": open(os.path.join(folder, "log", "user-data.log")).read()[-400:],
    })
if len(instances) < 2:
    raise SystemExit(f"expected 2 instances of {stack_id}, found {len(instances)}")

ms = lambda a, b: (b - a) / 1e6
last_running = max(x["running"] for x in instances)
last_signal = max(x["signal"] for x in instances)
last_in_service = max(x["in_service"] for x in instances)
phases = {
    "p1_validation_resources": ms(t0, asg_started),
    "p1a_request_validation": ms(t0, stack_started),
    "p1b_resources_before_asg": ms(stack_started, asg_started),
    "p2_instances_started": ms(asg_started, last_running),
    "p3_user_data_to_signal": ms(last_running, last_signal),
    "p4_signals_to_complete": ms(last_signal, stack_complete),
    "p4a_signal_to_asg_complete": ms(last_signal, asg_complete),
    "p4b_asg_to_stack_complete": ms(asg_complete, stack_complete),
    "p5_health": ms(stack_complete, healthy),
    "total": ms(t0, healthy),
    "to_create_complete": ms(t0, stack_complete),
    "create_command": ms(t0, end),
    "in_service_to_healthy": ms(last_in_service, healthy),
    # per instance (lists)
    "i_launch_to_running": [ms(x["launched"], x["running"]) for x in instances],
    "i_create_to_running": [ms(x["created"], x["running"]) for x in instances],
    "i_running_to_in_service": [ms(x["running"], x["in_service"]) for x in instances],
    "i_running_to_user_data": [ms(x["running"], x["user_data_started"]) for x in instances],
    "i_user_data_to_signal": [ms(x["user_data_started"], x["signal"]) for x in instances],
    "i_running_to_signal": [ms(x["running"], x["signal"]) for x in instances],
    "i_asg_to_launch": [ms(asg_started, x["launched"]) for x in instances],
}
json.dump({"phases": phases, "instances": instances, "polls": int(polls), "target_group": arn,
           "resources_before_asg": resources_before_asg, "stack_id": stack_id}, sys.stdout, indent=1)
EOF

  local t
  t=$(now_ns)
  timeout 120 "$BIN" --state-dir "$STATE" stack delete "$APP" >"$dir/delete.log" 2>&1 \
    || { tail -20 "$dir/delete.log" >&2; die "stack delete $APP failed"; }
  echo $(( ($(now_ns) - t) / 1000000 )) >"$dir/delete.ms"
  local left
  left=$(podman ps -a -q --filter "label=autopatch.stack=$stack_id" | wc -l)
  [ "$left" = 0 ] || die "$left instance containers of $stack_id remain after stack delete"
  local instance
  for instance in $(python3 -c 'import json,sys; print(" ".join(x["id"] for x in json.load(open(sys.argv[1]))["instances"]))' "$dir/breakdown.json"); do
    [ ! -e "$STATE/instances/$instance" ] || die "the folder of $instance remains after stack delete"
  done
}

# The peer's command: the template's user data steps, without cfn-signal;
# then it prints when the page answered inside and stays up.
PEER_USER_DATA=$(cat <<'PEER'
apache2ctl start
timeout 30 bash -c 'until curl -fsS -o /dev/null http://127.0.0.1/; do sleep 1; done'
echo "user-data-exit=$? at=$(date +%s%N)"
exec sleep infinity
PEER
)

# peer_iteration I: two containers by hand, until both answer on their host ports.
peer_iteration() {
  local i=$1 dir=$WORK/run$1/peer t0 t_run1 t_run2 answered deadline n c ports=() port
  mkdir -p "$dir"
  log "iteration $i: peer (two podman run -d, user data, until both answer)"
  t0=$(now_ns)
  for n in 1 2; do
    c="$RUN_ID-i$i-peer-$n"
    PEER_CONTAINERS+=("$c")
    # The limits of an m1.large instance (2 vCPUs, capped at the host's cores; 7680 MiB), with an init, as autopatch runs it.
    podman run -d --name "$c" --init --cpus "$(( $(nproc) < 2 ? $(nproc) : 2 ))" --memory 7680m \
      -p 127.0.0.1::80 --label "bench-stack=$RUN_ID" "$ENGINE_IMAGE" bash -c "$PEER_USER_DATA" >/dev/null
    eval "t_run$n=\$(now_ns)"
  done
  for n in 1 2; do
    port=$(podman port "$RUN_ID-i$i-peer-$n" 80/tcp | head -1)
    ports+=("${port##*:}")
  done
  deadline=$(( t0 + PEER_DEADLINE_S * 1000000000 ))
  while :; do
    answered=0
    for port in "${ports[@]}"; do
      curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null && answered=$((answered + 1))
    done
    if [ "$answered" = 2 ]; then break; fi
    [ "$(now_ns)" -lt "$deadline" ] || die "peer: both containers not answering within ${PEER_DEADLINE_S}s"
    sleep 0.05
  done
  local both_ns
  both_ns=$(now_ns)
  python3 - "$t0" "$t_run1" "$t_run2" "$both_ns" "$RUN_ID-i$i-peer-1" "$RUN_ID-i$i-peer-2" >"$dir/breakdown.json" <<'EOF'
import json, re, subprocess, sys
from datetime import datetime
t0, run1, run2, both = map(int, sys.argv[1:5])
names = sys.argv[5:]
def iso_ns(text):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return int(datetime.fromisoformat(m.group(1) + zone).timestamp()) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0")[:9])
running, inside = [], []
for name in names:
    info = json.loads(subprocess.run(["podman", "inspect", name], check=True, capture_output=True, text=True).stdout)[0]
    running.append(iso_ns(info["State"]["StartedAt"]))
    logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
    m = re.search(r"user-data-exit=(\d+) at=(\d+)", logs.stdout + logs.stderr)
    if not m or m.group(1) != "0":
        raise SystemExit(f"peer {name}: the page never answered inside: {logs.stdout[-300:]} {logs.stderr[-300:]}")
    inside.append(int(m.group(2)))
ms = lambda a, b: (b - a) / 1e6
json.dump({"phases": {
    "run_both": ms(t0, run2),
    "running_both": ms(t0, max(running)),
    "user_data_both": ms(max(running), max(inside)),
    "answer_both": ms(max(inside), both),
    "total": ms(t0, both),
    "i_running_to_page": [ms(r, x) for r, x in zip(running, inside)],
}}, sys.stdout, indent=1)
EOF
  local t
  t=$(now_ns)
  podman rm -f "$RUN_ID-i$i-peer-1" "$RUN_ID-i$i-peer-2" >/dev/null
  echo $(( ($(now_ns) - t) / 1000000 )) >"$dir/rm.ms"
}

for i in $(seq 1 "$ITERATIONS"); do
  if (( i % 2 == 1 )); then
    autopatch_iteration "$i"; peer_iteration "$i"
  else
    peer_iteration "$i"; autopatch_iteration "$i"
  fi
done
printf 'loadavg_end=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/machine.txt"

# The report.
python3 - "$WORK" "$ITERATIONS" <<'EOF'
import json, statistics, sys
work, n = sys.argv[1], int(sys.argv[2])
machine = dict(line.rstrip("\n").split("=", 1) for line in open(f"{work}/machine.txt"))
runs = [json.load(open(f"{work}/run{i}/autopatch/breakdown.json")) for i in range(1, n + 1)]
peers = [json.load(open(f"{work}/run{i}/peer/breakdown.json")) for i in range(1, n + 1)]
deletes = [int(open(f"{work}/run{i}/autopatch/delete.ms").read()) for i in range(1, n + 1)]
rms = [int(open(f"{work}/run{i}/peer/rm.ms").read()) for i in range(1, n + 1)]

def s(v):
    # File mtimes come from the kernel's coarse clock (a few ms), so a step
    # of about 0 can come out a few ms below it: shown as 0.
    return f"{max(v, 0) / 1000:.3f} s"
def spread(values):
    return f"{s(statistics.median(values))} ({s(min(values))}–{s(max(values))})"
def col(rs, key):
    return [r["phases"][key] for r in rs]
def flat(rs, key):
    return [v for r in rs for v in r["phases"][key]]
total = statistics.median(col(runs, "total"))
def row(label, values, share=True):
    pct = f"{100 * statistics.median(values) / total:.0f} %" if share else ""
    print(f"| {label} | {spread(values)} | {pct} |")

print("## Stack create benchmark (pattern3-app)\n")
print(f"- autopatch: {machine['binary']} at commit {machine.get('commit', '?')}")
print(f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} memory, "
      f"kernel {machine['kernel']}, podman {machine['podman']}")
print(f"- engine: {machine.get('engine_cpu', '?')}")
print(f"- date: {machine['date']}; load average at start {machine['loadavg_start']}, at end {machine['loadavg_end']}")
print(f"- image: {machine['image']}")
print(f"- iterations: {n}; figures are medians (min–max); the share is of the median total\n")

print("### autopatch: `stack create pattern3-app` until both targets are healthy\n")
print("| phase | time | share |")
print("|---|---|---|")
row("1. validation + resources before the Auto Scaling group (command start → ASG CREATE_IN_PROGRESS)", col(runs, "p1_validation_resources"))
row("   1a. command start → stack CREATE_IN_PROGRESS (CLI, request, template read and validated)", col(runs, "p1a_request_validation"))
row(f"   1b. → ASG CREATE_IN_PROGRESS ({len(runs[0]['resources_before_asg'])} resources)", col(runs, "p1b_resources_before_asg"))
row("2. instances started (ASG CREATE_IN_PROGRESS → both containers running)", col(runs, "p2_instances_started"))
row("3. user data until the signal (last container running → last signal written)", col(runs, "p3_user_data_to_signal"))
row("4. signals → ASG CREATE_COMPLETE → stack CREATE_COMPLETE", col(runs, "p4_signals_to_complete"))
row("   4a. last signal → ASG CREATE_COMPLETE", col(runs, "p4a_signal_to_asg_complete"))
row("   4b. ASG → stack CREATE_COMPLETE", col(runs, "p4b_asg_to_stack_complete"))
row("5. health (stack CREATE_COMPLETE → both targets healthy, polled every 100 ms)", col(runs, "p5_health"))
row("**total (command start → both healthy)**", col(runs, "total"))
row("command start → stack CREATE_COMPLETE", col(runs, "to_create_complete"))
row("`stack create` command (exit; it follows events every 0.5 s)", col(runs, "create_command"))
row("last instance in service (registered with the target group) → both healthy", col(runs, "in_service_to_healthy"))
row("`stack delete pattern3-app` (afterwards, not in the total)", deletes, share=False)
print()
print("Per instance, in launch order (the group launches one after the other):\n")
print("| step | first instance | second instance |")
print("|---|---|---|")
def nth(key, k):
    return [r["phases"][key][k] for r in runs]
for label, key in (("ASG CREATE_IN_PROGRESS → instance row written (launch begins)", "i_asg_to_launch"),
                   ("row written → container running (folder, create, start)", "i_launch_to_running"),
                   ("of which container created → running (engine start)", "i_create_to_running"),
                   ("running → in service (inspect, address and port recorded, local-ipv4 written)", "i_running_to_in_service"),
                   ("running → user data starts (boot: cfn-signal installed, local-ipv4 checked)", "i_running_to_user_data"),
                   ("user data starts → signal written (apache2ctl start, curl, cfn-signal)", "i_user_data_to_signal"),
                   ("running → signal written", "i_running_to_signal")):
    print(f"| {label} | {spread(nth(key, 0))} | {spread(nth(key, 1))} |")
print()
print("### Peer: bare podman, same image, same user data steps, no load balancer\n")
print("| phase | time |")
print("|---|---|")
print(f"| two `podman run -d` (sequential) | {spread(col(peers, 'run_both'))} |")
print(f"| start → both containers running | {spread(col(peers, 'running_both'))} |")
print(f"| last running → page answers inside both | {spread(col(peers, 'user_data_both'))} |")
print(f"| → both answer on their host ports (curl every 50 ms) | {spread(col(peers, 'answer_both'))} |")
print(f"| **total** | {spread(col(peers, 'total'))} |")
print(f"| per container: running → page answers inside | {spread(flat(peers, 'i_running_to_page'))} |")
print(f"| `podman rm -f` both (afterwards) | {spread(rms)} |")
print()
peer_total = statistics.median(col(peers, "total"))
print(f"autopatch total {s(total)} against the peer's {s(peer_total)} "
      f"(+{s(total - peer_total)}, {total / peer_total:.1f}×); to CREATE_COMPLETE "
      f"{s(statistics.median(col(runs, 'to_create_complete')))}.\n")
print("Per iteration (total; autopatch / peer): " + ", ".join(
    f"{i + 1}: {s(a['phases']['total'])} / {s(p['phases']['total'])}" for i, (a, p) in enumerate(zip(runs, peers))))
EOF
