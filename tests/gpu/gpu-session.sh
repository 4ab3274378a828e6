#!/usr/bin/env bash
# One GPU-host session for the CUDA backend: correctness against the CPU
# backend, the f64-oracle checks, the attention/GEMM benchmark and
# compute-sanitizer (memcheck on both test programs, racecheck on the
# attention kernels).  Run from the repository root with a build directory
# configured with -Dcuda=enabled:
#   source .gpu-runtime/enter.sh; bash tests/gpu/gpu-session.sh build-gpu OUTDIR
# Full logs go to OUTDIR; a short summary is printed last.
set -u
build=${1:-build-gpu}
out=${2:-/tmp/gpu-session}
mkdir -p "$out"
export PATH=$PATH:/usr/local/cuda/bin
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
  --format=csv > "$out/gpu.txt" 2>&1
"$build"/tests/unit/test-backend-ops cuda > "$out/backend-ops.txt" 2>&1
echo "rc=$?" >> "$out/backend-ops.txt"
"$build"/tests/gpu/test-cuda-ops > "$out/cuda-ops.txt" 2>&1
echo "rc=$?" >> "$out/cuda-ops.txt"
"$build"/tests/gpu/test-cuda-model > "$out/cuda-model.txt" 2>&1
echo "rc=$?" >> "$out/cuda-model.txt"
"$build"/tests/gpu/test-cuda-vae > "$out/cuda-vae.txt" 2>&1
echo "rc=$?" >> "$out/cuda-vae.txt"
"$build"/tests/gpu/dit-attn-bench 30 > "$out/bench.txt" 2>&1
echo "rc=$?" >> "$out/bench.txt"
{
  compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$build"/tests/unit/test-backend-ops cuda > "$out/memcheck-backend-ops.txt" 2>&1
  echo "memcheck test-backend-ops rc=$?"
  compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$build"/tests/gpu/test-cuda-ops > "$out/memcheck-cuda-ops.txt" 2>&1
  echo "memcheck test-cuda-ops rc=$?"
  compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$build"/tests/gpu/test-cuda-ops > "$out/racecheck-cuda-ops.txt" 2>&1
  echo "racecheck test-cuda-ops rc=$?"
} > "$out/sanitizer.txt" 2>&1

echo "=== gpu"; cat "$out/gpu.txt"
echo "=== test-backend-ops cuda (non-OK lines)"
grep -v " OK$" "$out/backend-ops.txt"
echo "=== test-cuda-ops (non-ok lines)"; grep -v " ok$" "$out/cuda-ops.txt"
echo "=== test-cuda-model"; cat "$out/cuda-model.txt"
echo "=== test-cuda-vae"; cat "$out/cuda-vae.txt"
echo "=== bench"; cat "$out/bench.txt"
echo "=== sanitizers"; cat "$out/sanitizer.txt"
for f in memcheck-backend-ops memcheck-cuda-ops racecheck-cuda-ops; do
  echo "--- $f"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Error|Hazard" "$out/$f.txt" | head -8
done
