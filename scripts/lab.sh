#!/usr/bin/env bash
# The lab, end to end, as far as autopatch goes today (issue 2: the image
# pipeline): bootstrap a real, unpatched golden image from Debian packages,
# bake the lab's web application onto it, bake the patched image with the
# UpdateOS component, and print what changed (packages and CVEs). A second
# patch run shows the start condition "only if updates are available".
#
# Usage: scripts/lab.sh            (state in ./.autopatch-state)
#        AUTOPATCH_STATE_DIR=/some/dir scripts/lab.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh
export AUTOPATCH_STATE_DIR=${AUTOPATCH_STATE_DIR:-$PWD/.autopatch-state}
cargo build --release --quiet -p autopatch-cli
autopatch() { ./target/release/autopatch "$@"; }
step() { printf '\n### %s\n' "$*" >&2; }

step "golden image: Debian bookworm point release (no security updates)"
golden=$(autopatch --output json image list | python3 -c 'import json,sys; print(next((i["version"] for i in json.load(sys.stdin) if i["recipe"]=="golden"), ""))')
if [ -z "$golden" ]; then autopatch image bootstrap; else echo "reusing $golden" >&2; fi

step "register the components, recipes and pipelines"
for c in update-os webapp webapp-test; do autopatch component create --file "components/$c.yml"; done
autopatch recipe create --file pipelines/webapp.recipe.yml
autopatch pipeline create --file pipelines/webapp.pipeline.yml

step "bake the webapp image (golden + webapp, tested)"
if ! autopatch --output json image list | python3 -c 'import json,sys; sys.exit(0 if any(i["recipe"]=="webapp" for i in json.load(sys.stdin)) else 1)'; then
  autopatch pipeline start webapp
fi

# The patch recipe's parent is the webapp image: register it once that exists.
autopatch recipe create --file pipelines/webapp-patched.recipe.yml
autopatch pipeline create --file pipelines/webapp-patched.pipeline.yml

step "pending updates of the webapp image"
autopatch image check-updates webapp | head -20

step "bake the patched image (webapp + UpdateOS, tested): the lab's pipeline"
autopatch pipeline start webapp-patched

step "what changed: packages upgraded and CVEs fixed"
autopatch image diff webapp webapp-patched

step "run the patch pipeline again: nothing pending, nothing built"
autopatch pipeline start webapp-patched

step "images"
autopatch image list
