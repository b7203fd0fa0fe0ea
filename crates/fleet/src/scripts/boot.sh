#!/bin/sh
# autopatch instance boot: the container's entrypoint, run under the engine's
# init. POSIX sh, needs no package in the image. See docs/instances.md.
#
#   1. puts cfn-signal where the AWS helper lives (/opt/aws/bin) and on the
#      PATH (/usr/local/bin), as small wrappers (best effort);
#   2. waits up to 10 s for the instance's private address (local-ipv4),
#      which the controller writes once the container runs;
#   3. runs the user data once per instance, in the background like
#      cloud-init: output to log/user-data.log, exit code to user-data.exit;
#   4. execs the image's own command (the arguments after `--`), or waits
#      forever when the image has none.

base=${AUTOPATCH_INSTANCE_DIR:-/var/lib/autopatch}
meta=$base/imds/latest/meta-data

# 1. cfn-signal.
for directory in /opt/aws/bin /usr/local/bin; do
  {
    mkdir -p "$directory" &&
      printf '#!/bin/sh\nexec /bin/sh %s/bin/cfn-signal "$@"\n' "$base" > "$directory/.cfn-signal.$$" &&
      chmod 755 "$directory/.cfn-signal.$$" &&
      mv -f "$directory/.cfn-signal.$$" "$directory/cfn-signal"
  } 2>/dev/null || rm -f "$directory/.cfn-signal.$$" 2>/dev/null
done

# 2. The private address.
if sleep 0.1 2>/dev/null; then step=0.1 steps=100; else step=1 steps=10; fi
waited=0
while [ ! -s "$meta/local-ipv4" ] && [ "$waited" -lt "$steps" ]; do
  sleep "$step"
  waited=$((waited + 1))
done

# 3. The user data, once per instance.
user_data=$base/imds/latest/user-data
if [ -s "$user_data" ] && [ ! -e "$base/user-data.started" ]; then
  : > "$base/user-data.started"
  mkdir -p "$base/log"
  (
    # Where cloud-init keeps it; the instance folder when the image's
    # filesystem is read-only.
    script=/var/lib/cloud/instance/scripts/part-001
    if ! { mkdir -p "${script%/*}" && cp "$user_data" "$script" && chmod 700 "$script"; } 2>/dev/null; then
      script=$base/run/user-data
      mkdir -p "$base/run" && cp "$user_data" "$script" && chmod 700 "$script"
    fi
    first_line=
    IFS= read -r first_line < "$script"
    PATH=/opt/aws/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    export PATH
    cd /
    case $first_line in
      '#!'*) "$script" ;;
      '#cloud-config'*)
        echo "autopatch: #cloud-config user data is not supported; only scripts run" >&2
        false ;;
      *) sh "$script" ;;
    esac > "$base/log/user-data.log" 2>&1 < /dev/null
    echo $? > "$base/user-data.exit.tmp" && mv -f "$base/user-data.exit.tmp" "$base/user-data.exit"
  ) &
fi

# 4. The image's command, or wait forever.
if [ "${1-}" = "--" ]; then shift; fi
if [ $# -gt 0 ]; then exec "$@"; fi
while :; do sleep 3600; done
