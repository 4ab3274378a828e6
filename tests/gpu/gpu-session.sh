#!/usr/bin/env bash
# One GPU-host session: every single-GPU test, the figures of
# docs/performance.md with their PyTorch peer, and the demo model's
# training job, each step under one deadline, the results packed so that
# they come back whole.
#
# On the workstation, from a CUDA + GStreamer build:
#   bash tests/gpu/gpu-session.sh pack BUILD FILE.tar.xz
# packs the executables the session runs (tests, tools, the plugin), with
# their paths relative to the repository root, so that a build directory
# of several hundred MB travels as about 4 MB: every executable links the
# same CUDA kernels (about 10 MB of each one's 11), and a compression
# window larger than one executable stores them once.
#
# On the GPU host, from the repository root:
#   source .gpu-runtime/enter.sh
#   bash tests/gpu/gpu-session.sh run BUILD|FILE.tar.xz OUT [MODE|STEP...]
# MODE is one of
#   tests    every single-GPU test (the default)
#   figures  the benchmarks, alone on the GPU
#   train    the demo model's job (tools/train/run-gpu.sh), alone
#   all      the demo job in the background beside the tests, then the
#            figures once it is done
# or a list of step names (see `steps` below).  BUDGET (seconds, default
# 570) bounds the whole session: a step gets at most what is left and is
# skipped when under 5 s remain.  DEMO_WALL (default 400) is the demo
# job's wall time.  OUT receives summary.txt (one line per step: exit
# status, wall time) and the logs, the benchmark JSON and the demo model's
# files packed in session.tar.xz, split into parts of at most 8 MB
# (session.tar.xz.part-aa, -ab, ...; `cat OUT/session.tar.xz.part-* | tar
# -xJ` unpacks them), so that a few files carry everything back.
set -u

steps_tests="backend-ops cuda-model cuda-elements ditelements-cuda cuda-lora
  fp8-selfcheck fp8-engines-wgmma cuda-fp8 cuda-stage0 mesh-colocate mesh-sp
  cuda-vae cuda-taehv cuda-ops attn-schedule cuda-fused cuda-graph cuda-umt5
  memcheck-backend-ops racecheck-cuda-ops"
steps_figures="fp8 bf16 torch stage0 colocate-off colocate-on lora-merge
  lora-base lora-live32 lora-live64 lora-live128 pipe-bf16 pipe-fp8 fp8-832"

pack () {   # pack BUILD FILE (BUILD relative to the repository root)
  local build=${1%/} file=$2
  cd "$(dirname "$0")/../.." || return 1
  local list
  list=$(find "$build/tests/gpu" -maxdepth 1 -type f -perm -u+x
    ls -d "$build/tests/unit/test-backend-ops" "$build/tests/check/test-cuda-elements" \
      "$build/tests/check/test-ditelements" "$build/tools/dit-bench" \
      "$build/tools/dit-worker" "$build/gst/libgstdit.so")
  # shellcheck disable=SC2086
  tar -cf - $list | xz -T1 -6 --lzma2=preset=6,dict=256MiB > "$file" || return 1
  echo "packed $(echo "$list" | wc -l) files into $file ($(du -h "$file" | cut -f1))"
}

if [ "${1:-}" = pack ]; then
  pack "${2:?BUILD}" "$(realpath -m "${3:?FILE}")"
  exit
fi
[ "${1:-}" = run ] || { echo "usage: gpu-session.sh pack BUILD FILE | run BUILD|FILE OUT [MODE|STEP...]" >&2; exit 2; }
src=${2:?BUILD or FILE}; O=$(realpath -m "${3:?OUT}"); shift 3
cd "$(dirname "$0")/../.." || exit 2
B=$src
if [ -f "$src" ]; then       # a packed build: its paths are relative to the root
  B=$(tar -tJf "$src" | head -1 | cut -d/ -f1)
  [ -x "$B/tools/dit-bench" ] || tar -xJf "$src"
fi
B=$(realpath "$B")
W=$B/tools/dit-worker
mkdir -p "$O/logs"
L=$O/logs
budget=${BUDGET:-570}
t0=$(date +%s)
deadline=$((t0 + budget))
export PATH=$PATH:/usr/local/cuda/bin

left () { echo $((deadline - $(date +%s))); }
note () { echo "$*" | tee -a "$O/summary.txt"; }
run () {   # run NAME LIMIT CMD...: under the deadline, output to logs/NAME.txt
  local name=$1 limit=$2
  shift 2
  local l
  l=$(left)
  [ "$limit" -gt "$l" ] && limit=$l
  if [ "$limit" -le 5 ]; then
    note "$name skipped (no time left)"
    return
  fi
  local s
  s=$(date +%s%N)
  timeout "$limit" "$@" > "$L/$name.txt" 2>&1
  local rc=$?
  note "$name rc=$rc wall=$((($(date +%s%N) - s) / 1000000)) ms t=$(($(date +%s) - t0)) s"
}
# the element tests' environment (tests/check/meson.build)
elements () {   # elements NAME CMD...
  run "$1" 300 env GST_PLUGIN_PATH_1_0="$B/gst" GST_DIT_WORKER="$W" \
    GST_REGISTRY="$L/registry-$1.bin" CK_DEFAULT_TIMEOUT=240 CK_FORK=no \
    GST_DEBUG='*:1' "${@:2}"
}
bench=("$B"/tools/dit-bench --preset wan-14b --synthetic --size 576x320
  --device cuda --json)

step () {
  case $1 in
    backend-ops) run "$1" 200 "$B"/tests/unit/test-backend-ops cuda ;;
    cuda-model) run "$1" 400 "$B"/tests/gpu/test-cuda-model ;;
    cuda-elements) elements "$1" "$B"/tests/check/test-cuda-elements ;;
    ditelements-cuda) elements "$1" env GST_DIT_DEVICE=cuda:0 "$B"/tests/check/test-ditelements ;;
    cuda-lora) run "$1" 400 "$B"/tests/gpu/test-cuda-lora ;;
    fp8-selfcheck) run "$1" 90 "$B"/tests/gpu/dit-fp8-bench selfcheck ;;
    fp8-engines-wgmma) run "$1" 150 env DIT_FP8_GEMM=wgmma "$B"/tests/gpu/test-cuda-fp8 engines ;;
    cuda-fp8) run "$1" 400 "$B"/tests/gpu/test-cuda-fp8 refusal,engines,attention,slice ;;
    cuda-stage0) run "$1" 250 "$B"/tests/gpu/test-cuda-stage0 ;;
    mesh-colocate) run "$1" 250 "$B"/tests/gpu/test-mesh-colocate "$W" ;;
    mesh-sp) run "$1" 250 "$B"/tests/gpu/test-mesh-sp ;;
    cuda-vae) run "$1" 300 "$B"/tests/gpu/test-cuda-vae ;;
    cuda-taehv) run "$1" 200 "$B"/tests/gpu/test-cuda-taehv ;;
    cuda-ops) run "$1" 200 "$B"/tests/gpu/test-cuda-ops ;;
    attn-schedule) run "$1" 100 "$B"/tests/gpu/test-attn-schedule ;;
    cuda-fused) run "$1" 200 "$B"/tests/gpu/test-cuda-fused ;;
    cuda-graph) run "$1" 200 "$B"/tests/gpu/test-cuda-graph ;;
    cuda-umt5) run "$1" 200 "$B"/tests/gpu/test-cuda-umt5 ;;
    memcheck-backend-ops) run "$1" 300 compute-sanitizer --tool memcheck \
        --error-exitcode 9 "$B"/tests/unit/test-backend-ops cuda ;;
    racecheck-cuda-ops) run "$1" 300 compute-sanitizer --tool racecheck \
        --error-exitcode 9 "$B"/tests/gpu/test-cuda-ops --attention-only ;;
    fp8) run "$1" 200 "${bench[@]}" --dtype fp8 --chunks 6 --warmup 2 --breakdown ;;
    bf16) run "$1" 200 "${bench[@]}" --dtype bf16 --chunks 6 --warmup 2 --breakdown ;;
    fp8-832) run "$1" 200 "$B"/tools/dit-bench --preset wan-14b --synthetic \
        --size 832x480 --device cuda --json --dtype fp8 --chunks 4 --warmup 1 ;;
    torch) run "$1" 330 python3 tests/gpu/torch_forward_bench.py --json ;;
    stage0) run "$1" 120 "$B"/tests/gpu/stage0-bench --size 576x320 --iters 20 \
        --json "$L/stage0.json" ;;
    colocate-off|colocate-on)
      run "$1" 200 "${bench[@]}" --chunks 6 --warmup 2 --worker-path "$W" \
        --mesh-devices 0 --mesh-colocate "${1#colocate-}" ;;
    lora-merge) run "$1" 200 "$B"/tests/gpu/lora-bench --preset wan-14b \
        --rank 64 --repeats 3 --dtype bf16 --json ;;
    lora-base) run "$1" 150 "${bench[@]}" --dtype bf16 --chunks 4 --warmup 1 --vae none ;;
    lora-live*) run "$1" 150 "${bench[@]}" --dtype bf16 --chunks 4 --warmup 1 \
        --vae none --lora-rank "${1#lora-live}" --lora-mode live ;;
    pipe-bf16|pipe-fp8)
      run "$1" 200 env GST_REGISTRY="$L/registry-pipe.bin" "${bench[@]}" \
        --dtype "${1#pipe-}" --chunks 6 --warmup 2 --pipeline \
        --plugin-path "$B"/gst --decoder taew2_1 ;;
    train) run "$1" "${DEMO_WALL:-400}" bash tools/train/run-gpu.sh "$L/demo.log" \
        "$L/demo" "${DEMO_WALL:-400}" ;;
    *) note "$1: no such step" ;;
  esac
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
  --format=csv > "$L/gpu.txt" 2>&1
note "gpu: $(tail -n 1 "$L/gpu.txt")"
mode=${1:-tests}
case $mode in
  tests) for s in $steps_tests; do step "$s"; done ;;
  figures) for s in $steps_figures; do step "$s"; done ;;
  train) step train ;;
  all)
    DEMO_WALL=${DEMO_WALL:-400} step train &
    demo=$!
    for s in $steps_tests; do step "$s"; done
    wait "$demo"
    for s in $steps_figures; do step "$s"; done
    ;;
  *) for s in "$@"; do step "$s"; done ;;
esac

(cd "$L" && tar -cJf "$O/session.tar.xz" --exclude='registry-*.bin' .)
(cd "$O" && split -b 8M -a 2 session.tar.xz session.tar.xz.part- && rm session.tar.xz)
rm -rf "$L"
echo "=== summary"
cat "$O/summary.txt"
