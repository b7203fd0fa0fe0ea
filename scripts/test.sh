#!/usr/bin/env bash
# The whole test suite: host set-up (packages, container engine, cfn-lint),
# then cfn-lint on the shipped templates, formatting, lints, dependency
# boundaries, and every test (unit, simulation, and integration against the
# real Podman with real Debian images).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh

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
