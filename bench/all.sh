#!/usr/bin/env bash
# Every comparison of issue 14 in one run and one table (bench/all.py's docstring lists the
# rows). Installs QuTiP 5 from PyPI into target/bench-venv (or uses $BENCH_PYTHON).
# Usage: bench/all.sh [--only steady,mcsolve,...] [--long]
#   writes target/bench/all.md (the table BENCHMARKS.md's summary takes) and all.json
set -euo pipefail
cd "$(dirname "$0")/.."
py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
  venv=target/bench-venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
  py="$venv/bin/python"
fi
cargo build --release --quiet
# SuperLU and ARPACK are single-threaded; one BLAS thread avoids OpenBLAS spin-waiting on a
# shared machine (bench/piqs_compare.sh). QuTiP's parallel map still uses every core.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
"$py" bench/all.py "${CARGO_TARGET_DIR:-target}/release/dicke" target/bench "$@"
