#!/usr/bin/env bash
# The lab, end to end: bootstrap a real, unpatched golden image from Debian
# packages, bake the lab's web application onto it, start the control plane
# and deploy the lab's two stacks (network, then load balancer + Auto Scaling
# group of two instances) on that image, show the page through the load
# balancer, bake the patched image with the UpdateOS component, print what
# changed (packages and CVEs), then roll the patched image out with a
# blue/green stack update while `autopatch watch` loads the load balancer,
# and print the watch summary (0 failed requests, or the script fails).
# Running it again finds everything current and changes nothing.
#
# Usage: scripts/lab.sh            (state in ./.autopatch-state)
#        AUTOPATCH_STATE_DIR=/some/dir scripts/lab.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh
export AUTOPATCH_STATE_DIR=${AUTOPATCH_STATE_DIR:-$PWD/.autopatch-state}
cargo build --release --quiet -p autopatch-cli
bin=${CARGO_TARGET_DIR:-target}/release/autopatch
autopatch() { "$bin" "$@"; }
step() { printf '\n### %s\n' "$*" >&2; }
# The first N lines of a command's output; the command must succeed. (Not a
# pipe into head: with pipefail, head closing early fails the script.)
first() { local n=$1; shift; local out; out=$("$@"); printf '%s\n' "$out" | sed -n "1,${n}p"; }
details() { curl -sS --fail "$url/details.php" | sed 's/<br>/\n/g'; }

step "golden image: Debian bookworm point release (no security updates)"
golden=
# A first run has no state yet, which `image list` refuses (it makes none).
if [ -e "$AUTOPATCH_STATE_DIR/autopatch.db" ]; then
  golden=$(autopatch --output json image list | python3 -c 'import json,sys; print(next((i["version"] for i in json.load(sys.stdin) if i["recipe"]=="golden"), ""))')
fi
if [ -z "$golden" ]; then autopatch image bootstrap; else echo "reusing $golden" >&2; fi

step "register the components, recipes and pipelines"
for c in update-os webapp webapp-test; do autopatch component create --file "components/$c.yml"; done
autopatch recipe create --file pipelines/webapp.recipe.yml
autopatch pipeline create --file pipelines/webapp.pipeline.yml

step "bake the webapp image (golden + webapp, tested)"
if ! autopatch --output json image list | python3 -c 'import json,sys; sys.exit(0 if any(i["recipe"]=="webapp" for i in json.load(sys.stdin)) else 1)'; then
  autopatch pipeline start webapp
fi

step "the control plane: autopatch up"
autopatch up

step "the lab's stacks: pattern3-base (network), pattern3-app (ALB + 2 instances)"
if ! autopatch stack describe pattern3-base >/dev/null 2>&1; then
  autopatch stack create pattern3-base --template templates/pattern3-base.yml
fi
if ! autopatch stack describe pattern3-app >/dev/null 2>&1; then
  autopatch stack create pattern3-app --template templates/pattern3-app.yml \
    --parameter BaselineVpcStack=pattern3-base --parameter AmazonMachineImage=webapp   # the latest webapp build
fi
autopatch stack outputs pattern3-app
url=http://$(autopatch --output json stack describe pattern3-app | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["Stacks"][0] if "Stacks" in d else d
print(next(o["OutputValue"] for o in s["Outputs"] if o["OutputKey"] == "OutputPattern3ALBDNSName"))')
autopatch fleet

step "the page through the load balancer: $url"
# CREATE_COMPLETE means the instances signalled (as on AWS); the targets then
# pass HealthyThresholdCount checks before they get traffic (about 4 s here).
for _ in $(seq 60); do curl -fsS -o /dev/null "$url/" 2>/dev/null && break; sleep 0.5; done
curl -sS --fail "$url/"
first 8 details
echo

# The patch recipe's parent is the webapp image: register it once that exists.
autopatch recipe create --file pipelines/webapp-patched.recipe.yml
autopatch pipeline create --file pipelines/webapp-patched.pipeline.yml

step "pending updates of the webapp image"
first 20 autopatch image check-updates webapp

step "bake the patched image (webapp + UpdateOS, tested): the lab's pipeline"
autopatch pipeline start webapp-patched

step "what changed: packages upgraded and CVEs fixed"
autopatch image diff webapp webapp-patched

step "run the patch pipeline again: nothing pending, nothing built"
autopatch pipeline start webapp-patched

patched=$(autopatch --output json image list | python3 -c '
import json, sys
images = [i for i in json.load(sys.stdin) if i["recipe"] == "webapp-patched"]
print(images[0]["version"] if images else "")  # newest first')
step "roll the patched image out: blue/green stack update under load (autopatch watch)"
watch_dir=$AUTOPATCH_STATE_DIR/watch
mkdir -p "$watch_dir"
# 8 keep-alive workers at 200 requests a second in all; Ctrl-C (SIGINT) ends
# the watch with its summary once the update is done.
# The binary itself in the background (not the shell function, whose
# subshell would take the SIGINT meant for it).
"$bin" watch "$url/" --concurrency 8 --rate 200 --duration 600s --quiet \
  --jsonl "$watch_dir/requests.jsonl" --svg "$watch_dir/timeline.svg" >"$watch_dir/summary.txt" &
watch_pid=$!
sleep 3
autopatch stack update pattern3-app --use-previous-template --parameter AmazonMachineImage="$patched"
sleep 3
kill -INT "$watch_pid"
watch_status=0
wait "$watch_pid" || watch_status=$?
autopatch fleet
first 3 details
echo

step "what the update changed: packages upgraded and CVEs fixed"
autopatch image diff webapp "$patched" | tail -5

step "the watch summary (requests per image, failures, longest gap)"
cat "$watch_dir/summary.txt"
echo "timeline chart: $watch_dir/timeline.svg; every request: $watch_dir/requests.jsonl" >&2
if [ "$watch_status" -ne 0 ]; then
  echo "FAILED: requests failed during the update (see $watch_dir/summary.txt)" >&2
  exit 1
fi

step "images"
autopatch image list

echo >&2
echo "The stacks keep running: $url (autopatch stack delete pattern3-app; autopatch stack delete pattern3-base; autopatch down)." >&2
