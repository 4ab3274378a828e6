#!/bin/bash
# Train the demo model on one GPU within a fixed wall-clock budget: the
# recipe of docs/demo-model.md as one job.
#
#   bash tools/train/run-gpu.sh LOGFILE OUTDIR [WALL_SECONDS [PART]]
#
# PART: all (default: the whole recipe in one job), vae (the VAE alone) or
# from DIR (the DiT and umT5, with the VAE's decoder fine-tuned beside
# them, starting from DIR's files).  The recipe in two device calls, each
# with the GPU to itself:
#   run-gpu.sh LOG1 OUT1 560 vae; run-gpu.sh LOG2 OUT2 560 from OUT1
#
# Run from a repository root (check_models.py finds the float64 oracles in
# tests/reference).  As a GPU packet it sits beside a copy of tools/train
# in train/.  The whole job ends within WALL_SECONDS (default 560): every
# phase runs under `timeout`, its limit cut to what is left, and training
# gets what the phases after it do not need.
#   1. environment: the GPU, torch and its CUDA
#   2. the trainable modules on the GPU in float32 and bf16 autocast against
#      the float64 oracles (check_models.py --device cuda)
#   3. training (train.py --fit-time, the phases of PART, below: the VAE,
#      then its decoder beside the DiT + umT5 with the rollout fine-tune
#      in its last 30 % of steps; step counts
#      fitted to the time after a few timed steps, hard wall-clock stops
#      inside the loops)
#   4. export check: the written files reloaded strictly and evaluated
#      (eval_weights.py: VAE PSNR, colour / motion / presence, drift)
# OUTDIR gets demo-dit/-vae/-umt5.safetensors (about 17 MB together),
# eval.json and eval.png (the files' evaluation; the clips one row per
# prompt) and a/, b1/, b2/ (each run's weights and train-log.json: the
# curves, fitted step counts and evaluations); all output goes into
# LOGFILE (B1's after B2's); a short summary
# is printed last.  DIT_TRAIN_DEVICE (default cuda), DIT_TRAIN_ARGS (extra
# train.py arguments) and DIT_EVAL_ARGS (extra eval_weights.py arguments)
# exist to dry-run the job on a CPU.
set -u
log=${1:?usage: run-gpu.sh LOGFILE OUTDIR [WALL_SECONDS [all | vae | from DIR]]}
out=${2:?usage: run-gpu.sh LOGFILE OUTDIR [WALL_SECONDS [all | vae | from DIR]]}
wall=${3:-560}
part=${4:-all}
from=
case $part in
  all|vae) ;;
  from) from=${5:?usage: run-gpu.sh LOGFILE OUTDIR WALL from DIR}
        from=$(cd "$from" && pwd) || exit 2
        [ -f "$from/demo-vae.safetensors" ] || { echo "run-gpu.sh: $from/demo-vae.safetensors: no such file" >&2; exit 2; } ;;
  *) echo "usage: run-gpu.sh LOGFILE OUTDIR [WALL_SECONDS [all | vae | from DIR]]" >&2; exit 2 ;;
esac
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

# training: what is left less the export check (about 25 s on a GPU), the
# runs' start-up and own evaluations past their limits (about 20 s), with
# 25 s to spare.  Up to three runs of train.py in two phases:
#   A   the whole VAE (encoder and decoder);
#   B   two processes side by side on the same GPU (both are bound by
#       kernel launches, not by the GPU's arithmetic):
#       B1  the decoder alone, from A's VAE: the encoder is frozen, so the
#           latent space B2 trains in does not move;
#       B2  the DiT and umT5 on latents of A's (frozen) encoder, the rollout
#           fine-tune in its last 30 % of steps.
# PART all runs A for 40 % of the time and B for the rest; vae runs A
# alone for all of it; from DIR runs B alone for all of it, from DIR's VAE
# (and DIR's DiT and umT5 when it has them).  OUTDIR then gets B1's VAE
# with B2's DiT and umT5 (vae: A's VAE alone).  Each run writes its
# weights before its own evaluation, so a late stop loses only that.
budget=$(($(left) - 70))
say "training budget: $budget s, part $part"
common="--device $device --fit-time --vae-steps 30000 --dit-steps 30000"
case $part in
  all) vae_time=$((budget * 2 / 5)); both_time=$((budget - vae_time - 10)) ;;
  vae) vae_time=$budget; both_time=0 ;;
  from) vae_time=0; both_time=$budget ;;
esac

vae_a=
if [ "$vae_time" -gt 0 ]; then
  # shellcheck disable=SC2086
  step "A: VAE ($vae_time s)" $((vae_time + 30)) $py "$train/train.py" --out "$out/a" $common \
    ${DIT_TRAIN_ARGS:-} --seed 20 --time-limit "$vae_time" --vae-share 1.0 --dit-steps 0
  if [ -f "$out/a/demo-vae.safetensors" ]; then
    vae_a=$out/a/demo-vae.safetensors
  else
    status="A wrote no VAE ($status)"
  fi
else
  vae_a=$from/demo-vae.safetensors
  dit_init=
  [ -f "$from/demo-dit.safetensors" ] && [ -f "$from/demo-umt5.safetensors" ] &&
    dit_init="--dit-init $from"
  say "starting from $from: $(ls "$from" | tr '\n' ' ')"
fi
if [ "$part" = vae ] && [ -n "$vae_a" ]; then
  cp "$vae_a" "$out/"
elif [ -n "$vae_a" ]; then
  say "== B1: decoder ($both_time s) beside B2, its log follows B2's"
  # shellcheck disable=SC2086
  timeout $((both_time + 30)) $py "$train/train.py" --out "$out/b1" $common ${DIT_TRAIN_ARGS:-} \
    --seed 21 --time-limit "$both_time" --vae-share 1.0 --dit-steps 0 --vae-init "$vae_a" \
    --vae-decoder-only --vae-lr 1e-3 > "$out/b1.log" 2>&1 &
  b1=$!
  # shellcheck disable=SC2086
  step "B2: DiT and umT5 ($both_time s)" $((both_time + 40)) $py "$train/train.py" \
    --out "$out/b2" $common ${DIT_TRAIN_ARGS:-} --seed 20 --time-limit "$both_time" \
    --vae-steps 0 --vae-init "$vae_a" ${dit_init:-}
  wait $b1
  rc=$?
  cat "$out/b1.log" >> "$log"
  say "== B1: exit $rc ($(($(date +%s) - t0)) s)"
  [ $rc -eq 0 ] || status="B1 failed (exit $rc)"
  vae_final=$out/b1/demo-vae.safetensors
  [ -f "$vae_final" ] || { vae_final=$vae_a; say "B1 wrote no VAE: the one it started from is used"; }
  if [ -f "$out/b2/demo-dit.safetensors" ]; then
    cp "$out/b2/demo-dit.safetensors" "$out/b2/demo-umt5.safetensors" "$vae_final" "$out/"
  fi
fi
if [ "$part" = vae ]; then
  [ -f "$out/demo-vae.safetensors" ] || status="no VAE written ($status)"
elif [ -f "$out/demo-dit.safetensors" ]; then
  size=$(cat "$out"/demo-*.safetensors | wc -c)
  say "weights: $size bytes"
  [ "$size" -le 20971520 ] || status="the weights are $size bytes (> 20 MB)"
  # shellcheck disable=SC2086
  step "export check (the files reloaded and evaluated)" 45 \
    $py "$train/eval_weights.py" "$out" --device "$device" --sheet "$out/eval.png" \
    --json "$out/eval.json" ${DIT_EVAL_ARGS:-}
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
