#!/bin/sh
# The C TAEHV (model/dit_taehv.c) against the independent float64 reference
# (taehv_ref.py) on identical weights and inputs, relative L2 <= 1e-4:
#   - streaming decode of 5 latents, one per call (17 frames), taehv-tiny
#   - streaming encode of 9 frames (frame 0, then 4 + 4, then the flush)
#   - both again at the real taew2_1 widths, with LightTAE's raw latents
#   - tools/convert-pth.py on a torch .pth written from a random state dict
#     (fp16 like taew2_1.pth, with an oversized TGrow weight that the
#     converter cuts): dit-weights accepts it as taehv-tiny, and the C
#     decoder on the converted file matches the reference on the .pth
#   - a LightTAE-named .pth converts with latents=raw metadata
# Before that the oracle checks itself (taehv_ref.py selftest: streaming ==
# offline, layer semantics, parameter counts).
# usage: test_taehv_reference.sh BUILD_DIR
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
if ! $py -c 'import torch' 2>/dev/null; then
  echo "SKIP: $py has no torch (install python3-torch)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$py $here/taehv_ref.py"
cmp="$py $here/compare.py"
vae="$build/tools/dit-vae"
weights="$build/tools/dit-weights"

echo "== reference selftest"
$ref selftest

if [ ! -x "$vae" ] || [ ! -x "$weights" ]; then
  echo "SKIP: $vae or $weights not built; reference half ran"
  exit 77
fi

$ref make-inputs --height 64 --width 64 --frames 9 --latents 5 --seed 5 \
  --out-pixels "$tmp/p.safetensors" --out-latents "$tmp/l.safetensors"

check () {   # check NAME WEIGHTS PIXELS LATENTS [--latents raw]
  name=$1 w=$2 p=$3 l=$4
  shift 4
  echo "== $name: streaming decode, one latent per call"
  "$vae" decode-tensor --decoder "$w" --input "$l" -o "$tmp/pc.safetensors"
  $ref decode --weights "$w" --input "$l" --out "$tmp/pr.safetensors" "$@"
  $cmp "$tmp/pc.safetensors" "$tmp/pr.safetensors" --tol 1e-4
  echo "== $name: streaming encode, 1 + 4 + 4 frames"
  "$vae" encode-tensor --encoder "$w" --input "$p" -o "$tmp/lc.safetensors"
  $ref encode --weights "$w" --input "$p" --out "$tmp/lr.safetensors"
  $cmp "$tmp/lc.safetensors" "$tmp/lr.safetensors" --tol 1e-4
}

"$weights" make --kind taehv --preset taehv-tiny --seed 1 -o "$tmp/tiny.safetensors"
check taehv-tiny "$tmp/tiny.safetensors" "$tmp/p.safetensors" "$tmp/l.safetensors"

$ref make-inputs --height 32 --width 48 --frames 9 --latents 3 --seed 6 \
  --out-pixels "$tmp/p2.safetensors" --out-latents "$tmp/l2.safetensors"
"$weights" make --kind taehv --preset lighttaew2_1 --seed 2 -o "$tmp/light.safetensors"
check "lighttaew2_1 (taew2_1 widths, raw latents)" "$tmp/light.safetensors" \
  "$tmp/p2.safetensors" "$tmp/l2.safetensors" --latents raw

echo "== convert-pth on a TAEHV .pth (fp16, oversized TGrow)"
$ref save-pth --preset tiny --seed 4 --dtype f16 --tall-grow --out "$tmp/taew_test.pth"
$py "$src/tools/convert-pth.py" "$tmp/taew_test.pth" "$tmp/conv.safetensors" \
  2> "$tmp/convert.err"
cat "$tmp/convert.err"
grep -q "kept the last-timestep rows of decoder.7.conv.weight" "$tmp/convert.err" \
  || { echo "FAIL: the oversized TGrow was not reported"; exit 1; }
"$weights" inspect "$tmp/conv.safetensors" > "$tmp/inspect.out"
grep -q "latents=normalised" "$tmp/inspect.out" \
  || { echo "FAIL: no latents=normalised metadata"; cat "$tmp/inspect.out"; exit 1; }
grep -q "valid taehv-tiny checkpoint" "$tmp/inspect.out" \
  || { echo "FAIL: dit-weights does not accept the converted file"; cat "$tmp/inspect.out"; exit 1; }
"$vae" decode-tensor --decoder "$tmp/conv.safetensors" --input "$tmp/l.safetensors" \
  -o "$tmp/pc.safetensors"
$ref decode --weights "$tmp/taew_test.pth" --input "$tmp/l.safetensors" \
  --out "$tmp/pr.safetensors"
$cmp "$tmp/pc.safetensors" "$tmp/pr.safetensors" --tol 1e-4

cp "$tmp/taew_test.pth" "$tmp/lighttaew_test.pth"
$py "$src/tools/convert-pth.py" "$tmp/lighttaew_test.pth" "$tmp/lconv.safetensors" 2>/dev/null
"$weights" inspect "$tmp/lconv.safetensors" | grep -q "latents=raw" \
  || { echo "FAIL: a LightTAE file did not get latents=raw"; exit 1; }
"$vae" decode-tensor --decoder "$tmp/lconv.safetensors" --input "$tmp/l.safetensors" \
  -o "$tmp/pc.safetensors"
$ref decode --weights "$tmp/taew_test.pth" --input "$tmp/l.safetensors" \
  --out "$tmp/pr.safetensors" --latents raw
$cmp "$tmp/pc.safetensors" "$tmp/pr.safetensors" --tol 1e-4

echo "== wrong kinds are named"
"$weights" make --kind vae --preset tiny -o "$tmp/vae.safetensors" > /dev/null
if "$vae" decode-tensor --decoder "$tmp/vae.safetensors" --input "$tmp/l.safetensors" \
    -o "$tmp/x.safetensors" 2> "$tmp/err"; then
  echo "FAIL: a WanVAE file was taken as a TAEHV"; exit 1
fi
grep -q "it looks like a Wan2.1 VAE" "$tmp/err" || { cat "$tmp/err"; exit 1; }
if "$vae" decode-tensor --vae "$tmp/tiny.safetensors" --input "$tmp/l.safetensors" \
    -o "$tmp/x.safetensors" 2> "$tmp/err"; then
  echo "FAIL: a TAEHV file was taken as a WanVAE"; exit 1
fi
grep -q "it looks like a TAEHV tiny autoencoder" "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "TAEHV reference match: OK"
