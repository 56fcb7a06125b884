#!/usr/bin/env bash
# Installs meshconform and what its tests need on a fresh Debian/Ubuntu machine with Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && { ! command -v haproxy >/dev/null || ! command -v nginx >/dev/null; }; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq haproxy nginx-light wrk >/dev/null
fi
python3 -m pip install -q -e ".[load]"   # the load extra: Locust, for `meshconform load`
