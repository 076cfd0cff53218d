#!/usr/bin/env bash
# QuTiP mcsolve vs dicke trajectories (see bench/qutip_mcsolve.py). Usage: bench/qutip_mcsolve.sh [NTRAJ] [cpu|gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
cargo build --release --quiet
mkdir -p target/bench
"$venv/bin/python" bench/qutip_mcsolve.py target/release/dicke "target/bench/qutip_mcsolve_${2:-cpu}.json" --ntraj "${1:-500}" --backend "${2:-cpu}"
