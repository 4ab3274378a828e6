#!/bin/sh
# The C DiT against the independent PyTorch reference (dit_ref.py), on the
# tiny preset with synthetic weights and identical supplied inputs:
#   - one standalone forward                 (relative L2 <= 1e-4)
#   - one forward after a context recompute  (relative L2 <= 1e-4)
#   - a 3-chunk rollout with recompute, kv-bias and 4 steps (<= 1e-3)
# usage: test_dit_reference.sh BUILD_DIR
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
$py "$here/dit_ref.py" make-inputs --weights "$tmp/w.safetensors" \
  --latent-size 16x16 --frames 3 --chunks 3 --steps 4 --txt-rows 7 --seed 0 \
  --out-embeds "$tmp/e.safetensors" --out-noise "$tmp/n.safetensors" \
  --out-forward "$tmp/x.safetensors"

echo "== single forward"
"$build/tests/reference/dit-forward" "$tmp/w.safetensors" "$tmp/e.safetensors" \
  "$tmp/x.safetensors" "$tmp/v_c.safetensors"
$py "$here/dit_ref.py" forward --weights "$tmp/w.safetensors" \
  --embeds "$tmp/e.safetensors" --input "$tmp/x.safetensors" --out "$tmp/v_r.safetensors"
$py "$here/compare.py" "$tmp/v_c.safetensors" "$tmp/v_r.safetensors" --tol 1e-4

echo "== forward after context recompute (kv-bias 0.3)"
"$build/tests/reference/dit-forward" "$tmp/w.safetensors" "$tmp/e.safetensors" \
  "$tmp/x.safetensors" "$tmp/vc_c.safetensors" --with-context
$py "$here/dit_ref.py" forward --weights "$tmp/w.safetensors" --with-context \
  --embeds "$tmp/e.safetensors" --input "$tmp/x.safetensors" --out "$tmp/vc_r.safetensors"
$py "$here/compare.py" "$tmp/vc_c.safetensors" "$tmp/vc_r.safetensors" --tol 1e-4

echo "== 3-chunk rollout"
"$build/tools/dit-generate" --model "$tmp/w.safetensors" --embeds "$tmp/e.safetensors" \
  --noise "$tmp/n.safetensors" --chunks 3 --latent-size 16x16 -o "$tmp/l_c.safetensors"
$py "$here/dit_ref.py" rollout --weights "$tmp/w.safetensors" \
  --embeds "$tmp/e.safetensors" --noise "$tmp/n.safetensors" --chunks 3 \
  --out "$tmp/l_r.safetensors"
$py "$here/compare.py" "$tmp/l_c.safetensors" "$tmp/l_r.safetensors" --tol 1e-3
echo "reference match: OK"
