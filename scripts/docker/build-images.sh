#!/usr/bin/env bash
# Builds the reference mesh's images (docker/Dockerfile targets controlplane, sidecar, echo) from wheels
# built here on the host, so no build step needs a network:
#
#   scripts/docker/build-images.sh                    # BASE_IMAGE=python:3.11-slim (pulled as usual)
#   scripts/docker/build-images.sh --offline          # build/keep the debootstrap base first (build-base.sh)
#   BASE_IMAGE=my/python:3.11 scripts/docker/build-images.sh
#
# Tags: meshconform/{controlplane,sidecar,echo}:<version> and :latest (only :$MESHCONFORM_IMAGE_TAG when that
# is set). Prints the time and each image's size.
set -euo pipefail
cd "$(dirname "$0")/../.."
offline=0
[ "${1:-}" = "--offline" ] && offline=1
base=${BASE_IMAGE:-}
if [ "$offline" = 1 ]; then
  base=${base:-meshconform/base:bookworm}
  bash scripts/docker/build-base.sh "$base"
fi
base=${base:-python:3.11-slim}
version=${MESHCONFORM_IMAGE_TAG:-$(python3 -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')}
began=$(date +%s)
wheels=dist/docker-wheels
rm -rf "$wheels" && mkdir -p "$wheels"
echo "== wheels -> $wheels"
# pin the image's dependencies to what this host runs (its tests ran against those)
python3 - "$wheels/constraints.txt" <<'PY'
import importlib.metadata as md, sys
pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in md.distributions() if d.metadata['Name']})
open(sys.argv[1], "w").write("\n".join(p for p in pins if not p.lower().startswith("meshconform==")) + "\n")
PY
cp docker/requirements-image.txt "$wheels/requirements-image.txt"
quiet() { grep -v -e '^WARNING: Location' -e 'DEPRECATED: The legacy builder' -e 'Install the buildx' -e 'docs.docker.com/go/buildx' -e '^$' || true; }
nice -n 10 python3 -m pip wheel -q --disable-pip-version-check --wheel-dir "$wheels" \
  -c "$wheels/constraints.txt" -r docker/requirements-image.txt 2>&1 | quiet
nice -n 10 python3 -m pip wheel -q --disable-pip-version-check --no-deps --wheel-dir "$wheels" . 2>&1 | quiet
for target in controlplane sidecar echo; do
  echo "== image meshconform/$target:$version (base $base)"
  nice -n 10 docker build -q -f docker/Dockerfile --target "$target" --build-arg "BASE_IMAGE=$base" \
    --label "io.meshconform.version=$version" -t "meshconform/$target:$version" \
    $([ -z "${MESHCONFORM_IMAGE_TAG:-}" ] && echo -t "meshconform/$target:latest") . 2>&1 >/dev/null | quiet
done
echo "images built in $(( $(date +%s) - began )) s (wheels included):"
for target in controlplane sidecar echo; do
  docker image inspect -f "{{index .RepoTags 0}} {{.Size}}" "meshconform/$target:$version" \
    | awk '{printf "  %-36s %4.0f MB\n", $1, $2/1e6}'
done
