#!/usr/bin/env bash
# One GPU-host session for the engine-level CUDA work: the generator and VAE
# tests against the CPU backend, the op regressions, dit-bench at both
# sizes and memcheck on the VAE/pixel test.  Run from the repository root:
#   source .gpu-runtime/enter.sh; bash tests/gpu/bench-session.sh build-gpu OUTDIR
# Full logs go to OUTDIR; a summary is printed last.
set -u
build=${1:-build-gpu}
out=${2:-/tmp/bench-session}
mkdir -p "$out"
export PATH=$PATH:/usr/local/cuda/bin
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
  --format=csv > "$out/gpu.txt" 2>&1
run () {  # name timeout command...
  local name=$1 t=$2; shift 2
  local s=$(date +%s%N)
  timeout "$t" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  echo "rc=$rc wall=$(( ($(date +%s%N) - s) / 1000000 )) ms" >> "$out/$name.txt"
}
run cuda-model 240 "$build"/tests/gpu/test-cuda-model
run cuda-vae 200 "$build"/tests/gpu/test-cuda-vae
run backend-ops 120 "$build"/tests/unit/test-backend-ops cuda
run cuda-ops 120 "$build"/tests/gpu/test-cuda-ops
run bench-576x320 200 "$build"/tools/dit-bench --preset wan-14b --synthetic \
  --size 576x320 --chunks 20 --warmup 3 --json
run bench-832x480 200 "$build"/tools/dit-bench --preset wan-14b --synthetic \
  --size 832x480 --chunks 20 --warmup 2 --json
if [ "${MEMCHECK:-1}" = 1 ]; then
  run memcheck-vae 200 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$build"/tests/gpu/test-cuda-vae
fi

echo "=== gpu"; cat "$out/gpu.txt"
for f in cuda-model cuda-vae; do
  echo "=== $f"; cat "$out/$f.txt" | tail -40
done
echo "=== backend-ops (non-OK)"; grep -v " OK$" "$out/backend-ops.txt" | tail -15
echo "=== cuda-ops (non-ok)"; grep -v " ok$" "$out/cuda-ops.txt" | tail -15
for f in bench-576x320 bench-832x480; do echo "=== $f"; cat "$out/$f.txt"; done
if [ -f "$out/memcheck-vae.txt" ]; then
  echo "=== memcheck-vae"
  grep -E "ERROR SUMMARY|Invalid|rc=" "$out/memcheck-vae.txt" | head -8
fi
