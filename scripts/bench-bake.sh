#!/usr/bin/env bash
# Image pipeline bake benchmark (issue 2): how long autopatch takes to bake
# golden -> webapp -> webapp-patched on this machine, where that time goes,
# and what a bare podman script doing the same build steps takes beside it.
#
# Usage (from anywhere, as root, with Podman answering on its API socket):
#
#   scripts/bench-bake.sh            # BENCH_ITERATIONS=3 flows, median reported
#
# Environment:
#   BENCH_ITERATIONS   whole flows to run (default 3; the median is reported)
#   BENCH_SKIP_RUNS    hyperfine runs of the "no updates" start (default 5)
#   BENCH_KEEP=1       keep the temporary state directory (images are still removed)
#   AUTOPATCH_BIN      the binary to measure (default target/release/autopatch,
#                      built with `cargo build --release -p autopatch-cli` if missing)
#
# Every iteration uses its own fresh state directory and renames the recipes
# (and so the engine tags) with a per-run prefix, so it never touches the
# images of other autopatch users on the same Podman, and `podman rmi`
# removes exactly the images it made. The markdown report goes to stdout,
# progress and command logs to stderr.
#
# Measured per iteration:
#   1. `autopatch image bootstrap` (wall time; mmdebstrap and import from its
#      progress lines), `pipeline start webapp`, `pipeline start webapp-patched`,
#      with the breakdown each build writes to <artifactDir>/detailedoutput.json.
#      "Overhead" = timings.total_ms - sum(phases[].steps[].duration_ms): all
#      that is not a step command (container create, manifest, evidence,
#      commit, test container, publish, cleanup, exec plumbing between steps).
#   2. The peer: `podman run` of the same golden image with the webapp
#      component's build commands and pages, `podman commit`; then `podman run`
#      of that image with the update-os commands, `podman commit`.
# Once (first iteration): `pipeline start webapp-patched` with no updates
# available, BENCH_SKIP_RUNS times under hyperfine, checking that the image
# and build lists do not change.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ITERATIONS=${BENCH_ITERATIONS:-3}
SKIP_RUNS=${BENCH_SKIP_RUNS:-5}
BIN=${AUTOPATCH_BIN:-$ROOT/target/release/autopatch}

BENCH_NAME=bench-bake
# shellcheck source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }

require_tools python3 podman
ensure_engine
if [ ! -x "$BIN" ]; then
  log "building $BIN"
  cargo build --release -p autopatch-cli >&2
fi
[ -x "$BIN" ] || die "no binary at $BIN"
if [ -n "$(find crates Cargo.toml Cargo.lock -newer "$BIN" -name '*.rs' -o -newer "$BIN" -name 'Cargo.*' 2>/dev/null | head -1)" ]; then
  log "warning: $BIN is older than the sources; run cargo build --release -p autopatch-cli to measure the tree"
fi

WORK=$(mktemp -d /tmp/bench-bake.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# The documents as they are now: every iteration bakes the same ones even if
# the tree changes while the benchmark runs.
mkdir -p "$WORK/src"
cp -r components pipelines "$WORK/src/"
RUN_ID="bb$$"                 # lowercase: engine repository names must be
CREATED_REFS=()               # every engine tag this script made
PEER_CONTAINERS=()

cleanup() {
  local status=$?
  for c in "${PEER_CONTAINERS[@]}"; do podman rm -f "$c" >/dev/null 2>&1 || true; done
  if [ ${#CREATED_REFS[@]} -gt 0 ]; then
    log "removing the ${#CREATED_REFS[@]} images this run made"
    for ref in "${CREATED_REFS[@]}"; do podman rmi -f "$ref" >/dev/null 2>&1 || true; done
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record KIND KEY VALUE [ITERATION]: one JSON line in the results file.
record() {
  python3 - "$RESULTS" "$1" "$2" "$3" "${4:-0}" <<'EOF'
import json, sys
path, kind, key, value, iteration = sys.argv[1:]
try:
    value = json.loads(value)
except ValueError:
    pass
with open(path, "a") as f:
    f.write(json.dumps({"iter": int(iteration), "kind": kind, "key": key, "value": value}) + "\n")
EOF
}

# The machine, read now.
PODMAN_VERSION=$(podman version --format '{{.Server.Version}}' 2>/dev/null || podman --version)
MEM_GIB=$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
record machine nproc "$(nproc)"
record machine memory "\"$MEM_GIB GiB\""
record machine cpu "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "${CPU_MODEL:-unknown}")"
record machine podman "\"$PODMAN_VERSION\""
record machine kernel "\"$(uname -r)\""
record machine engine_cpu "\"$(engine_cpu_describe || echo 'no podman service')\""
record machine date "\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
record machine loadavg_start "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
record machine iterations "$ITERATIONS"
record machine binary "\"${BIN#"$ROOT"/}\""
if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
  dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no -- crates components pipelines Cargo.lock | wc -l)
  record machine commit "\"$(git -C "$ROOT" rev-parse --short HEAD)$( [ "$dirty" = 0 ] || echo " (+$dirty modified files)")\""
fi

# The peer's scripts: the same commands as components/webapp.yml (build
# phase) and components/update-os.yml (build phase, with UpdateOS's script),
# as one `podman run` each. No validate, no test, no evidence.
PEER_WEBAPP=$(cat <<'PEER'
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends apache2 libapache2-mod-php curl ca-certificates >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
dpkg-query -W -f='${Package} ${Version}\n' apache2 libapache2-mod-php
cat > /var/www/html/index.html <<'HTML'
<html>Welcome to Re:Invent 2020 The Well Architected Way<html>
HTML
cat > /var/www/html/details.php <<'PHP'
<?php
$imageId = @file_get_contents('/var/lib/autopatch/imds/latest/meta-data/ami-id');
if ($imageId === false) {
    $imageId = shell_exec('curl -s -m 1 http://169.254.169.254/latest/meta-data/ami-id');
}
$packages = shell_exec("dpkg-query -W -f='\${Package} -  \${Version} -  (\${Architecture})\\n'");
echo "<br><b>Amazon Image Id:</b> " . htmlspecialchars(trim($imageId ?: 'unknown'));
echo "<hr><b>Installed Packages:</b>";
foreach (explode("\n", trim($packages ?? '')) as $line) {
    echo "<br>" . htmlspecialchars($line);
}
PHP
chmod 0644 /var/www/html/index.html /var/www/html/details.php
PEER
)
PEER_UPDATE=$(cat <<'PEER'
set -eu
. /etc/os-release
{
  echo "deb http://deb.debian.org/debian ${VERSION_CODENAME}-updates main"
  echo "deb http://deb.debian.org/debian-security ${VERSION_CODENAME}-security main"
} > /etc/apt/sources.list.d/autopatch-updates.list
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get dist-upgrade -y -o Dpkg::Options::=--force-confold
apt-get clean
rm -rf /var/lib/apt/lists/*
PEER
)

# peer_bake ITER NAME FROM TO SCRIPT: podman run + commit + rm, timed.
peer_bake() {
  local i=$1 name=$2 from=$3 to=$4 script=$5 container t
  container="$RUN_ID-i$i-peer-$name"
  PEER_CONTAINERS+=("$container")
  t=$(now_ns)
  podman run --name "$container" "$from" bash -c "$script" >"$WORK/run$i/peer-$name.log" 2>&1 \
    || { tail -20 "$WORK/run$i/peer-$name.log" >&2; die "peer $name: podman run failed"; }
  record peer "$name.run_ms" "$(ms_since "$t")" "$i"
  t=$(now_ns)
  podman commit --quiet "$container" "$to" >/dev/null
  CREATED_REFS+=("$to")
  record peer "$name.commit_ms" "$(ms_since "$t")" "$i"
  t=$(now_ns)
  podman rm "$container" >/dev/null
  record peer "$name.rm_ms" "$(ms_since "$t")" "$i"
}

# ap ITER LOGNAME ARGS...: the binary on this iteration's state dir, logged.
ap() {
  local i=$1 logname=$2; shift 2
  "$BIN" --state-dir "$WORK/run$i/state" "$@" 2>"$WORK/run$i/$logname.log" \
    || { tail -30 "$WORK/run$i/$logname.log" >&2; die "autopatch $* failed"; }
}

# timed ITER KEY LOGNAME ARGS...: ap, with its wall time recorded.
timed() {
  local i=$1 key=$2 logname=$3 t; shift 3
  t=$(now_ns)
  ap "$i" "$logname" "$@" >"$WORK/run$i/$logname.out"
  record wall "$key" "$(ms_since "$t")" "$i"
}

iteration() {
  local i=$1 p="$RUN_ID-i$i" docs="$WORK/run$i/docs" peer_first
  mkdir -p "$docs" "$WORK/run$i/state"
  # Recipes renamed so the engine tags are this run's own.
  sed -e "s/^name: webapp\$/name: $p-webapp/" -e "s/^parentImage: golden\$/parentImage: $p-golden/" \
    "$WORK/src/pipelines/webapp.recipe.yml" >"$docs/webapp.recipe.yml"
  sed -e "s/^name: webapp-patched\$/name: $p-webapp-patched/" -e "s/^parentImage: webapp\$/parentImage: $p-webapp/" \
    "$WORK/src/pipelines/webapp-patched.recipe.yml" >"$docs/webapp-patched.recipe.yml"
  sed -e "s/^imageRecipeArn: webapp\$/imageRecipeArn: $p-webapp/" \
    "$WORK/src/pipelines/webapp.pipeline.yml" >"$docs/webapp.pipeline.yml"
  sed -e "s/^imageRecipeArn: webapp-patched\$/imageRecipeArn: $p-webapp-patched/" \
    "$WORK/src/pipelines/webapp-patched.pipeline.yml" >"$docs/webapp-patched.pipeline.yml"

  log "iteration $i/$ITERATIONS: bootstrap $p-golden"
  timed "$i" bootstrap bootstrap image bootstrap --name "$p-golden"
  GOLDEN_REF=$(engine_ref "$WORK/run$i/state" "$p-golden/1.0.0/1")
  CREATED_REFS+=("$GOLDEN_REF")
  local mm imp
  mm=$(sed -n 's/^ *mmdebstrap: \([0-9.]*\) s$/\1/p' "$WORK/run$i/bootstrap.log" | tail -1)
  imp=$(sed -n 's/^ *import: \([0-9.]*\) s$/\1/p' "$WORK/run$i/bootstrap.log" | tail -1)
  if [ -n "$mm" ]; then record wall bootstrap.mmdebstrap "$(python3 -c "print(round($mm*1000))")" "$i"; fi
  if [ -n "$imp" ]; then record wall bootstrap.import "$(python3 -c "print(round($imp*1000))")" "$i"; fi

  ap "$i" create component create --file "$WORK/src/components/webapp.yml" >/dev/null
  ap "$i" create component create --file "$WORK/src/components/webapp-test.yml" >/dev/null
  ap "$i" create component create --file "$WORK/src/components/update-os.yml" >/dev/null
  ap "$i" create recipe create --file "$docs/webapp.recipe.yml" >/dev/null
  ap "$i" create pipeline create --file "$docs/webapp.pipeline.yml" >/dev/null

  # Alternate who goes first, so neither always meets the mirror's warm cache.
  peer_first=$(( i % 2 == 0 ))
  if [ "$peer_first" = 1 ]; then run_peer "$i" "$p"; fi

  log "iteration $i: pipeline start webapp"
  timed "$i" start.webapp start-webapp pipeline start webapp
  CREATED_REFS+=("$(engine_ref "$WORK/run$i/state" "$p-webapp/1.0.0/1")")
  ap "$i" create recipe create --file "$docs/webapp-patched.recipe.yml" >/dev/null
  ap "$i" create pipeline create --file "$docs/webapp-patched.pipeline.yml" >/dev/null
  log "iteration $i: pipeline start webapp-patched"
  timed "$i" start.webapp-patched start-patched pipeline start webapp-patched
  CREATED_REFS+=("$(engine_ref "$WORK/run$i/state" "$p-webapp-patched/1.0.0/1")")

  local images_before builds_before
  images_before=$(ap "$i" list --output json image list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  builds_before=$(ap "$i" list --output json build list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  log "iteration $i: pipeline start webapp-patched (no updates expected)"
  timed "$i" start.skip start-skip pipeline start webapp-patched
  grep -q '^skipped:' "$WORK/run$i/start-skip.out" || {
    cat "$WORK/run$i/start-skip.out" >&2; die "the second webapp-patched start did not skip"; }

  if [ "$i" = 1 ]; then skip_bench "$i"; fi

  local images_after builds_after
  images_after=$(ap "$i" list --output json image list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  builds_after=$(ap "$i" list --output json build list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  record skip images_before "$images_before" "$i"
  record skip images_after "$images_after" "$i"
  record skip builds_before "$builds_before" "$i"
  record skip builds_after "$builds_after" "$i"
  record skip message "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$(cat "$WORK/run$i/start-skip.out")")" "$i"

  # Each build's detailed output, by pipeline.
  ap "$i" list --output json build list >"$WORK/run$i/builds.json"
  python3 - "$WORK/run$i/builds.json" "$RESULTS" "$i" <<'EOF'
import json, os, sys
builds, results, iteration = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(results, "a") as out:
    for build in json.load(open(builds)):
        path = os.path.join(build["artifactDir"], "detailedoutput.json")
        detail = json.load(open(path))
        if detail["state"] != "AVAILABLE":
            sys.exit(f"build {build['id']} ({build['pipeline']}) is {detail['state']}: {detail.get('reason')}")
        out.write(json.dumps({"iter": iteration, "kind": "build", "key": build["pipeline"],
                              "value": {"timings": detail["timings"], "phases": detail["phases"]}}) + "\n")
EOF

  if [ "$peer_first" = 0 ]; then run_peer "$i" "$p"; fi
}

run_peer() {
  local i=$1 p=$2
  log "iteration $i: peer (bare podman run/commit)"
  peer_bake "$i" webapp "$GOLDEN_REF" "localhost/$p-peer-webapp:1" "$PEER_WEBAPP"
  peer_bake "$i" patched "localhost/$p-peer-webapp:1" "localhost/$p-peer-patched:1" "$PEER_UPDATE"
}

skip_bench() {
  local i=$1 cmd
  cmd="'$BIN' --state-dir '$WORK/run$i/state' pipeline start webapp-patched"
  if command -v hyperfine >/dev/null; then
    log "hyperfine --runs $SKIP_RUNS: $cmd"
    hyperfine --runs "$SKIP_RUNS" --style basic --export-json "$WORK/skip.json" "$cmd" >&2
    record skip tool '"hyperfine"' "$i"
    record skip times_ms "$(python3 -c 'import json,sys; print(json.dumps([round(t*1000) for t in json.load(open(sys.argv[1]))["results"][0]["times"]]))' "$WORK/skip.json")" "$i"
  else
    local times=() t n
    for n in $(seq 1 "$SKIP_RUNS"); do
      t=$(now_ns); eval "$cmd" >/dev/null 2>&1; times+=("$(ms_since "$t")")
    done
    record skip tool '"date +%s%N"' "$i"
    record skip times_ms "[$(IFS=,; echo "${times[*]}")]" "$i"
  fi
}

for i in $(seq 1 "$ITERATIONS"); do
  mkdir -p "$WORK/run$i"
  iteration "$i"
  # Free the disk between iterations: this iteration's images are measured.
  p="$RUN_ID-i$i"
  webapp_ref=$(engine_ref "$WORK/run$i/state" "$p-webapp/1.0.0/1")
  patched_ref=$(engine_ref "$WORK/run$i/state" "$p-webapp-patched/1.0.0/1")
  for pair in "autopatch.webapp=$webapp_ref" "autopatch.patched=$patched_ref" \
              "peer.webapp=localhost/$p-peer-webapp:1" "peer.patched=localhost/$p-peer-patched:1"; do
    record size "${pair%%=*}" "$(podman image inspect --format '{{.Size}}' "${pair#*=}")" "$i"
  done
  for ref in "localhost/$p-peer-patched:1" "localhost/$p-peer-webapp:1" \
             "$patched_ref" "$webapp_ref" "$GOLDEN_REF"; do
    podman rmi -f "$ref" >/dev/null 2>&1 || true
  done
done
record machine loadavg_end "\"$(cut -d' ' -f1-3 /proc/loadavg)\""

# The report.
python3 - "$RESULTS" <<'EOF'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
machine = {r["key"]: r["value"] for r in rows if r["kind"] == "machine"}
iters = sorted({r["iter"] for r in rows if r["kind"] == "build"})
n = len(iters)

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def s(ms):
    return "–" if ms is None else f"{ms / 1000:.1f} s"

def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return s(values[0])
    return f"{s(med(values))} ({min(values)/1000:.1f}–{max(values)/1000:.1f})"

def pct(part, whole):
    return "–" if not whole else f"{100 * part / whole:.1f} %"

def value(kind, key, i):
    for r in rows:
        if r["kind"] == kind and r["key"] == key and r["iter"] == i:
            return r["value"]
    return None

def per_iter(kind, key):
    return [value(kind, key, i) for i in iters]

print("## Image pipeline bake benchmark\n")
print(f"- autopatch: {machine['binary']} at commit {machine.get('commit', '?')}")
print(f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} memory, "
      f"kernel {machine['kernel']}, podman {machine['podman']}")
print(f"- engine: {machine.get('engine_cpu', '?')}")
print(f"- date: {machine['date']}; load average at start {machine['loadavg_start']}, "
      f"at end {machine.get('loadavg_end', '?')}")
print(f"- iterations: {n} (figures are medians, (min–max) across iterations)\n")

def build_table(pipeline, title):
    builds = [value("build", pipeline, i) for i in iters]
    timings = [b["timings"] for b in builds]
    # Steps in run order, keyed by component/phase/step.
    order, steps = [], {}
    for b in builds:
        for ph in b["phases"]:
            for st in ph["steps"]:
                key = (ph["component"], ph["phase"], st["name"])
                if key not in steps:
                    order.append(key)
                    steps[key] = []
                steps[key].append(st["duration_ms"])
    step_sums = [sum(st["duration_ms"] for ph in b["phases"] for st in ph["steps"]) for b in builds]
    totals = [t["total_ms"] for t in timings]
    overheads = [t - ss for t, ss in zip(totals, step_sums)]
    walls = per_iter("wall", f"start.{pipeline}")
    T = med(totals)

    def line(label, values, note=""):
        m = med(values)
        print(f"| {label} | {spread(values)} | {pct(m, T)} | {note} |")

    print(f"### {title} (`pipeline start {pipeline}`)\n")
    print("| part | time | share of total | |")
    print("|---|---|---|---|")
    line("build container create", [t["build_container_create_ms"] for t in timings], "overhead")
    line("parent manifest (dpkg-query)", [t["parent_manifest_ms"] for t in timings], "overhead")
    for key in order:
        comp, phase, name = key
        line(f"step {comp}/{phase}/{name}", steps[key], "step command")
    build_steps = [sum(st["duration_ms"] for ph in b["phases"] if ph["phase"] != "test" for st in ph["steps"]) for b in builds]
    test_steps = [sum(st["duration_ms"] for ph in b["phases"] if ph["phase"] == "test" for st in ph["steps"]) for b in builds]
    line("build stage bookkeeping (stage − its steps)",
         [t["build_stage_ms"] - x for t, x in zip(timings, build_steps)], "overhead")
    line("evidence", [t["evidence_ms"] for t in timings], "overhead")
    line("commit", [t["commit_ms"] for t in timings], "overhead")
    line("test container create (+ metadata)", [t["test_container_create_ms"] for t in timings], "overhead")
    line("test stage bookkeeping (stage − its steps)",
         [t["test_stage_ms"] - x for t, x in zip(timings, test_steps)], "overhead")
    line("publish", [t["publish_ms"] for t in timings], "overhead")
    line("cleanup (container removal, untag)", [t["cleanup_ms"] for t in timings], "overhead")
    accounted = [sum(t[k] for k in ("build_container_create_ms", "parent_manifest_ms", "build_stage_ms",
                 "evidence_ms", "commit_ms", "test_container_create_ms", "test_stage_ms", "publish_ms",
                 "cleanup_ms")) for t in timings]
    line("unaccounted (total − the timed parts above)",
         [t - a for t, a in zip(totals, accounted)], "overhead")
    print(f"| **sum of step commands** | {spread(step_sums)} | {pct(med(step_sums), T)} | |")
    ratios = [o / t for o, t in zip(overheads, totals)]
    print(f"| **overhead = total − steps** | {spread(overheads)} | **{100 * med(ratios):.1f} %** | "
          f"target < 10 %; share is the median of the per-iteration ratios |")
    print(f"| **total (timings.total_ms)** | {spread(totals)} | 100 % | |")
    print(f"| wall time of the command | {spread(walls)} | | process, parent resolution, store |")
    print()
    return {"total": T, "steps": med(step_sums), "overhead": med(overheads),
            "overhead_pct": 100 * med(ratios), "overhead_pct_range": (100 * min(ratios), 100 * max(ratios)),
            "wall": med(walls), "commit": med([t["commit_ms"] for t in timings]),
            "build_steps": med(build_steps),
            # Comparable with the peer's `podman run`: container create + build-phase steps.
            "build_phase": med([t["build_container_create_ms"] + sum(st["duration_ms"] for ph in b["phases"]
                                if ph["phase"] == "build" for st in ph["steps"]) for t, b in zip(timings, builds)])}

web = build_table("webapp", "webapp build (golden + webapp, tested)")
patched = build_table("webapp-patched", "webapp-patched build (webapp + update-os, tested)")

print("### End to end: golden + webapp + webapp-patched\n")
print("| part | time |")
print("|---|---|")
boot = per_iter("wall", "bootstrap")
print(f"| `image bootstrap` (wall) | {spread(boot)} |")
print(f"| of which mmdebstrap | {spread(per_iter('wall', 'bootstrap.mmdebstrap'))} |")
print(f"| of which podman import | {spread(per_iter('wall', 'bootstrap.import'))} |")
print(f"| `pipeline start webapp` (wall) | {spread(per_iter('wall', 'start.webapp'))} |")
print(f"| `pipeline start webapp-patched` (wall) | {spread(per_iter('wall', 'start.webapp-patched'))} |")
e2e = [sum(x) for x in zip(boot, per_iter("wall", "start.webapp"), per_iter("wall", "start.webapp-patched"))]
print(f"| **golden + webapp + webapp-patched** | **{spread(e2e)}** |")
print()

print("### Peer: the same build commands with bare podman (no validate, test, evidence)\n")
print("| | autopatch | bare podman | autopatch − podman |")
print("|---|---|---|---|")
def mb(values):
    return f"{med(values) / 1e6:.0f} MB"
def peer_rows(name, label, stats):
    run = per_iter("peer", f"{name}.run_ms")
    commit = per_iter("peer", f"{name}.commit_ms")
    rm = per_iter("peer", f"{name}.rm_ms")
    tot = [a + b + c for a, b, c in zip(run, commit, rm)]
    print(f"| {label}: container + build commands (autopatch: build container create + build-phase steps; podman: `podman run`) "
          f"| {s(stats['build_phase'])} | {spread(run)} | {s(stats['build_phase'] - med(run))} |")
    print(f"| {label}: commit | {s(stats['commit'])} | {spread(commit)} | {s(stats['commit'] - med(commit))} |")
    print(f"| {label}: whole (autopatch: command wall time incl. test stage; podman: run + commit + rm) "
          f"| {s(stats['wall'])} | {spread(tot)} | {s(stats['wall'] - med(tot))} |")
    peer_share = med([(c + r) / x for c, r, x in zip(commit, rm, tot)])
    print(f"| {label}: share of the whole that is not build commands (autopatch: overhead; podman: commit + rm) "
          f"| {stats['overhead_pct']:.1f} % | {100 * peer_share:.1f} % | |")
    print(f"| {label}: image size (podman image inspect) | {mb(per_iter('size', 'autopatch.' + name))} "
          f"| {mb(per_iter('size', 'peer.' + name))} | |")
    return med(tot)
peer_web = peer_rows("webapp", "webapp", web)
peer_patched = peer_rows("patched", "patched", patched)
print()

print("### `pipeline start webapp-patched` with no updates available\n")
skip_times = value("skip", "times_ms", iters[0]) or []
tool = value("skip", "tool", iters[0])
flow_skips = per_iter("wall", "start.skip")
print("| measure | time |")
print("|---|---|")
if skip_times:
    print(f"| {tool}, {len(skip_times)} runs: median (min–max) | {spread(skip_times)} |")
    print(f"| {tool}: mean ± sd | {statistics.mean(skip_times)/1000:.2f} ± "
          f"{(statistics.stdev(skip_times) if len(skip_times) > 1 else 0)/1000:.2f} s |")
print(f"| the flow's own skip run, per iteration | {spread(flow_skips)} |")
ok_images = all(value("skip", "images_before", i) == value("skip", "images_after", i) for i in iters)
ok_builds = all(value("skip", "builds_before", i) == value("skip", "builds_after", i) for i in iters)
counts = ", ".join(f"{value('skip', 'images_before', i)}→{value('skip', 'images_after', i)}" for i in iters)
print(f"| `image list` count before → after the skip runs | {counts} ({'unchanged' if ok_images else 'CHANGED'}) |")
print(f"| `build list` count | {'unchanged' if ok_builds else 'CHANGED'} |")
print()
print(f"Skip message: `{value('skip', 'message', iters[0]).strip()}`\n")

all_skips = skip_times + [x for x in flow_skips if x is not None]
worst_skip = max(all_skips) if all_skips else None
print("### Targets\n")
for label, st in (("webapp", web), ("webapp-patched", patched)):
    lo, hi = st["overhead_pct_range"]
    verdict = "met" if st["overhead_pct"] < 10 else "NOT met"
    print(f"- {label}: overhead {st['overhead_pct']:.1f} % of total (range {lo:.1f}–{hi:.1f} %), target < 10 %: **{verdict}**")
if worst_skip is not None:
    verdict = "met" if worst_skip < 10000 and ok_images and ok_builds else "NOT met"
    print(f"- no-update start: slowest of {len(all_skips)} runs {s(worst_skip)}, nothing published: "
          f"target < 10 s and no new image: **{verdict}**")
EOF
