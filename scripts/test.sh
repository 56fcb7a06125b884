#!/usr/bin/env bash
# The project's own tests: unit, integration and sensitivity (every check fails against a broken mesh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 -m pytest tests/ -p no:cacheprovider "$@"
