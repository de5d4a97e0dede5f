#!/usr/bin/env bash
# Debian packages the tests and tools use: Prometheus' promtool and Pushgateway, headless Chromium,
# the PostgreSQL server (its programs live in /usr/lib/postgresql/<major>/bin, off the PATH) and
# LightGBM's OpenMP runtime (libgomp1).
# Installs only what is missing; `make test` runs it, so CI needs nothing installed by hand.
set -euo pipefail

declare -A PACKAGE_OF=(
  [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
  [chromium]=chromium
  [pg_ctl]=postgresql
)
has() { command -v "$1" >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null; }
missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  has "$tool" || missing+=("${PACKAGE_OF[$tool]}")
done
compgen -G "/usr/lib/*/libgomp.so.1" >/dev/null || compgen -G "/usr/lib/libgomp.so.1" >/dev/null \
  || missing+=(libgomp1)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Not a Debian/Ubuntu machine: install ${missing[*]} yourself (the tests that need them say so)." >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Their services are not started (policy-rc.d 101): tests start their own on 127.0.0.1.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy"
  made_policy=1
fi
trap '[ -n "$made_policy" ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
