#!/usr/bin/env bash
# The whole test suite: host set-up (packages, container engine, cfn-lint),
# then cfn-lint on the shipped templates, formatting, lints, dependency
# boundaries, and every test (unit, simulation, and integration against the
# real Podman with real Debian images).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh

echo "== host: the engine's control plane at a low CPU weight" >&2
# setup-host.sh moves an unmanaged podman service out of the root cgroup
# (scripts/lib/engine-cpu.sh); a service in a systemd unit is the unit's.
# shellcheck source=lib/engine-cpu.sh
source scripts/lib/engine-cpu.sh
root=$(engine_cpu_root)
if [ -n "$root" ]; then
  for pid in $(engine_service_pids); do
    cgroup=$(engine_cpu_cgroup "$pid")
    if [ "$cgroup" = / ]; then
      echo "podman service $pid is still in the root cgroup: setup-host.sh did not weight it" >&2
      exit 1
    fi
    dir="$root/$ENGINE_CGROUP"
    if [ "$cgroup" = "/$ENGINE_CGROUP" ] && ! engine_cpu_is_low "$dir"; then
      echo "$dir has $(engine_cpu_weight_of "$dir"), not the low weight" >&2
      exit 1
    fi
  done
  engine_cpu_describe >&2
  dir="$root/$ENGINE_CONMON_CGROUP"
  if [ -d "$dir" ] && ! engine_cpu_is_low "$dir"; then
    echo "$dir (conmon, runc, the exit cleanup) has $(engine_cpu_weight_of "$dir"), not the low weight" >&2
    exit 1
  fi
fi

echo "== cfn-lint: the shipped CloudFormation templates" >&2
# Errors fail the run; warnings are printed. The few checks the templates
# fail on purpose are silenced in their own cfn-lint metadata, each with why.
/opt/autopatch-tools/venv/bin/cfn-lint --non-zero-exit-code error \
  --regions us-east-1 ap-southeast-2 -- templates/*.yml

echo "== fmt" >&2
cargo fmt --all -- --check
echo "== clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== boundaries: pure crates do no I/O" >&2
for crate in autopatch-model autopatch-documents autopatch-evidence; do
  for banned in tokio rusqlite bollard hyper; do
    if cargo tree -p "$crate" -e normal --prefix none 2>/dev/null | grep -q "^$banned v"; then
      echo "$crate depends on $banned: it must stay pure" >&2
      exit 1
    fi
  done
done
echo "== every source file starts with a //! module doc" >&2
missing=$(for f in $(git ls-files 'crates/*.rs'); do head -n 3 "$f" | grep -q '^//!' || echo "$f"; done)
if [ -n "$missing" ]; then echo "no //! module doc: $missing" >&2; exit 1; fi
echo "== tests" >&2
cargo nextest run --workspace --locked --no-fail-fast --test-threads 2
