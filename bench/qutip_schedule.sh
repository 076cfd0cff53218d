#!/usr/bin/env bash
# Time-dependent protocols: QuTiP mesolve vs dicke on the same ramps, same machine, same run
# (bench/qutip_schedule.py says which). Installs QuTiP 5 from PyPI into target/bench-venv.
# Usage: bench/qutip_schedule.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/venv.sh
"$py" bench/qutip_schedule.py "$dicke_bin" target/bench/qutip_schedule.json
echo "wrote target/bench/qutip_schedule.json"
