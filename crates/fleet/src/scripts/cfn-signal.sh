#!/bin/sh
# cfn-signal for autopatch instances.
#
# Records a CloudFormation resource signal as a file in the instance's folder
# (signals/), which the fleet controller reads. The options are the AWS
# helper's (aws-cfn-bootstrap); credentials, proxies and the endpoint URL are
# accepted and ignored, because the signal never leaves the host. POSIX sh,
# needs no package in the image. See docs/instances.md.
#
# File format: one `key=value` per line (version, instance_id, stack,
# resource, status, unique_id, then region, reason, exit_code, time when
# known); newlines in values are flattened to spaces. Written to a temporary
# file and renamed, so a reader never sees half a signal.

base=${AUTOPATCH_INSTANCE_DIR:-/var/lib/autopatch}

usage() {
  cat <<'USAGE'
usage: cfn-signal [options] --stack STACK --resource LOGICAL_ID

  -e, --exit-code CODE   SUCCESS if CODE is 0, else FAILURE (overrides --success)
  -s, --success BOOL     true: SUCCESS (the default), false: FAILURE
  -r, --reason TEXT      a status reason
  -i, --id ID            the signal's unique id (default: this instance's id)
      --stack STACK      the stack name or id
      --resource ID      the logical id of the resource to signal
      --region REGION    the region
  -u, --url URL          accepted and ignored (signals stay on this host)
  -d, --data, --access-key, --secret-key, --role, -f, --credential-file,
      --http-proxy, --https-proxy
                         accepted and ignored
  -h, --help             show this help
USAGE
}

fail() {
  printf 'cfn-signal: error: %s\n' "$1" >&2
  usage >&2
  exit 1
}

# A value on one line: carriage returns and newlines become spaces.
flat() {
  printf '%s' "$1" | tr '\r\n' '  '
}

exit_code= success=true reason= unique_id= stack= resource= region=
while [ $# -gt 0 ]; do
  option=$1
  has_value=
  case $option in
    --*=*) value=${option#*=}; option=${option%%=*}; has_value=1 ;;
    -[esriufd]?*) value=${option#-?}; option=${option%"$value"}; has_value=1 ;;
  esac
  case $option in
    -h|--help) usage; exit 0 ;;
    -e|--exit-code|-s|--success|-r|--reason|-i|--id|--stack|--resource|--region|-u|--url|\
    -d|--data|--access-key|--secret-key|--role|-f|--credential-file|--http-proxy|--https-proxy)
      if [ -z "$has_value" ]; then
        [ $# -ge 2 ] || fail "option $option needs a value"
        value=$2
        shift
      fi ;;
    -*) fail "unknown option $option" ;;
    *) fail "wait condition handles ($option) are not supported here: signal a resource with --stack and --resource" ;;
  esac
  case $option in
    -e|--exit-code) exit_code=$value ;;
    -s|--success)
      case $value in
        [Tt][Rr][Uu][Ee]) success=true ;;
        [Ff][Aa][Ll][Ss][Ee]) success=false ;;
        *) fail "--success takes true or false, not '$value'" ;;
      esac ;;
    -r|--reason) reason=$value ;;
    -i|--id) unique_id=$value ;;
    --stack) stack=$value ;;
    --resource) resource=$value ;;
    --region) region=$value ;;
  esac
  shift
done

[ -n "$stack" ] || fail "--stack is required"
[ -n "$resource" ] || fail "--resource is required"

# As the AWS helper: an exit code, when given, decides and --success is ignored.
if [ -n "$exit_code" ]; then
  if [ "$exit_code" = 0 ]; then status=SUCCESS; else status=FAILURE; fi
elif [ "$success" = true ]; then
  status=SUCCESS
else
  status=FAILURE
fi

instance_id=
if [ -r "$base/imds/latest/meta-data/instance-id" ]; then
  instance_id=$(cat "$base/imds/latest/meta-data/instance-id")
fi
[ -n "$instance_id" ] || {
  printf 'cfn-signal: error: no instance id in %s\n' "$base/imds/latest/meta-data/instance-id" >&2
  exit 1
}
[ -n "$unique_id" ] || unique_id=$instance_id

directory=$base/signals
mkdir -p "$directory" 2>/dev/null
temporary=$directory/.tmp-$$
{
  printf 'version=1\n'
  printf 'instance_id=%s\n' "$(flat "$instance_id")"
  printf 'stack=%s\n' "$(flat "$stack")"
  printf 'resource=%s\n' "$(flat "$resource")"
  printf 'status=%s\n' "$status"
  printf 'unique_id=%s\n' "$(flat "$unique_id")"
  [ -z "$region" ] || printf 'region=%s\n' "$(flat "$region")"
  [ -z "$reason" ] || printf 'reason=%s\n' "$(flat "$reason")"
  [ -z "$exit_code" ] || printf 'exit_code=%s\n' "$(flat "$exit_code")"
  printf 'time=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$temporary" || {
  rm -f "$temporary"
  printf 'cfn-signal: error: cannot write the signal into %s\n' "$directory" >&2
  exit 1
}
name=$(date +%s)-$$
n=0
while [ -e "$directory/$name.signal" ]; do
  n=$((n + 1))
  name=$(date +%s)-$$-$n
done
mv -f "$temporary" "$directory/$name.signal" || {
  rm -f "$temporary"
  printf 'cfn-signal: error: cannot write the signal into %s\n' "$directory" >&2
  exit 1
}
