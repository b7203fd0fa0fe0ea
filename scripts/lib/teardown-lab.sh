# shellcheck shell=bash
# The teardown the benchmark scripts share: the lab stacks a run made in its
# own state directory are deleted through its daemon, the daemon stopped,
# and anything left behind (the VPC's engine network, instance containers
# of the run's stacks) removed by hand and reported.
#
# Reads BIN, STATE, APP, BASE, WORK, DAEMON_STARTED and VPC_NETWORK, adds to
# STACK_IDS, logs with log(). Returns 1 when something failed or had to be
# removed by hand.
teardown_lab() {
  local failed=0 id left s
  if [ "$DAEMON_STARTED" = 1 ]; then
    if [ -S "$STATE/autopatch.sock" ]; then
      # Every stack this daemon knows, also one interrupted mid-operation.
      while read -r id; do [ -n "$id" ] && STACK_IDS+=("$id"); done < <(
        timeout 10 "$BIN" --state-dir "$STATE" --output json stack list --all 2>/dev/null \
          | python3 -c 'import json,sys; [print(s["StackId"]) for s in json.load(sys.stdin)["StackSummaries"]]' 2>/dev/null)
      # An operation cut short goes on in the daemon: let it end (bounded),
      # as a stack in progress cannot be deleted.
      for _ in $(seq 1 120); do
        timeout 10 "$BIN" --state-dir "$STATE" --output json stack describe "$APP" 2>/dev/null \
          | grep -q '"StackStatus": *"[A-Z_]*_IN_PROGRESS"' || break
        sleep 1
      done
      for s in "$APP" "$BASE"; do
        timeout 120 "$BIN" --state-dir "$STATE" stack delete "$s" >"$WORK/cleanup-delete-$s.log" 2>&1 \
          || { log "cleanup: stack delete $s failed"; tail -5 "$WORK/cleanup-delete-$s.log" >&2; failed=1; }
      done
    fi
    timeout 60 "$BIN" --state-dir "$STATE" down >/dev/null 2>&1 || { log "cleanup: autopatch down failed"; failed=1; }
  fi
  # The base stack's engine network goes with its VPC.
  if [ -n "$VPC_NETWORK" ] && podman network exists "$VPC_NETWORK" 2>/dev/null; then
    log "cleanup: the network $VPC_NETWORK of the deleted VPC was left behind; removing it"
    podman network rm "$VPC_NETWORK" >/dev/null 2>&1
    failed=1
  fi
  # No instance container of this run's stacks may remain.
  for id in "${STACK_IDS[@]}"; do
    left=$(podman ps -a -q --filter "label=autopatch.stack=$id")
    if [ -n "$left" ]; then
      log "cleanup: instance containers of $id were left behind; removing them"
      # shellcheck disable=SC2086 # one id per word
      podman rm -f $left >/dev/null 2>&1
      failed=1
    fi
  done
  return "$failed"
}
