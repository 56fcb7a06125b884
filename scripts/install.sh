#!/usr/bin/env bash
# Installs meshconform and what its tests need on a fresh Debian/Ubuntu machine with Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
# Node.js for the real toxiproxy-node-client (tests/clients/); a Node.js that brings its own npm is kept
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "$(id -u)" = 0 ] && [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# the test extra: hypothesis, for the fuzz tests; the docker extra: the Docker SDK, for --runtime=docker; the load extra: Locust, for `meshconform load`;
# the chaos extra: toxiproxy-python, Chaos Toolkit and chaostoolkit-toxiproxy, the real clients
# tests/clients/ drive against `meshconform faults serve`
python3 -m pip install -q -e ".[load,chaos,docker,test]"
# toxiproxy-node-client, pinned by tests/clients/node/package-lock.json, into that folder only
node_dir=tests/clients/node
if command -v npm >/dev/null && { [ ! -f "$node_dir/node_modules/.package-lock.json" ] \
     || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; }; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
