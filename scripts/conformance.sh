#!/usr/bin/env bash
# The main job: install, then run every conformance suite against the reference mesh.
# Reports land in reports/ (conformance-reference.yaml, junit-reference.xml, conformance-reference.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 -m pytest suites/ --mesh=reference -p no:cacheprovider "$@"
