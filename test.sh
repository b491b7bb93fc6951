#!/usr/bin/env bash
# Runs every test of ClusterConv, installing what the tests need first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
scripts/ensure-dotnet.sh
scripts/ensure-packages.sh dataset-fashion-mnist redis-server chromium fonts-dejavu-core
dotnet build ClusterConv.sln -c Release -nologo -v quiet -clp:ErrorsOnly
# Deployment files (compose, Kubernetes, Prometheus, collector, image): offline checks, deploy/validate/run.sh.
deploy/validate/run.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# One test project at a time: on two cores, the timing-sensitive cluster and multi-process tests
# must not share the CPU with the chromium and training tests of another project.
dotnet test ClusterConv.sln -c Release --no-build -nologo -m:1 --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test project.
passed=$(awk '$1 == "Passed:" {s += $2} END {print s + 0}' "$log")
failed=$(awk '$1 == "Failed:" {s += $2} END {print s + 0}' "$log")
echo "dotnet: $passed passed, $failed failed"
exit "$status"
