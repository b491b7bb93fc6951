#!/usr/bin/env bash
# Installs the Debian packages named as arguments when missing (as root), or says which to install.
# Usage: scripts/ensure-packages.sh PACKAGE...
set -euo pipefail
missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent or stale on a fresh machine; refresh once, then install.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/clusterconv-apt.log 2>&1; then
  apt-get update -q >/tmp/clusterconv-apt-update.log 2>&1 || true
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/clusterconv-apt.log 2>&1; then
    echo "error: could not install ${missing[*]} (see /tmp/clusterconv-apt.log)" >&2
    exit 1
  fi
fi
