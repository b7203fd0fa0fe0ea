# shellcheck shell=bash
# What the benchmark scripts share before they measure: messages with the
# script's name, the tools it needs, an engine answering (and where its
# control plane runs: engine_cpu_describe), the binary to measure, and the
# image the stacks tests bake.
#
# Set BENCH_NAME (the prefix of every message), ROOT (the repository) and
# BIN (the binary to measure) before sourcing.

# shellcheck source=engine-cpu.sh
source "$ROOT/scripts/lib/engine-cpu.sh"

log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now_ns() { date +%s%N; }

# require_tools TOOL...: every tool on PATH, or a message that names it.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "missing $tool (run scripts/setup-host.sh)"
  done
}

# ensure_engine: Podman's API socket (or DOCKER_HOST), set up when missing.
ensure_engine() {
  if [ -z "${DOCKER_HOST:-}" ] && [ ! -S /run/podman/podman.sock ]; then
    log "no engine socket: running scripts/setup-host.sh"
    bash "$ROOT/scripts/setup-host.sh" >&2
  fi
}

# ensure_binary [CARGO ARGS...]: unless AUTOPATCH_BIN names the binary to
# measure, a release build of the CLI (and of whatever else the arguments
# add, such as examples); then BIN must exist.
ensure_binary() {
  if [ -z "${AUTOPATCH_BIN:-}" ]; then
    log "cargo build --release -p autopatch-cli $*"
    cargo build --release -p autopatch-cli >&2
    if [ "$#" -gt 0 ]; then cargo build --release "$@" >&2; fi
  fi
  [ -x "$BIN" ] || die "no binary at $BIN"
}

# lb_nice NICE [PID]: the load balancer's data-plane threads (autopatch-lb-*)
# of process PID, or of every process, at nice NICE.
lb_nice() {
  local task
  # shellcheck disable=SC2086 # the default is a glob
  for task in /proc/${2:-[0-9]*}/task/*; do
    case $(cat "$task/comm" 2>/dev/null) in
      autopatch-lb-*) renice -n "$1" -p "${task##*/}" >/dev/null ;;
    esac
  done
}

# newest_test_image: the newest localhost/autopatch-test/webapp:bookworm-<hash>
# (the stacks tests bake it from the current components), or nothing.
newest_test_image() {
  podman images --sort created --format '{{.Repository}}:{{.Tag}}' \
    localhost/autopatch-test/webapp 2>/dev/null | grep ':bookworm-' | head -1 || true
}

# engine_ref STATE_DIR VERSION: the engine tag autopatch published image
# VERSION (name/x.y.z/N) under, in the state directory's namespace
# (localhost/autopatch/<namespace>/<name>:<x.y.z>-<N>).
engine_ref() {
  "$BIN" --state-dir "$1" --output json image show "$2" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["engineReference"])'
}
