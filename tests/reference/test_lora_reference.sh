#!/bin/sh
# LoRA application against the independent PyTorch reference (lora_ref.py,
# float64, written from the LoRA definition), on the tiny model:
#   - merged weights: dit-weights merge-lora (f32) vs lora_ref.py merge of
#     a kohya LoRA (alpha) and a Diffusers-named one (no alpha) at 0.8 and
#     -0.5                                      (relative L2 <= 1e-5 per tensor)
#   - a forward with the same LoRAs live vs dit_ref.py on the reference's
#     merged weights                            (relative L2 <= 1e-4)
#   - a 3-chunk rollout, live and merged, vs the reference (<= 1e-3)
# usage: test_lora_reference.sh BUILD_DIR
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
if ! $py -c 'import torch' 2>/dev/null; then
  echo "SKIP: $py has no torch (install python3-torch)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$build/tools/dit-weights" make --preset tiny --seed 3 -o "$tmp/w.safetensors"
$py "$here/lora_ref.py" make-lora --weights "$tmp/w.safetensors" --layout kohya \
  --rank 8 --alpha 4 --seed 1 --out "$tmp/l1.safetensors"
$py "$here/lora_ref.py" make-lora --weights "$tmp/w.safetensors" \
  --layout diffusers --rank 4 --seed 2 --out "$tmp/l2.safetensors"
lora="$tmp/l1.safetensors:0.8|$tmp/l2.safetensors:-0.5"
$py "$here/dit_ref.py" make-inputs --weights "$tmp/w.safetensors" \
  --latent-size 16x16 --frames 3 --chunks 3 --steps 4 --txt-rows 7 --seed 0 \
  --out-embeds "$tmp/e.safetensors" --out-noise "$tmp/n.safetensors" \
  --out-forward "$tmp/x.safetensors"

echo "== merged weights"
"$build/tools/dit-weights" merge-lora "$tmp/w.safetensors" \
  "$tmp/l1.safetensors:0.8" "$tmp/l2.safetensors:-0.5" --dtype f32 \
  -o "$tmp/mc.safetensors"
$py "$here/lora_ref.py" merge --weights "$tmp/w.safetensors" \
  --lora "$tmp/l1.safetensors:0.8" --lora "$tmp/l2.safetensors:-0.5" \
  --out "$tmp/mr.safetensors"
$py "$here/compare.py" "$tmp/mc.safetensors" "$tmp/mr.safetensors" --tol 1e-5
# the LoRAs change the model: the merge is not the base
if $py "$here/compare.py" "$tmp/w.safetensors" "$tmp/mr.safetensors" --tol 1e-3 \
    >/dev/null; then
  echo "FAIL: the merged reference equals the base"
  exit 1
fi

echo "== forward, LoRAs live"
"$build/tests/reference/dit-forward" "$tmp/w.safetensors" "$tmp/e.safetensors" \
  "$tmp/x.safetensors" "$tmp/v_c.safetensors" --lora "$lora" --lora-mode live
$py "$here/dit_ref.py" forward --weights "$tmp/mr.safetensors" \
  --embeds "$tmp/e.safetensors" --input "$tmp/x.safetensors" --out "$tmp/v_r.safetensors"
$py "$here/compare.py" "$tmp/v_c.safetensors" "$tmp/v_r.safetensors" --tol 1e-4

echo "== 3-chunk rollout, live and merged"
$py "$here/dit_ref.py" rollout --weights "$tmp/mr.safetensors" \
  --embeds "$tmp/e.safetensors" --noise "$tmp/n.safetensors" --chunks 3 \
  --out "$tmp/l_r.safetensors"
for mode in live merge; do
  "$build/tools/dit-generate" --model "$tmp/w.safetensors" --embeds "$tmp/e.safetensors" \
    --noise "$tmp/n.safetensors" --chunks 3 --latent-size 16x16 -q \
    --lora "$lora" --lora-mode $mode -o "$tmp/l_$mode.safetensors"
  $py "$here/compare.py" "$tmp/l_$mode.safetensors" "$tmp/l_r.safetensors" --tol 1e-3
done
echo "lora reference match: OK"
