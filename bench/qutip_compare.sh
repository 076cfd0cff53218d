#!/usr/bin/env bash
# QuTiP vs dicke on the same problems, same machine, same run. Installs QuTiP 5 from PyPI
# into target/bench-venv. Usage: bench/qutip_compare.sh [N]   (default N = 400)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-400}
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
cargo build --release --quiet
mkdir -p target/bench
"$venv/bin/python" bench/qutip_compare.py target/release/dicke "target/bench/qutip_compare_N$N.json" --n "$N"
echo "wrote target/bench/qutip_compare_N$N.json"
