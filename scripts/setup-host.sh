#!/usr/bin/env bash
# Installs what an autopatch host needs from Debian packages and makes sure a
# container engine API socket is answering. Idempotent: safe to run again.
#
# What it does:
#   1. apt-get installs podman, runc, mmdebstrap and the build/test tools
#      (only the ones missing).
#   2. On hosts that need it (no CAP_SYS_RESOURCE or hybrid cgroups, as on the
#      project's CI machines) writes /etc/containers/containers.conf with the
#      settings from docs/engine.md. An existing file is never overwritten.
#   3. Starts `podman system service` on /run/podman/podman.sock when no engine
#      socket answers (there is no systemd on CI machines).
#   4. Gives the engine's control plane (the podman service, and conmon's
#      cgroup where runc and the exit cleanup run) a low CPU weight, so that
#      starting and stopping instances does not slow the requests the load
#      balancer proxies meanwhile (scripts/lib/engine-cpu.sh, docs/engine.md).
#   5. Installs cfn-lint (pinned, from PyPI) into the venv
#      /opt/autopatch-tools/venv, made with Debian's python3; scripts/test.sh
#      lints the shipped templates with it. Skipped when that version is
#      already there.
#
# Environment: AUTOPATCH_SETUP_SKIP_APT=1 skips step 1.
set -euo pipefail
# shellcheck source=lib/engine-cpu.sh
source "$(dirname "$0")/lib/engine-cpu.sh"

log() { printf 'setup-host: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs packages and starts the engine socket)"
  exit 1
fi

packages=(podman runc catatonit mmdebstrap uidmap apt-utils curl ca-certificates sqlite3 wrk nginx-light hyperfine python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${AUTOPATCH_SETUP_SKIP_APT:-0}" != 1 ] && [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx is only a benchmark peer: never leave it running on port 80.
  if command -v nginx >/dev/null; then nginx -s stop 2>/dev/null || true; fi
fi

# Container settings for sandboxes without CAP_SYS_RESOURCE or with hybrid
# cgroups. On an ordinary host none of this is needed, so only write it when
# podman cannot start a container as it is.
conf=/etc/containers/containers.conf
needs_conf() {
  # Hybrid or v1 cgroups make podman's systemd cgroup manager fail here.
  [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ] && return 0
  # Without CAP_SYS_RESOURCE podman cannot raise RLIMIT_NOFILE.
  grep -q '^CapEff' /proc/self/status || return 0
  local capeff; capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)
  (( (16#$capeff >> 24) & 1 )) || return 0
  return 1
}
if [ ! -e "$conf" ] && needs_conf; then
  log "writing $conf (cgroupfs, runc, no default ulimits)"
  mkdir -p /etc/containers
  cat >"$conf" <<'CONF'
# Written by autopatch scripts/setup-host.sh for hosts without
# CAP_SYS_RESOURCE or with hybrid cgroups (see docs/engine.md).
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
fi

# Start the Docker-compatible API when nothing answers on the usual sockets.
answers() { curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }

# A podman service keeps the working directory it was started in, and every
# conmon it starts inherits it: once that directory is deleted (a clone, a
# temporary directory), conmon fails ("Failed to get working directory") and
# every container start answers 500 "write child: broken pipe", while the
# API still answers its ping. Stop such a service, so it is started again
# below (running containers are not its children and keep running).
for pid in $(engine_service_pids); do
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
  case $cwd in
    *" (deleted)")
      log "podman service $pid runs in a deleted directory ($cwd): restarting it"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      ;;
  esac
done
socket=""
for s in "${DOCKER_HOST:-}" /run/podman/podman.sock /var/run/docker.sock; do
  s=${s#unix://}; [ -n "$s" ] && [ -S "$s" ] && answers "$s" && { socket=$s; break; }
done
if [ -z "$socket" ]; then
  socket=/run/podman/podman.sock
  mkdir -p /run/podman
  log "starting podman system service on $socket"
  # From /, which cannot be deleted under it (see above).
  (cd / && exec nohup podman system service --time=0 "unix://$socket" >/var/log/podman-service.log 2>&1) &
  for _ in $(seq 1 50); do answers "$socket" && break; sleep 0.2; done
  answers "$socket" || { log "podman API did not come up; see /var/log/podman-service.log"; exit 1; }
fi
log "engine API answering on unix://$socket"
engine_low_cpu_weight

# cfn-lint, the external oracle for templates/*.yml, in its own venv so that
# neither Debian's python3 nor any other Python on the host is changed.
cfn_lint_version=1.58.0
tools_venv=/opt/autopatch-tools/venv
if [ "$("$tools_venv/bin/cfn-lint" --version 2>/dev/null)" != "cfn-lint $cfn_lint_version" ]; then
  log "installing cfn-lint $cfn_lint_version into $tools_venv"
  /usr/bin/python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install -q "cfn-lint==$cfn_lint_version"
fi
log "cfn-lint $cfn_lint_version at $tools_venv/bin/cfn-lint"
