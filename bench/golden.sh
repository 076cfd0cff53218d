#!/usr/bin/env bash
# Refactor guard: every shipped scenario's CPU outputs before and after a change.
#   bench/golden.sh record [DIR]         build, run scenarios/*.toml on the CPU into DIR
#                                        (default target/golden/ref)
#   bench/golden.sh check [REF] [NEW]    build, record NEW (default target/golden/new), compare
# Tolerances and what is compared: bench/golden.py's docstring.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
case "${1:-}" in
  record) python3 bench/golden.py record "${2:-target/golden/ref}" ;;
  check)
    new="${3:-target/golden/new}"
    rm -rf "$new"
    python3 bench/golden.py record "$new"
    python3 bench/golden.py compare "${2:-target/golden/ref}" "$new" ;;
  *) sed -n 2,6p "$0"; exit 2 ;;
esac
