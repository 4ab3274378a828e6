#!/bin/sh
# dit-vae with the TAEHV tiny autoencoder on a y4m clip (taehv-tiny preset):
#   - encode --encoder: 10 frames -> 3 latents (frame 0, 1-4, 5-8; the 10th
#     frame is a trailing partial group, reported and dropped) — the same
#     count as the full VAE, although TAEHV's latents come a group late
#   - decode --decoder: 3 latents -> 9 frames of y4m
#   - compare: one line per latent with the PSNR of tiny vs full and of each
#     vs the clip, an overall line, and the note that synthetic weights make
#     the figure meaningless
#   - usage errors: --decoder on encode, compare without --decoder
# usage: dit-vae-tiny.sh BUILD_DIR
set -eu
tool=$1/tools/dit-vae
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

frame=1536   # 32*32 luma + 2 * 16*16 chroma
{
  printf 'YUV4MPEG2 W32 H32 F16:1 Ip A1:1 C420jpeg\n'
  i=0
  while [ $i -lt 10 ]; do
    printf 'FRAME\n'
    head -c $frame /dev/urandom
    i=$((i + 1))
  done
} > "$tmp/in.y4m"

"$tool" encode --encoder taehv-tiny --input "$tmp/in.y4m" -o "$tmp/lat.safetensors" \
  2> "$tmp/encode.err"
cat "$tmp/encode.err"
grep -q "dropping 1 trailing frame" "$tmp/encode.err" || { echo "FAIL: trailing frame not reported"; exit 1; }
grep -q "10 frames -> 3 latents" "$tmp/encode.err" || { echo "FAIL: expected 3 latents"; exit 1; }

"$tool" decode --decoder taehv-tiny --input "$tmp/lat.safetensors" -o "$tmp/out.y4m"
header=$(head -n 1 "$tmp/out.y4m")
want=$(( ${#header} + 1 + 9 * (6 + frame) ))
got=$(wc -c < "$tmp/out.y4m")
[ "$got" -eq "$want" ] || { echo "FAIL: decode gave $got bytes, expected $want (9 frames)"; exit 1; }

"$tool" compare --vae tiny --decoder taehv-tiny --input "$tmp/in.y4m" > "$tmp/cmp.out" 2>&1
cat "$tmp/cmp.out"
[ "$(grep -c '^latent ' "$tmp/cmp.out")" -eq 3 ] || { echo "FAIL: compare: 3 latent lines expected"; exit 1; }
grep -q "^overall: 3 latents, tiny (taehv-tiny) vs full VAE (tiny): .* dB; full vs clip .* dB, tiny vs clip .* dB" \
  "$tmp/cmp.out" || { echo "FAIL: compare: no overall line"; exit 1; }
grep -q "synthetic weights" "$tmp/cmp.out" || { echo "FAIL: compare: no synthetic-weights note"; exit 1; }
"$tool" compare --vae tiny --decoder taehv-tiny --input "$tmp/lat.safetensors" > "$tmp/cmp2.out"
grep -q "^overall: 3 latents" "$tmp/cmp2.out" || { echo "FAIL: compare on latents"; exit 1; }

rc=0; "$tool" encode --decoder taehv-tiny --vae tiny --input "$tmp/in.y4m" -o "$tmp/x" \
  2>/dev/null || rc=$?
[ "$rc" = 2 ] || { echo "FAIL: --decoder on encode: exit $rc, want 2"; exit 1; }
rc=0; "$tool" compare --vae tiny --input "$tmp/in.y4m" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || { echo "FAIL: compare without --decoder: exit $rc, want 2"; exit 1; }
echo "dit-vae tiny decoder/encoder/compare: ok"
