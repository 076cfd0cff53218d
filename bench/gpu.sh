#!/usr/bin/env bash
# GPU checks and benchmarks in one call on a lent device machine (issue 14 item 7).
#
# The device machine has no Rust toolchain and reaches no registry, so the binaries are built
# here and travel with the call:
#   bench/gpu.sh pack     (here) release build + the GPU test binaries + the cumulant example,
#                         stripped and packed into .gpu/bundle.tar.xz (~40 MB; .gpu/ is ignored),
#                         and the Vulkan loader packages into .gl/ (device README)
#   bench/gpu.sh run      (there) unpack, run the GPU tests with DICKE_REQUIRE_GPU=1, then the
#                         benchmarks of bench/gpu.py; the table goes to $OUT/gpu_bench.md
#                         (target/bench/gpu_bench.md without $OUT) and is printed last.
# One device call (the `device` tool's run):
#   command "bash bench/gpu.sh run", carry [".gpu", ".gl"], timeout_s 480
# GPU_BENCH_QUICK=1 shrinks every size and GPU_BENCH_SKIP_TESTS=1 runs one test file only (a dry
# run here on lavapipe: it proves the script, never a speed figure).
set -euo pipefail
cd "$(dirname "$0")/.."
# Whole test files that exercise the GPU, and mixed files whose GPU tests are named gpu_*.
GPU_ONLY="gpu_validation gpu_master_batch gpu_cumulant_batch gpu_blocks_batch gpu_rng"
GPU_MIXED="scan_evolve trajectory trajectory_blocks trajectory_fidelity switching resume_sweep_scan"
GPU_TESTS="$GPU_ONLY $GPU_MIXED"

pack() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --release --quiet --bins --example cumulant_batch_bench
  local list
  list=$(cargo test --release --no-run --message-format=json $(printf -- '--test %s ' $GPU_TESTS) 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')
  rm -rf .gpu && mkdir -p .gpu/stage/tests .gpu/stage/bin
  strip -o .gpu/stage/bin/dicke "$CARGO_TARGET_DIR/release/dicke"
  strip -o .gpu/stage/bin/cumulant_batch_bench "$CARGO_TARGET_DIR/release/examples/cumulant_batch_bench"
  while read -r name exe; do strip -o ".gpu/stage/tests/$name" "$exe"; done <<<"$list"
  # Tests run the CLI through env!("CARGO_BIN_EXE_dicke"): an absolute path of this machine,
  # recreated there as a link to the packed binary.
  readlink -f "$CARGO_TARGET_DIR/release/dicke" >.gpu/stage/bin_path
  tar -C .gpu/stage -cJf .gpu/bundle.tar.xz . && rm -rf .gpu/stage
  mkdir -p .gl /tmp/amd64/partial
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download -qq libvulkan1)
  du -sh .gpu .gl
}

run() {
  out=${OUT:-target/bench}
  mkdir -p "$out" .gpu/x
  tar -C .gpu/x -xJf .gpu/bundle.tar.xz
  if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  local bin_path
  bin_path=$(cat .gpu/x/bin_path)
  [ -e "$bin_path" ] || { mkdir -p "$(dirname "$bin_path")" && ln -s "$PWD/.gpu/x/bin/dicke" "$bin_path"; }
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} DICKE_REQUIRE_GPU=1 PYTHONUNBUFFERED=1
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true) | tee "$out/device.txt"
  : >"$out/gpu_tests.log"
  local failed=0
  [ "${GPU_BENCH_SKIP_TESTS:-0}" = 1 ] && GPU_TESTS=gpu_rng
  for t in $GPU_TESTS; do
    [ -x ".gpu/x/tests/$t" ] || { echo "missing test binary $t" | tee -a "$out/gpu_tests.log"; failed=1; continue; }
    filter=gpu
    case " $GPU_ONLY " in *" $t "*) filter= ;; esac
    if ! timeout 240 ".gpu/x/tests/$t" $filter >>"$out/gpu_tests.log" 2>&1; then
      echo "GPU TEST FAILED: $t" | tee -a "$out/gpu_tests.log"; failed=1
    fi
  done
  grep -h "^test result" "$out/gpu_tests.log" | awk '{p+=$4; f+=$6} END {print "gpu tests: " p " passed, " f " failed"}' |
    tee "$out/gpu_tests_summary.txt"
  python3 bench/gpu.py .gpu/x/bin "$out"
  exit $failed
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) sed -n 2,16p "$0"; exit 2 ;;
esac
