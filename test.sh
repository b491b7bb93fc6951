#!/usr/bin/env bash
# Runs every test of ClusterConv, installing what the tests need first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
scripts/ensure-dotnet.sh
scripts/ensure-packages.sh dataset-fashion-mnist redis-server
dotnet build ClusterConv.sln -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet test ClusterConv.sln -c Release --no-build -nologo --logger "console;verbosity=normal" "$@"
