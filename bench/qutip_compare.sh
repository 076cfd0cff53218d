#!/usr/bin/env bash
# QuTiP vs dicke on the same problems, same machine, same run. Installs QuTiP 5 from PyPI
# into target/bench-venv. Usage: bench/qutip_compare.sh [N]   (default N = 400)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-400}
. bench/venv.sh
"$py" bench/qutip_compare.py "$dicke_bin" "target/bench/qutip_compare_N$N.json" --n "$N"
echo "wrote target/bench/qutip_compare_N$N.json"
