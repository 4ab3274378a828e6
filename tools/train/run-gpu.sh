#!/bin/bash
# Train the demo model on one GPU within a fixed wall-clock budget: the
# recipe of docs/demo-model.md as one job.
#
#   bash tools/train/run-gpu.sh LOGFILE OUTDIR [WALL_SECONDS]
#
# Run from a repository root (check_models.py finds the float64 oracles in
# tests/reference).  As a GPU packet it sits beside a copy of tools/train
# in train/.  The whole job ends within WALL_SECONDS (default 410): every
# phase runs under `timeout`, its limit cut to what is left, and training
# gets what the phases after it do not need.
#   1. environment: the GPU, torch and its CUDA
#   2. the trainable modules on the GPU in float32 and bf16 autocast against
#      the float64 oracles (check_models.py --device cuda)
#   3. training (train.py --fit-time, at most 330 s: VAE 40 %, then DiT +
#      umT5 with the rollout fine-tune in its last 30 % of steps; step
#      counts fitted to the time after a few timed steps, hard wall-clock
#      stops inside the loops)
#   4. export check: the written files reloaded strictly and evaluated
#      (eval_weights.py: VAE PSNR, colour / motion / presence, drift)
# OUTDIR gets demo-dit/-vae/-umt5.safetensors (about 14 MB together),
# train-log.json (the curves and evaluations) and eval.png (evaluation
# clips, one row per prompt); all output goes into LOGFILE; a short summary
# is printed last.  DIT_TRAIN_DEVICE (default cuda), DIT_TRAIN_ARGS (extra
# train.py arguments) and DIT_EVAL_ARGS (extra eval_weights.py arguments)
# exist to dry-run the job on a CPU.
set -u
log=${1:?usage: run-gpu.sh LOGFILE OUTDIR [WALL_SECONDS]}
out=${2:?usage: run-gpu.sh LOGFILE OUTDIR [WALL_SECONDS]}
wall=${3:-410}
here=$(cd "$(dirname "$0")" && pwd)
train=$here
[ -f "$here/train/train.py" ] && train=$here/train
mkdir -p "$out" "$(dirname "$log")"
out=$(cd "$out" && pwd)
py=${PYTHON:-python3}
device=${DIT_TRAIN_DEVICE:-cuda}
t0=$(date +%s)
deadline=$((t0 + wall))
status=ok

say () { echo "$*" >> "$log"; }
left () { echo $((deadline - $(date +%s))); }
step () {            # step NAME LIMIT CMD...: run under timeout, log, remember failures
  local name=$1 limit=$2
  shift 2
  [ "$limit" -gt "$(left)" ] && limit=$(left)
  if [ "$limit" -le 0 ]; then
    say "== $name: skipped, no time left"
    status="$name skipped (no time left)"
    return 1
  fi
  say "== $name ($(($(date +%s) - t0)) s, limit $limit s)"
  timeout "$limit" "$@" >> "$log" 2>&1
  local rc=$?
  say "== $name: exit $rc ($(($(date +%s) - t0)) s)"
  [ $rc -eq 0 ] || status="$name failed (exit $rc)"
  return $rc
}

say "demo model GPU job: $(date -u), wall $wall s, train code $train, out $out"
step "environment" 20 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
  $py -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available())'"
# a failure here is reported (status, summary) but training still runs: the
# log then says which module and precision disagreed
step "modules on the $device (float32, TF32, bf16 autocast) vs float64 oracles" 60 \
  $py "$train/check_models.py" --device "$device"

# training: what is left less the export check (about 20 s on a GPU) and
# train.py's start-up and evaluation beyond its 25 s reserve (about 10 s),
# with 30 s to spare; the weights are written before its evaluation, so a
# late stop loses only the evaluation.  The VAE gets 40 % of the time: the
# video-to-video check needs its PSNR, the DiT learns the world's colours
# and motions in fewer steps.
budget=$(($(left) - 60))
[ "$budget" -gt 330 ] && budget=330
say "training budget: $budget s"
# shellcheck disable=SC2086
step "training" $((budget + 40)) $py "$train/train.py" --out "$out" --device "$device" \
  --seed 20 --time-limit "$budget" --vae-share 0.4 --fit-time --sheet "$out/eval.png" \
  ${DIT_TRAIN_ARGS:-}
if [ -f "$out/demo-dit.safetensors" ]; then
  size=$(cat "$out"/demo-*.safetensors | wc -c)
  say "weights: $size bytes"
  [ "$size" -le 20971520 ] || status="the weights are $size bytes (> 20 MB)"
  # shellcheck disable=SC2086
  step "export check (the files reloaded and evaluated)" 45 \
    $py "$train/eval_weights.py" "$out" --device "$device" ${DIT_EVAL_ARGS:-}
else
  status="no weights written ($status)"
fi

# summary (stdout)
echo "demo model GPU job: $status, $(($(date +%s) - t0)) s"
grep -E "^check_models: |^== .*: exit" "$log" | sed 's/^/  /'
grep -E "fit the time limit|limit reached|vae eval:|dit eval:|rollout fine-tune|done:" "$log" \
  | cut -c1-240 | sed 's/^/  /'
grep -E "^eval_weights: " "$log" | cut -c1-400 | sed 's/^/  /'
ls -l "$out" | sed 's/^/  /'
[ "$status" = ok ]
