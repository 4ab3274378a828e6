#!/bin/sh
# The trained demo model (model/data/demo-*.safetensors, or $DIT_DEMO_DIR)
# computes in the C engine what it computed in training: the trainer's own
# PyTorch modules (tools/train/models.py, loaded by tools/train/train.py
# from the same files) against the C tools, on identical inputs:
#   - umT5 rows of a caption's ids               dit-text (demo-umt5)
#   - a 3-chunk rollout at 64x64 (8x8 latents)   dit-generate (demo-dit)
#   - streaming encode, decode and anchor encode dit-vae (demo-vae)
#   - the trainer's caption token table equals the C tokenizer's ids for
#     every one-object caption                   dit-text tokenize
# The modules themselves equal the float64 oracles (tools/train/
# check_models.py: the test train-modules).  The weights are not in the
# tree until they are trained (docs/demo-model.md): without them this exits
# 77, naming the files and the commands that make them.
# usage: test_demo_export.sh BUILD_DIR
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
if ! $py -c 'import torch' 2>/dev/null; then
  echo "SKIP: $py has no torch (install python3-torch)"
  exit 77
fi
weights=${DIT_DEMO_DIR:-$src/model/data}
for f in demo-dit demo-vae demo-umt5; do
  if [ ! -f "$weights/$f.safetensors" ]; then
    echo "SKIP: $weights/$f.safetensors: no trained demo weights.  Make them on a"
    echo "GPU with 'bash tools/train/run-gpu.sh LOGFILE OUTDIR', then install them"
    echo "with 'sh tools/train/install-weights.sh OUTDIR' (docs/demo-model.md)."
    exit 77
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== PyTorch outputs of the demo weights in $weights"
$py "$src/tools/train/check_export.py" --weights "$weights" --out "$tmp"

echo "== caption token table against the C tokenizer"
"$build/tools/dit-text" tokenize --file "$tmp/captions.txt" > "$tmp/c_ids.txt"
if ! cmp -s "$tmp/c_ids.txt" "$tmp/caption_ids.txt"; then
  echo "FAIL: tools/train/caption_tokens.json disagrees with dit-text tokenize:"
  diff "$tmp/c_ids.txt" "$tmp/caption_ids.txt" | head -5
  exit 1
fi
echo "$(wc -l < "$tmp/c_ids.txt") captions tokenize identically"

echo "== umT5 rows"
"$build/tools/dit-text" --model "$weights/demo-umt5.safetensors" --ids "$(cat "$tmp/ids.txt")" -o "$tmp/text_c.safetensors"
$py "$here/compare.py" "$tmp/text_c.safetensors" "$tmp/text_t.safetensors" --tol 1e-4

echo "== 3-chunk rollout"
"$build/tools/dit-generate" -q --model "$weights/demo-dit.safetensors" --embeds "$tmp/text_t.safetensors" \
  --noise "$tmp/noise.safetensors" --chunks 3 --latent-size 8x8 -o "$tmp/lat_c.safetensors"
$py "$here/compare.py" "$tmp/lat_c.safetensors" "$tmp/lat_t.safetensors" --tol 1e-3

echo "== VAE streaming encode, decode, anchor"
"$build/tools/dit-vae" encode-tensor --vae "$weights/demo-vae.safetensors" --input "$tmp/pix.safetensors" \
  -o "$tmp/enc_c.safetensors"
$py "$here/compare.py" "$tmp/enc_c.safetensors" "$tmp/enc_t.safetensors" --tol 1e-4
"$build/tools/dit-vae" decode-tensor --vae "$weights/demo-vae.safetensors" --input "$tmp/enc_t.safetensors" \
  -o "$tmp/dec_c.safetensors"
$py "$here/compare.py" "$tmp/dec_c.safetensors" "$tmp/dec_t.safetensors" --tol 1e-4
"$build/tools/dit-vae" anchor-tensor --vae "$weights/demo-vae.safetensors" --input "$tmp/anchor_pix.safetensors" \
  -o "$tmp/anchor_c.safetensors"
$py "$here/compare.py" "$tmp/anchor_c.safetensors" "$tmp/anchor_t.safetensors" --tol 1e-4
echo "demo export match: OK"
