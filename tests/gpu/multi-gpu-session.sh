#!/usr/bin/env bash
# One session on a multi-GPU host (2 or 4 NVLinked GPUs): the single-GPU
# correctness tests on GPU 0, the elements on the CUDA backend (with
# cudaupload/cudadownload), the NCCL mesh tests (NVLink/P2P and the socket
# transport), then the benchmarks.  Runs from the repository root with the
# executables of a CUDA + GStreamer build gathered flat in BIN (the plugin
# in BIN/gst):
#   source .gpu-runtime/enter.sh; bash tests/gpu/multi-gpu-session.sh BIN OUT [STEPS]
# STEPS: a comma-separated subset of single,conv,memcheck,elements,mesh,
# bench (default all but memcheck).
# Logs go to OUT, one file per step; a summary is printed last.
set -u
bin=$(cd "${1:?BIN}" && pwd)
out=${2:?OUT}
what=,${3:-single,conv,elements,mesh,bench},
want () { case $what in *,$1,*) return 0 ;; esac; return 1; }
mkdir -p "$out"
export PATH=$PATH:/usr/local/cuda/bin
export GST_PLUGIN_PATH_1_0=$bin/gst GST_REGISTRY=$out/registry.bin CK_FORK=no
export GST_DIT_WORKER=$bin/dit-worker CK_DEFAULT_TIMEOUT=240 GST_DEBUG='*:1'
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.sm \
  --format=csv > "$out/gpu.txt" 2>&1
nvidia-smi topo -m >> "$out/gpu.txt" 2>&1

run () {  # name timeout command...
  local name=$1 t=$2; shift 2
  local s=$(date +%s%N)
  timeout "$t" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  echo "rc=$rc wall=$(( ($(date +%s%N) - s) / 1000000 )) ms" >> "$out/$name.txt"
  echo "$name rc=$rc" >> "$out/summary.txt"
}

if want single; then
  run backend-ops 120 "$bin"/test-backend-ops cuda
  run cuda-ops 120 "$bin"/test-cuda-ops
  run cuda-fused 120 "$bin"/test-cuda-fused
  run cuda-graph 120 "$bin"/test-cuda-graph
  run cuda-vae 120 "$bin"/test-cuda-vae
  run cuda-umt5 200 "$bin"/test-cuda-umt5
  run cuda-model 240 "$bin"/test-cuda-model
  run memcheck-vae 200 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$bin"/test-cuda-vae
fi
if want memcheck; then
  # Every single-GPU test under compute-sanitizer memcheck, three at a time.
  for t in "backend-ops cuda" cuda-ops cuda-fused cuda-graph cuda-model \
      cuda-umt5 cuda-vae; do
    set -- $t
    run "memcheck-$1" 540 compute-sanitizer --tool memcheck --error-exitcode 9 \
      "$bin"/test-"$@" &
    while [ "$(jobs -r | wc -l)" -ge 3 ]; do sleep 1; done
  done
  wait
fi
if want conv; then
  # The VAE's heaviest convs: our kernels, then cuDNN through PyTorch (the
  # host's python3; Debian's PYTHONPATH from enter.sh would shadow it).
  DIT_TEST_CONV_BIG=1 run cuda-vae-big 200 "$bin"/test-cuda-vae
  run vae-conv-cudnn 200 env -u PYTHONPATH python3 tests/gpu/vae_conv_cudnn.py
fi
if want elements; then
  GST_DEBUG='*:1,cudabufferpool:5,cudaallocator:5,cudacontext:5,ditdecode:4' \
    run cuda-elements 120 "$bin"/test-cuda-elements
  GST_DIT_DEVICE=cuda:0 CK_VERBOSITY=verbose \
    run ditelements-cuda 180 "$bin"/test-ditelements
fi
if want mesh; then
  if [ "$ngpu" -ge 2 ]; then
    run mesh-nccl-p2p 300 "$bin"/test-mesh-nccl "$bin"/dit-worker p2p
    run mesh-nccl-socket 300 "$bin"/test-mesh-nccl "$bin"/dit-worker socket
  fi
fi

if want bench; then
  b=("$bin"/dit-bench --preset wan-14b --synthetic --size 576x320 --json)
  run bench-engine 200 "${b[@]}" --chunks 10 --warmup 2
  run bench-text 120 "$bin"/dit-bench --text-only --text-model umt5-xxl \
    --device cuda --chunks 20 --warmup 3 --json
  run bench-mesh-tp1 300 "${b[@]}" --chunks 10 --warmup 2 --device cuda:0 \
    --mesh-devices 1
  if [ "$ngpu" -ge 4 ]; then
    run bench-mesh-tp2 300 "${b[@]}" --chunks 10 --warmup 2 --device cuda:0 \
      --mesh-devices 1,2
    run bench-mesh-tp4 300 "${b[@]}" --chunks 10 --warmup 2 --device cuda:0 \
      --mesh-devices 0,1,2,3
  elif [ "$ngpu" -ge 2 ]; then
    run bench-mesh-tp2 300 "${b[@]}" --chunks 10 --warmup 2 --device cuda:0 \
      --mesh-devices 0,1
  fi
  run bench-pipeline 300 "${b[@]}" --pipeline --plugin-path "$bin"/gst \
    --device cuda:0 --chunks 10 --warmup 2
  if [ "$ngpu" -ge 3 ]; then
    run bench-pipeline-mesh-tp2 300 "${b[@]}" --pipeline --plugin-path \
      "$bin"/gst --device cuda:0 --mesh-devices 1,2 --chunks 10 --warmup 2
  else
    run bench-pipeline-mesh-tp1 300 "${b[@]}" --pipeline --plugin-path \
      "$bin"/gst --device cuda:0 --mesh-devices 1 --chunks 10 --warmup 2
    run bench-pipeline-mesh-tp2 300 "${b[@]}" --pipeline --plugin-path \
      "$bin"/gst --device cuda:0 --mesh-devices 0,1 --chunks 10 --warmup 2
  fi
fi

echo "=== gpu"; cat "$out/gpu.txt"
echo "=== summary"; cat "$out/summary.txt"
for f in "$out"/*.txt; do
  case $(basename "$f") in gpu.txt|summary.txt) continue ;; esac
  echo "=== $(basename "$f" .txt)"
  case $(basename "$f") in
    bench-*) tail -c 1800 "$f" ;;
    cuda-elements*) grep -E "cudabufferpool|cudaallocator|cudacontext|Checks|:F:|:E:|rc=" "$f" | tail -25 ;;
    memcheck-*) grep -E "ERROR SUMMARY|Invalid|rc=" "$f" | head -6 ;;
    *) grep -vE " ok$| OK$|^ok |: ok|Passed" "$f" | tail -25 ;;
  esac
done
