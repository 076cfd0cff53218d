#!/usr/bin/env bash
# Block steady state (single-atom + collective decay, seed 000) vs QuTiP's PIQS on the same
# model, same machine, same run. Installs QuTiP 5 (PIQS is qutip.piqs) from PyPI into
# target/bench-venv. Usage: bench/piqs_compare.sh [N ...]   (default 18 30 54; dicke alone at 100)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/venv.sh
"$py" bench/piqs_compare.py "$dicke_bin" target/bench/piqs_compare.json "$@"
echo "wrote target/bench/piqs_compare.json"
