#!/usr/bin/env bash
# Liouvillian spectrum (issue 13): dicke's `kind = "spectrum"` vs scipy's shift-invert `eigs` on
# QuTiP's Liouvillian, k = 10 eigenvalues nearest 0, collective N = 200 and 400 (seed 001) and
# permutation-invariant blocks N = 54 and 18 (seed 000, PIQS), same machine, same run, each solve
# in its own process (time and peak RSS). Installs QuTiP 5 from PyPI into target/bench-venv.
# Usage: bench/spectrum_compare.sh [--quick] [--piqs-full-shifted]
#   --quick: collective N = 200 only; --piqs-full-shifted: also PIQS's full Liouvillians
#   (N = 54, 18) shifted off 0 (each runs into the 10-minute limit per solve)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
cargo build --release --quiet
mkdir -p target/bench
# SuperLU and ARPACK run single-threaded; one BLAS thread avoids OpenBLAS's spin-waiting on a
# shared machine (bench/piqs_compare.sh).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
"$venv/bin/python" bench/spectrum_compare.py "${CARGO_TARGET_DIR:-target}/release/dicke" \
    target/bench/spectrum_compare.json "$@"
echo "wrote target/bench/spectrum_compare.json"
