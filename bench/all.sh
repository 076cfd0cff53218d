#!/usr/bin/env bash
# Every comparison of issue 14 in one run and one table (bench/all.py's docstring lists the
# rows). Installs QuTiP 5 from PyPI into target/bench-venv (or uses $BENCH_PYTHON).
# Usage: bench/all.sh [--only steady,mcsolve,...] [--long]
#   writes target/bench/all.md (the table BENCHMARKS.md's summary takes) and all.json
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/venv.sh
"$py" bench/all.py "$dicke_bin" target/bench "$@"
