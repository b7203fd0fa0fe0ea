# shellcheck shell=bash
# The container engine's control plane at a low CPU weight (docs/engine.md,
# "The engine's CPU weight").
#
# Starting and removing an instance costs Podman about 0.3 s of CPU (the API
# service, netavark, runc, and the `podman container cleanup` conmon runs at
# exit). On a small host that work competes with the requests the load
# balancer is proxying during a blue/green cutover. Under a low weight the
# scheduler still gives the engine every idle cycle, so nothing is slower on
# a quiet host; under load the request path runs first.
#
# Only the control plane is weighted: the instances themselves run in their
# own cgroups (libpod_parent/libpod-<id>) at the default weight. Works with
# cgroup v1 (cpu.shares) and v2 (cpu.weight) and Podman's cgroupfs manager;
# a service managed by systemd is left to its unit (a hint says how).
#
# Callers define log().

# The engine cgroup's weight against the default (1024 shares, weight 100):
# about 1/16.
ENGINE_CPU_SHARES=64
ENGINE_CPU_WEIGHT=6
ENGINE_CGROUP=autopatch-engine
# Where Podman's cgroupfs manager puts every conmon.
ENGINE_CONMON_CGROUP=libpod_parent/conmon

# engine_cpu_root: the cgroup directory holding the cpu controller, or
# nothing when there is none to use.
engine_cpu_root() {
  if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
    grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null && echo /sys/fs/cgroup
  elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
    echo /sys/fs/cgroup/cpu
  fi
}

# engine_cpu_set DIR: the low weight on cgroup DIR (made if missing).
engine_cpu_set() {
  mkdir -p "$1"
  if [ -e "$1/cpu.shares" ]; then
    echo "$ENGINE_CPU_SHARES" >"$1/cpu.shares"
  else
    echo "$ENGINE_CPU_WEIGHT" >"$1/cpu.weight"
  fi
}

# engine_cpu_weight_of DIR: "cpu.shares N" or "cpu.weight N" of cgroup DIR;
# fails when it has neither.
engine_cpu_weight_of() {
  local file
  for file in cpu.shares cpu.weight; do
    if [ -r "$1/$file" ]; then
      printf '%s %s\n' "$file" "$(cat "$1/$file")"
      return 0
    fi
  done
  return 1
}

# engine_cpu_is_low DIR: whether cgroup DIR has the low weight.
engine_cpu_is_low() {
  case "$(engine_cpu_weight_of "$1")" in
    "cpu.shares $ENGINE_CPU_SHARES" | "cpu.weight $ENGINE_CPU_WEIGHT") return 0 ;;
    *) return 1 ;;
  esac
}

# engine_service_pids: the `podman system service` processes.
engine_service_pids() { pgrep -f '(^|/)podman system service' || true; }

# engine_cpu_cgroup PID: PID's cgroup in the cpu hierarchy (v1) or the
# unified one (v2), e.g. "/" or "/autopatch-engine".
engine_cpu_cgroup() {
  awk -F: '$2 ~ /(^|,)cpu(,|$)/ {v1 = $3} $1 == "0" {v2 = $3} END {print (v1 != "" ? v1 : v2)}' \
    "/proc/$1/cgroup" 2>/dev/null
}

# engine_low_cpu_weight: every unmanaged `podman system service` (one in the
# root cgroup, as setup-host.sh starts it) into $ENGINE_CGROUP at the low
# weight, and the cgroup Podman's cgroupfs manager gives conmon (where runc
# and the exit cleanup run) at the same weight. Best effort: a host where
# this cannot be done keeps working, only without the priority.
engine_low_cpu_weight() {
  local root pid cgroup pids
  pids=$(engine_service_pids)
  if [ -z "$pids" ]; then
    log "engine CPU weight: no podman service running (another engine?); left as it is"
    return 0
  fi
  root=$(engine_cpu_root)
  if [ -z "$root" ]; then
    log "engine CPU weight: no writable cpu cgroup controller; left as it is"
    return 0
  fi
  if [ "$root" = /sys/fs/cgroup ]; then
    # v2: the children of the root get cpu.weight only with +cpu here.
    echo +cpu >"$root/cgroup.subtree_control" 2>/dev/null || true
  fi
  for pid in $pids; do
    cgroup=$(engine_cpu_cgroup "$pid")
    case "$cgroup" in
      "/$ENGINE_CGROUP") ;;
      /)
        if ! { engine_cpu_set "$root/$ENGINE_CGROUP" && echo "$pid" >"$root/$ENGINE_CGROUP/cgroup.procs"; } 2>/dev/null; then
          log "engine CPU weight: could not move podman service $pid into $root/$ENGINE_CGROUP"
          return 0
        fi
        ;;
      *)
        log "engine CPU weight: podman service $pid is managed in $cgroup; give it a low weight there" \
          "(systemd: systemctl set-property podman.service CPUWeight=$ENGINE_CPU_WEIGHT)"
        return 0
        ;;
    esac
  done
  if [ "$(podman info --format '{{.Host.CgroupManager}}' 2>/dev/null)" = cgroupfs ]; then
    # The parent exists before the first container; on v2 its children get
    # cpu.weight only with +cpu in its subtree_control.
    local parent=$root/${ENGINE_CONMON_CGROUP%/*}
    mkdir -p "$parent" 2>/dev/null || true
    if [ "$root" = /sys/fs/cgroup ]; then
      echo +cpu >"$parent/cgroup.subtree_control" 2>/dev/null || true
    fi
    engine_cpu_set "$root/$ENGINE_CONMON_CGROUP" 2>/dev/null ||
      log "engine CPU weight: could not weight $root/$ENGINE_CONMON_CGROUP"
  fi
  local described
  if described=$(engine_cpu_describe); then log "engine CPU weight: $described"; fi
}

# engine_cpu_describe: one line on where the engine's control plane runs and
# at what weight, for logs and benchmark reports; fails when there is no
# service to describe.
engine_cpu_describe() {
  local root pid cgroup weight
  pid=$(engine_service_pids | head -1)
  [ -n "$pid" ] || return 1
  root=$(engine_cpu_root)
  cgroup=$(engine_cpu_cgroup "$pid")
  if [ -n "$root" ] && weight=$(engine_cpu_weight_of "$root${cgroup%/}"); then
    printf 'podman service in cgroup %s, %s\n' "$cgroup" "$weight"
  else
    printf 'podman service in cgroup %s\n' "$cgroup"
  fi
}
