#!/usr/bin/env bash
# Builds a local base image offline for machines that reach no image registry:
#   debootstrap --variant=minbase <suite> + python3 + python3-venv, then `docker import`.
# The Dockerfile's default base is an ordinary Python image (python:3.11-slim); this script is only for
# machines where that cannot be pulled. It uses the host's own Debian mirror (apt sources), so it needs
# only what apt already reaches.
#
#   scripts/docker/build-base.sh [TAG]        # default tag: meshconform/base:bookworm
# Environment: MESHCONFORM_BASE_SUITE (default: the host's VERSION_CODENAME), MESHCONFORM_BASE_MIRROR
# (default: the first deb.debian.org-style URI in /etc/apt/sources.list*), FORCE=1 to rebuild a present tag.
set -euo pipefail
tag=${1:-meshconform/base:bookworm}
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag is present (FORCE=1 rebuilds it)"; exit 0
fi
command -v debootstrap >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq debootstrap >/dev/null; }
. /etc/os-release
suite=${MESHCONFORM_BASE_SUITE:-${VERSION_CODENAME:-bookworm}}
mirror=${MESHCONFORM_BASE_MIRROR:-}
if [ -z "$mirror" ]; then
  # deb822 (.sources) "URIs:" lines first, then one-line "deb URI suite" entries; skip security mirrors
  mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                               | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
root=$(mktemp -d /tmp/meshconform-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
began=$(date +%s)
echo "== debootstrap --variant=minbase $suite $mirror"
nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$suite" "$root" "$mirror" >"$root.log" 2>&1 || { tail -30 "$root.log"; exit 1; }
rm -f "$root.log"
# trim what a container never uses: apt lists and caches, docs, man pages, locales
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
echo "== docker import -> $tag"
tar -C "$root" -c . | nice -n 10 docker import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
  --message "meshconform base: debootstrap --variant=minbase $suite" - "$tag" >/dev/null
echo "base image $tag built in $(( $(date +%s) - began )) s; $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
