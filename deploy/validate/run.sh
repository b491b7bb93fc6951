#!/usr/bin/env bash
# Offline validation of the deployment files (issue 5), run by ./test.sh. Needs no Docker engine,
# Kubernetes cluster or collector: Debian's yamllint, docker-compose and promtool, kubectl's
# kustomize, and the npm packages in package-lock.json (kubernetes-models, kubernetes-types,
# typescript, yaml, dockerfile-utils, @grafana/schema, @prometheus-io/lezer-promql). Prints one line
# per check and closes with "deploy: N passed, N failed, N skipped".
#
# The live test (the image's entry command starting a silo that joins a real Redis, see
# live-silo.sh) runs by default; CLUSTERCONV_DEPLOY_LIVE=0 leaves it out.
set -uo pipefail
live="${CLUSTERCONV_DEPLOY_LIVE:-1}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
work="$(mktemp -d /tmp/clusterconv-deploy-validate.XXXXXX)"
trap 'rm -rf "$work"' EXIT

passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; if [ -n "${2:-}" ]; then sed 's/^/       /' "$2" | head -n 40; fi; }
# check NAME COMMAND...: runs COMMAND, its output shown only when it fails.
check() {
  local name="$1"; shift
  if "$@" > "$work/out" 2>&1; then ok "$name"; else bad "$name" "$work/out"; fi
}
# node_check NAME SCRIPT ARGS...: runs a node checker and counts its ok/FAIL lines; a checker that
# exits non-zero without a FAIL line (a crash) counts as one failure.
node_check() {
  local name="$1" script="$2" out="$work/$1.out" rc n
  shift 2
  node "$here/$script" "$@" > "$out" 2>&1
  rc=$?
  cat "$out"
  n="$(grep -c '^ok ' "$out")"; passed=$((passed + n))
  n="$(grep -c '^FAIL ' "$out")"; failed=$((failed + n))
  if [ "$rc" != 0 ] && [ "$n" = 0 ]; then bad "$script ran to the end" "$out"; fi
}

echo "deploy: installing tools (Debian: yamllint docker-compose prometheus redis-server; npm ci)"
if ! scripts/ensure-packages.sh yamllint docker-compose prometheus redis-server; then
  echo "deploy: 0 passed, 1 failed"; exit 1
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "error: kubectl (for kubectl kustomize) is required" >&2; echo "deploy: 0 passed, 1 failed"; exit 1
fi
if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error > "$work/npm.log" 2>&1); then
  cat "$work/npm.log"; echo "deploy: 0 passed, 1 failed"; exit 1
fi

# --- YAML ---------------------------------------------------------------------------------------
yamls="$(yamllint --list-files . | sort)"
check "yamllint: every YAML file ($(wc -l <<<"$yamls") files, .yamllint)" yamllint -s .

# --- docker compose -----------------------------------------------------------------------------
# The env files are not committed; the validation reads their .example templates.
export CLUSTERCONV_ENV_FILE=deploy/.env.example CLUSTERCONV_GRAFANA_ENV_FILE=deploy/grafana.env.example
check "docker-compose config -q accepts docker-compose.yml" docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml config > "$work/compose.yaml" 2>/dev/null
secrets_ignored() { git check-ignore -q deploy/.env && git check-ignore -q deploy/grafana.env && [ -z "$(git ls-files deploy/.env deploy/grafana.env)" ]; }
check "secrets stay out of git (deploy/.env and deploy/grafana.env ignored, not tracked)" secrets_ignored

# --- Prometheus ---------------------------------------------------------------------------------
check "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml

# --- Kubernetes ---------------------------------------------------------------------------------
sets=()
for dir in k8s k8s/overlays/large k8s/overlays/monitoring k8s/overlays/tls; do
  name="$(basename "$dir")"; [ "$dir" = k8s ] && name=base
  if kubectl kustomize "$dir" > "$work/$name.yaml" 2> "$work/out"; then
    ok "kubectl kustomize $dir renders"
    sets+=("$name=$work/$name.yaml")
  else
    bad "kubectl kustomize $dir renders" "$work/out"
  fi
done
node_check k8s check-k8s.mjs "${sets[@]}"

# --- compose against Kubernetes, collector --------------------------------------------------------
node_check compose check-compose.mjs "$work/compose.yaml" "$work/base.yaml"
node_check references check-references.mjs "$work/compose.yaml" "$work/base.yaml"
node_check collector check-collector.mjs deploy/otel-collector/config.yaml k8s/base/otel-collector-config.yaml

# --- Grafana dashboards ---------------------------------------------------------------------------
node_check dashboards check-dashboards.mjs deploy/grafana/dashboards deploy/grafana/provisioning docs/TELEMETRY.md

# --- image --------------------------------------------------------------------------------------
dockerfile_rules() {
  local f=deploy/Dockerfile
  grep -qE '^FROM (--platform=[^ ]+ )?mcr\.microsoft\.com/dotnet/sdk:10\.0[^ ]* AS build' "$f" || { echo "no SDK build stage"; return 1; }
  # The ASP.NET Core runtime: the CLI's metrics listener is Kestrel (FrameworkReference Microsoft.AspNetCore.App).
  grep -qE '^FROM mcr\.microsoft\.com/dotnet/aspnet:10\.0' "$f" || { echo "no ASP.NET Core runtime stage"; return 1; }
  grep -q 'dataset-fashion-mnist' "$f" || { echo "Fashion-MNIST not from dataset-fashion-mnist"; return 1; }
  # The live test publishes the same way (publish_like_the_image below).
  grep -q -- '--self-contained false' "$f" && grep -q -- '-p:UseAppHost=false -p:DebugType=none' "$f" \
    || { echo "the publish command differs from the live test's"; return 1; }
  [ "$(grep -E '^USER ' "$f" | tail -n 1 | awk '{print $2}' | cut -d: -f1)" -gt 0 ] 2>/dev/null || { echo "last USER is not a numeric non-root uid"; return 1; }
  grep -qE '^HEALTHCHECK .*CMD \["/usr/local/bin/clusterconv-healthcheck"\]' "$f" || { echo "no HEALTHCHECK"; return 1; }
  grep -qE '^ENTRYPOINT \["/usr/local/bin/clusterconv-entrypoint"\]' "$f" || { echo "ENTRYPOINT is not the exec-form entry point"; return 1; }
  for src in $(grep -oE '^COPY [^ ]*(--chmod=[0-9]+ )?deploy/[^ ]+' "$f" | awk '{print $NF}'); do
    [ -e "$src" ] || { echo "COPY of missing $src"; return 1; }
  done
}
node_check dockerfile check-dockerfile.mjs deploy/Dockerfile
check "Dockerfile: SDK -> runtime stages, Debian's Fashion-MNIST, non-root USER, HEALTHCHECK, exec entry point" dockerfile_rules

entrypoint_expands() {
  local out
  out="$(env -i PATH="$PATH" CLUSTERCONV_EXEC="printf <%s>" POD_NAME=silo-a POD_IP=10.1.2.3 CLUSTERCONV_REDIS=redis:6379 \
    deploy/docker-entrypoint.sh silo --redis '$(CLUSTERCONV_REDIS)' --name '$(POD_NAME)' --advertise '$(POD_IP)' \
    'x$$(POD_IP)y' '$(NOT_SET)' 'two words')"
  [ "$out" = '<silo><--redis><redis:6379><--name><silo-a><--advertise><10.1.2.3><x$(POD_IP)y><$(NOT_SET)><two words>' ] \
    || { echo "got: $out"; return 1; }
  out="$(env -i PATH="$PATH" CLUSTERCONV_EXEC="printf <%s>" deploy/docker-entrypoint.sh '$(POD_NAME)' '$(POD_IP)')"
  [ "$out" = "<$(hostname)><$(hostname -i 2>/dev/null | tr ' ' '\n' | grep -v '^127\.' | grep -v ':' | head -n 1 | grep . || echo 127.0.0.1)>" ] \
    || { echo "defaults outside Kubernetes: got $out"; return 1; }
}
check "entry point: expands \$(NAME) like Kubernetes, POD_NAME/POD_IP defaults outside it" entrypoint_expands

healthcheck_answers() {
  local port
  node -e '
    const http = require("node:http");
    const s = http.createServer((q, r) => { r.writeHead(q.url === "/healthz" ? Number(process.argv[1]) : 404); r.end("x"); });
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); });
    setTimeout(() => process.exit(0), 20000);
  ' 200 > "$work/port200" &
  local p1=$!
  node -e '
    const http = require("node:http");
    const s = http.createServer((q, r) => { r.writeHead(503); r.end("x"); });
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); });
    setTimeout(() => process.exit(0), 20000);
  ' > "$work/port503" &
  local p2=$!
  for _ in $(seq 50); do [ -s "$work/port200" ] && [ -s "$work/port503" ] && break; sleep 0.1; done
  local rc=0
  deploy/healthcheck.sh "$(cat "$work/port200")" || { echo "200 on /healthz reported unhealthy"; rc=1; }
  if deploy/healthcheck.sh "$(cat "$work/port503")" 2>/dev/null; then echo "503 reported healthy"; rc=1; fi
  port="$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
  if deploy/healthcheck.sh "$port" 2>/dev/null; then echo "closed port reported healthy"; rc=1; fi
  kill "$p1" "$p2" 2>/dev/null; wait "$p1" "$p2" 2>/dev/null
  return "$rc"
}
check "health check: 200 on /healthz healthy; 503 and a closed port unhealthy" healthcheck_answers

# --- live silo -----------------------------------------------------------------------------------
if [ "$live" = 1 ]; then
  # The app as the image's build stage publishes it (deploy/Dockerfile, linux-x64).
  if ! dotnet publish src/ClusterConv.Cli/ClusterConv.Cli.csproj -c Release -r linux-x64 --self-contained false \
      -p:UseAppHost=false -p:DebugType=none -o "$work/app" -nologo -v quiet > "$work/out" 2>&1; then
    bad "live: dotnet publish as in deploy/Dockerfile" "$work/out"
  else
    CLUSTERCONV_DATA=/usr/share/datasets/fashion-mnist deploy/validate/live-silo.sh "$work/compose.yaml" "$work/app/clusterconv.dll" > "$work/out" 2>&1
    case $? in
      0) ok "live: entry command starts a silo that joins a real Redis, serves /healthz and /metrics, leaves on SIGTERM" ;;
      77) skipped=$((skipped + 1)); echo "skip live: $(tail -n 1 "$work/out")" ;;
      *) bad "live: entry command starts a silo that joins a real Redis" "$work/out" ;;
    esac
  fi
else
  skipped=$((skipped + 1))
  echo "skip live: entry command starts a silo in a real Redis (CLUSTERCONV_DEPLOY_LIVE=0)"
fi

echo "deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
