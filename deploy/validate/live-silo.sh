#!/usr/bin/env bash
# Live test of the container's entry command, run directly on this machine (no Docker): a real
# redis-server started the way docker-compose.yml starts it (password through configuration on
# stdin), then the image's entry point (deploy/docker-entrypoint.sh) with the silo arguments and
# environment that `docker-compose config` resolves (the Kubernetes Deployment passes the same
# arguments: check-compose.mjs compares them). Passes when the silo joins the membership in Redis,
# serves /healthz (200, read by deploy/healthcheck.sh as the image's HEALTHCHECK does) and
# /metrics (with service.instance.id = the silo name) and /livez, never prints the Redis password,
# and leaves within the 45 s grace period with exit code 0 after SIGTERM.
#
# Only what cannot be the same outside a container differs: the Redis, silo, gateway and metrics
# ports are free loopback ports; POD_IP is 127.0.0.1; CLUSTERCONV_REDIS points at the test's
# Redis; OTLP goes to a closed loopback port.
#
# Usage: live-silo.sh COMPOSE_CONFIG.yaml CLUSTERCONV_DLL
# Exit: 0 passed, 1 failed, 77 skipped (this build has no `silo` verb).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deploy="$(cd "$here/.." && pwd)"
config="$1"
dll="$2"
work="$(mktemp -d /tmp/clusterconv-live-silo.XXXXXX)"
redis_pid=""
silo_pid=""
cleanup() {
  if [ -n "$silo_pid" ]; then kill -KILL "$silo_pid" 2>/dev/null; fi
  if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid" 2>/dev/null; fi
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "live silo: $*" >&2
  if [ -f "$work/silo.log" ]; then tail -n 30 "$work/silo.log" | sed 's/^/  silo| /' >&2; fi
  exit 1
}
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
rcli() { REDISCLI_AUTH="$password" redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# `silo --help` exits 0 even without the verb (the root help); the verb's own usage line tells.
if ! dotnet "$dll" silo --help 2>&1 | grep -q 'clusterconv silo'; then
  echo "live silo: skipped, $dll has no silo verb" >&2
  exit 77
fi

# The silo service of the resolved compose file: its command (one argument a line) and environment.
YAML_MODULE="$here/node_modules/yaml" CONFIG="$config" OUT="$work" node -e '
  const { readFileSync, writeFileSync } = require("node:fs");
  const { parse } = require(process.env.YAML_MODULE);
  const s = parse(readFileSync(process.env.CONFIG, "utf8")).services.silo;
  writeFileSync(process.env.OUT + "/args", s.command.map(a => String(a).replaceAll("$$", "$")).join("\n") + "\n");
  writeFileSync(process.env.OUT + "/env", Object.entries(s.environment || {}).map(([k, v]) => k + "=" + v).join("\n") + "\n");
' || fail "cannot read the silo service from $config"
mapfile -t args < "$work/args"

redis_port="$(free_port)"
silo_port="$(free_port)"
gateway_port="$(free_port)"
metrics_port="$(free_port)"
otlp_port="$(free_port)"
password="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# Redis as compose runs it: requirepass through configuration on stdin.
printf 'requirepass %s\n' "$password" | redis-server - --port "$redis_port" --bind 127.0.0.1 --save '' \
  --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 50); do
  if rcli ping 2>/dev/null | grep -q PONG; then break; fi
  sleep 0.1
done
rcli ping 2>/dev/null | grep -q PONG || fail "redis-server did not start: $(tail -n 3 "$work/redis.log")"

# Same arguments, ports swapped for free ones.
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --silo-port) args[i + 1]="$silo_port" ;;
    --gateway-port) args[i + 1]="$gateway_port" ;;
    --metrics-port) args[i + 1]="$metrics_port" ;;
  esac
done

# Same environment, plus the env file's secret and this machine's addresses.
env_args=()
while IFS= read -r line; do
  if [ -n "$line" ]; then env_args+=("$line"); fi
done < "$work/env"
env_args+=(
  "CLUSTERCONV_REDIS=127.0.0.1:$redis_port"
  "CLUSTERCONV_REDIS_PASSWORD=$password"
  "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$otlp_port"
  "POD_NAME=live-silo-test"
  "POD_IP=127.0.0.1"
  "CLUSTERCONV_METRICS_PORT=$metrics_port"
  "CLUSTERCONV_EXEC=dotnet $dll"
)
# A build that reads no CLUSTERCONV_REDIS_PASSWORD yet can be tried with the password in the
# connection string (the contract's other form): LIVE_SILO_PASSWORD_IN_ADDRESS=1.
if [ "${LIVE_SILO_PASSWORD_IN_ADDRESS:-0}" = 1 ]; then env_args+=("CLUSTERCONV_REDIS=127.0.0.1:$redis_port,password=$password"); fi
echo "live silo: clusterconv-entrypoint ${args[*]}" >&2
env "${env_args[@]}" "$deploy/docker-entrypoint.sh" "${args[@]}" > "$work/silo.log" 2>&1 &
silo_pid=$!

# Joined: the membership in Redis names the silo.
joined=0
for _ in $(seq 120); do
  kill -0 "$silo_pid" 2>/dev/null || fail "the silo exited early"
  for key in $(rcli --scan 2>/dev/null); do
    if [ "$(rcli type "$key" 2>/dev/null)" = hash ] && rcli hgetall "$key" 2>/dev/null | grep -q live-silo-test; then joined=1; fi
  done
  if [ "$joined" = 1 ]; then break; fi
  sleep 1
done
[ "$joined" = 1 ] || fail "no membership entry naming live-silo-test in Redis within 120 s"
echo "live silo: joined the membership in Redis" >&2

# LIVE_SILO_SKIP_HTTP=1 leaves out /healthz and /metrics (for a build without the observability issue).
if [ "${LIVE_SILO_SKIP_HTTP:-0}" != 1 ]; then
  healthy=0
  for _ in $(seq 60); do
    kill -0 "$silo_pid" 2>/dev/null || fail "the silo exited early"
    if CLUSTERCONV_METRICS_PORT="$metrics_port" "$deploy/healthcheck.sh" 2>/dev/null; then healthy=1; break; fi
    sleep 1
  done
  [ "$healthy" = 1 ] || fail "GET /healthz on the metrics port ($metrics_port) did not answer 200 within 60 s of joining"

  metrics="$(exec 3<>"/dev/tcp/127.0.0.1/$metrics_port" && printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3)"
  grep -q '^HTTP/1.. 200' <<<"$metrics" || fail "GET /metrics did not answer 200"
  grep -qE '^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [0-9.eE+-]+' <<<"$metrics" || fail "GET /metrics has no sample"
  # service.instance.id is the silo name (--name $(POD_NAME)) although OTEL_RESOURCE_ATTRIBUTES is set.
  grep -q '^target_info{.*service_instance_id="live-silo-test"' <<<"$metrics" || fail "target_info has no service_instance_id=\"live-silo-test\""
  livez="$(exec 3<>"/dev/tcp/127.0.0.1/$metrics_port" && printf 'GET /livez HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3)"
  grep -q '^HTTP/1.. 200' <<<"$livez" || fail "GET /livez did not answer 200"
fi

# The password reaches Redis but is never printed (the start-up line shows password=***).
if grep -qF "$password" "$work/silo.log"; then fail "the silo printed the Redis password"; fi

kill -TERM "$silo_pid"
for _ in $(seq 45); do
  kill -0 "$silo_pid" 2>/dev/null || break
  sleep 1
done
if kill -0 "$silo_pid" 2>/dev/null; then fail "the silo did not leave within 45 s of SIGTERM"; fi
wait "$silo_pid"
rc=$?
silo_pid=""
[ "$rc" = 0 ] || fail "the silo exited with $rc after SIGTERM"
echo "live silo: passed (joined Redis$([ "${LIVE_SILO_SKIP_HTTP:-0}" = 1 ] || echo ", served /healthz and /metrics"), left on SIGTERM with exit code 0)" >&2
exit 0
