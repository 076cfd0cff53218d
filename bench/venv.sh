# Sourced by the bench/*.sh peer comparisons (never run on its own): the shared set-up.
# - $py: the Python with QuTiP 5 from PyPI (a venv in target/bench-venv, created and filled on
#   first use), or $BENCH_PYTHON when set (a Python that already has qutip, numpy, scipy);
# - the release build of dicke, and target/bench for the outputs;
# - one BLAS thread: SuperLU and ARPACK (QuTiP's, PIQS's and scipy's solves) are single-
#   threaded, and an OpenBLAS free to spawn threads spin-waited on the shared 2 cores (the same
#   N = 30 PIQS solve took 18-39 s instead of 0.29 s). QuTiP's parallel map still uses every core.
# shellcheck shell=bash
py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
  venv=target/bench-venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "qutip>=5,<6" numpy scipy
  py="$venv/bin/python"
fi
cargo build --release --quiet
mkdir -p target/bench
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
dicke_bin="${CARGO_TARGET_DIR:-target}/release/dicke"
