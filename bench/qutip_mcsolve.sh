#!/usr/bin/env bash
# QuTiP mcsolve vs dicke trajectories, same problem, same run (bench/qutip_mcsolve.py).
# Usage: bench/qutip_mcsolve.sh [NTRAJ] [BACKENDS, default cpu,gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
. bench/venv.sh
"$py" bench/qutip_mcsolve.py "$dicke_bin" target/bench/qutip_mcsolve.json \
  --ntraj "${1:-500}" --backends "${2:-cpu,gpu}"
