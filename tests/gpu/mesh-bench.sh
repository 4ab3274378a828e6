#!/usr/bin/env bash
# Mesh benchmarks on a multi-GPU host: engine and GStreamer pipeline for
# each mesh-devices list, Stage 0 on cuda:0.  Run from the repository root
# with the executables of a CUDA + GStreamer build gathered flat in BIN
# (the plugin in BIN/gst):
#   source .gpu-runtime/enter.sh; bash tests/gpu/mesh-bench.sh BIN OUT 1,2 0,1,2,3 1
# A list whose first device is 0 (shared with Stage 0) runs a second time
# with mesh rank 0 co-located in Stage 0's process (--mesh-colocate on;
# files *-colocated.txt), the layout that keeps NCCL for the world traffic.
set -u
B=$(cd "${1:?BIN}" && pwd); O=${2:?OUT}; shift 2
mkdir -p "$O"
export GST_PLUGIN_PATH_1_0=$B/gst GST_REGISTRY=$O/registry.bin GST_DEBUG='*:1'
export GST_DIT_WORKER=$B/dit-worker
b=("$B"/dit-bench --preset wan-14b --synthetic --size 576x320 --json --chunks 10
   --warmup 2 --device cuda:0 --worker-path "$B"/dit-worker)
for m in "$@"; do
  n=${m//,/-}
  timeout 200 "${b[@]}" --mesh-devices "$m" > "$O/engine-$n.txt" 2>&1
  echo "engine $m rc=$?"; tail -c 1800 "$O/engine-$n.txt"; echo
  timeout 200 "${b[@]}" --mesh-devices "$m" --pipeline --plugin-path "$B"/gst \
    > "$O/pipe-$n.txt" 2>&1
  echo "pipeline $m rc=$?"; tail -c 700 "$O/pipe-$n.txt"; echo
  if [ "${m%%,*}" = 0 ]; then
    timeout 200 "${b[@]}" --mesh-devices "$m" --mesh-colocate on \
      > "$O/engine-$n-colocated.txt" 2>&1
    echo "engine $m colocated rc=$?"; tail -c 1800 "$O/engine-$n-colocated.txt"; echo
    timeout 200 "${b[@]}" --mesh-devices "$m" --mesh-colocate on --pipeline \
      --plugin-path "$B"/gst > "$O/pipe-$n-colocated.txt" 2>&1
    echo "pipeline $m colocated rc=$?"; tail -c 700 "$O/pipe-$n-colocated.txt"; echo
  fi
done
