#!/usr/bin/env bash
# Benchmarks autopatch's load balancer against nginx as a reverse proxy to the
# same two backends, side by side, with wrk (issue 3, docs/benchmarks.md).
#
#   scripts/bench-proxy.sh            # wrk -t2 -c32 -d10s --latency against each
#
# Everything listens on 127.0.0.1 only (invariant 7); nginx runs from its own
# config in a temporary directory, never on port 80. Needs wrk and nginx
# (nginx-light), both installed by scripts/setup-host.sh.
#
# The two proxies are measured in alternating rounds (nginx, autopatch, nginx,
# ...) and judged on the medians, because on a small machine wrk, the proxy
# and both backends share the cores and one run alone is noisy.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (32),
# BENCH_THREADS (2), BENCH_ROUNDS (3), BENCH_BASE_PORT (18080: uses this port
# and the next three).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
rounds=${BENCH_ROUNDS:-3}
base=${BENCH_BASE_PORT:-18080}
proxy_port=$base nginx_port=$((base + 1)) backend1=$((base + 2)) backend2=$((base + 3))

log() { printf 'bench-proxy: %s\n' "$*" >&2; }
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { log "missing $tool: run scripts/setup-host.sh"; exit 1; }
done

log "building release examples"
cargo build --release --quiet -p autopatch-loadbalancer --example bench_backend --example bench_proxy
bin=target/release/examples

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_url() {
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  log "$1 never answered"; return 1
}

"$bin/bench_backend" "127.0.0.1:$backend1" 2>"$work/backend1.log" & pids+=($!)
"$bin/bench_backend" "127.0.0.1:$backend2" 2>"$work/backend2.log" & pids+=($!)
wait_for_url "http://127.0.0.1:$backend1/"
wait_for_url "http://127.0.0.1:$backend2/"

"$bin/bench_proxy" "127.0.0.1:$proxy_port" "127.0.0.1:$backend1" "127.0.0.1:$backend2" 2>"$work/proxy.log" & pids+=($!)
for _ in $(seq 1 100); do grep -q ready "$work/proxy.log" && break; sleep 0.1; done
grep -q ready "$work/proxy.log" || { log "proxy never became ready"; cat "$work/proxy.log" >&2; exit 1; }

mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream backends {
    server 127.0.0.1:$backend1;
    server 127.0.0.1:$backend2;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Port \$server_port;
    }
  }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' 2>"$work/nginx-stderr.log" & pids+=($!)
wait_for_url "http://127.0.0.1:$nginx_port/"

# One wrk run; prints "<requests/s> <p50 ms> <p99 ms> <non-2xx or errors>".
measure() {
  local url=$1 out=$work/wrk.out
  wrk -t"$threads" -c"$connections" -d2s "$url" >/dev/null  # warm-up
  wrk -t"$threads" -c"$connections" -d"$duration" --latency "$url" >"$out"
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { errors += $NF }
    /Socket errors/ { errors += 1 }
    END { printf "%s %.3f %.3f %d\n", rps, p50, p99, errors }
  ' "$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/results"
for round in $(seq 1 "$rounds"); do
  for side in nginx autopatch; do
    port=$proxy_port; [ "$side" = nginx ] && port=$nginx_port
    log "round $round/$rounds, $side: wrk -t$threads -c$connections -d$duration --latency"
    read -r rps p50 p99 errors < <(measure "http://127.0.0.1:$port/")
    echo "$side $round $rps $p50 $p99 $errors" >>"$work/results"
  done
done

column() { awk -v side="$1" -v field="$2" '$1 == side { print $field }' "$work/results" | median; }
errors_total() { awk -v side="$1" '$1 == side { sum += $6 } END { print sum + 0 }' "$work/results"; }
nginx_rps=$(column nginx 3) nginx_p50=$(column nginx 4) nginx_p99=$(column nginx 5)
ap_rps=$(column autopatch 3) ap_p50=$(column autopatch 4) ap_p99=$(column autopatch 5)

ratio=$(awk -v a="$ap_rps" -v n="$nginx_rps" 'BEGIN { printf "%.2f", a / n }')
p99_delta=$(awk -v a="$ap_p99" -v n="$nginx_p99" 'BEGIN { printf "%.3f", a - n }')
rps_ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) ? "met" : "NOT met" }')
p99_ok=$(awk -v d="$p99_delta" 'BEGIN { print (d <= 1.0) ? "met" : "NOT met" }')

printf '| round | proxy | requests/s | p50 (ms) | p99 (ms) | errors |\n'
printf '|---:|---|---:|---:|---:|---:|\n'
while read -r side round rps p50 p99 errors; do
  printf '| %s | %s | %s | %s | %s | %s |\n' "$round" "$side" "$rps" "$p50" "$p99" "$errors"
done <"$work/results"
printf '| median | nginx | %s | %s | %s | %s |\n' "$nginx_rps" "$nginx_p50" "$nginx_p99" "$(errors_total nginx)"
printf '| median | autopatch | %s | %s | %s | %s |\n' "$ap_rps" "$ap_p50" "$ap_p99" "$(errors_total autopatch)"
printf '\nthroughput: %s x nginx (target >= 0.8: %s); p99: %+.3f ms vs nginx (target <= +1 ms: %s)\n' \
  "$ratio" "$rps_ok" "$p99_delta" "$p99_ok"
