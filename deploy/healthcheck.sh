#!/usr/bin/env bash
# Health check of a silo container: exit 0 when GET /healthz on the metrics port answers 200.
# Usage: clusterconv-healthcheck [PORT]   (default $CLUSTERCONV_METRICS_PORT, else 9464)
# Plain bash (/dev/tcp), so the image needs no curl and the check starts no .NET process.
set -uo pipefail
port="${1:-${CLUSTERCONV_METRICS_PORT:-9464}}"
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
exec 3<&-
case "$status" in
  HTTP/1.?' 200'*) exit 0 ;;
  *) echo "unhealthy: ${status%$'\r'}" >&2; exit 1 ;;
esac
