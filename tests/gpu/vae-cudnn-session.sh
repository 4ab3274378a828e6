#!/usr/bin/env bash
# One GPU: the VAE conv paths (cuDNN, own fast, own generic) against the CPU
# conv and timed, memcheck with cuDNN loaded, the element tests, then the
# 14B engine with cuDNN convs and with DIT_VAE_CONV=own, and the pipeline
# with device latents.  BIN as for multi-gpu-session.sh:
#   source .gpu-runtime/enter.sh; bash tests/gpu/vae-cudnn-session.sh BIN OUT
set -u
B=$(cd "${1:?BIN}" && pwd); O=${2:?OUT}
mkdir -p "$O"
export GST_PLUGIN_PATH_1_0=$B/gst GST_REGISTRY=$O/registry.bin CK_FORK=no GST_DEBUG='*:1'
bench=("$B"/dit-bench --preset wan-14b --synthetic --size 576x320 --json --chunks 10 --warmup 2)
run () { local n=$1 t=$2; shift 2; timeout "$t" "$@" > "$O/$n.txt" 2>&1; echo "$n rc=$?" | tee -a "$O/summary.txt"; }
DIT_TEST_CONV_BIG=1 run vae-big 200 "$B"/test-cuda-vae
run memcheck-vae 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$B"/test-cuda-vae
run cuda-elements 120 "$B"/test-cuda-elements
GST_DIT_DEVICE=cuda:0 run ditelements-cuda 180 "$B"/test-ditelements
run bench-engine-cudnn 200 "${bench[@]}"
DIT_VAE_CONV=own run bench-engine-own 200 "${bench[@]}"
run bench-pipeline-cudnn 200 "${bench[@]}" --pipeline --plugin-path "$B"/gst --device cuda:0
DIT_VAE_CONV=own run bench-pipeline-own 200 "${bench[@]}" --pipeline --plugin-path "$B"/gst --device cuda:0
grep -h "cudnn" "$O/vae-big.txt"
