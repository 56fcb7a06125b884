#!/usr/bin/env bash
# The long fuzz run (pytest tests/ runs a short, fixed-seed one): the sidecar's HTTP/1 handling both ways
# with random examples. Usage: bash scripts/fuzz-long.sh [EXAMPLES]   (default 20000; ~1 min per 2,500 here)
# A failure prints the minimal example: add it as an @example in tests/meshproxy/sidecar/test_fuzz_http1.py
# (the corpus of what fuzzing found), then fix what it shows.
set -euo pipefail
cd "$(dirname "$0")/.."
MESHCONFORM_FUZZ_EXAMPLES="${1:-20000}" python3 -m pytest -q -p no:cacheprovider tests/meshproxy/sidecar/test_fuzz_http1.py
