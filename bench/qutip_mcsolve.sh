#!/usr/bin/env bash
# QuTiP mcsolve vs dicke trajectories, same problem, same run (bench/qutip_mcsolve.py).
# Usage: bench/qutip_mcsolve.sh [NTRAJ] [BACKENDS, default cpu,gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
cargo build --release --quiet
mkdir -p target/bench
"$venv/bin/python" bench/qutip_mcsolve.py target/release/dicke target/bench/qutip_mcsolve.json \
  --ntraj "${1:-500}" --backends "${2:-cpu,gpu}"
