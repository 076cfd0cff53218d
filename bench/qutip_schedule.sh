#!/usr/bin/env bash
# Time-dependent protocols: QuTiP mesolve vs dicke on the same ramps, same machine, same run
# (bench/qutip_schedule.py says which). Installs QuTiP 5 from PyPI into target/bench-venv.
# Usage: bench/qutip_schedule.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
cargo build --release --quiet
mkdir -p target/bench
"$venv/bin/python" bench/qutip_schedule.py target/release/dicke target/bench/qutip_schedule.json
echo "wrote target/bench/qutip_schedule.json"
