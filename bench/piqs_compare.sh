#!/usr/bin/env bash
# Block steady state (single-atom + collective decay, seed 000) vs QuTiP's PIQS on the same
# model, same machine, same run. Installs QuTiP 5 (PIQS is qutip.piqs) from PyPI into
# target/bench-venv. Usage: bench/piqs_compare.sh [N ...]   (default 18 30 54; dicke alone at 100)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
cargo build --release --quiet
mkdir -p target/bench
# SuperLU (scipy's spsolve, PIQS's solve) is single-threaded; with OpenBLAS free to spawn
# threads, its spin-waiting made the same N = 30 solve take 18-39 s instead of 0.29 s while
# other builds shared the 2 cores. One BLAS thread: the uncontended speed, robustly.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
"$venv/bin/python" bench/piqs_compare.py target/release/dicke target/bench/piqs_compare.json "$@"
echo "wrote target/bench/piqs_compare.json"
