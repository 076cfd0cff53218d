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
. bench/venv.sh
"$py" bench/spectrum_compare.py "$dicke_bin" \
    target/bench/spectrum_compare.json "$@"
echo "wrote target/bench/spectrum_compare.json"
