#!/bin/sh
# The offline chain on the tiny presets: dit-text (prompt -> embeddings),
# dit-generate (3 chunks of 3 latents at 64x64) and dit-vae decode (every
# chunk in order through the streaming decoder) to y4m.  9 latents give
# 1 + 4 * 8 = 33 frames (latent 0 one frame, every later one 4), counted
# from the file size and, when ffprobe is there, by decoding the y4m; the
# same y4m written to stdout (-o -) for a pipe into ffmpeg.
# This caught dit-vae decode reading only a tensor named 'latents', not
# dit-generate's latents.c0 .. latents.c2.
# usage: offline-chain.sh DIT_TEXT DIT_GENERATE DIT_VAE
set -eu
text=$1 generate=$2 vae=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$text" encode --model tiny "a koi pond at dawn, drone shot" -o "$tmp/prompt.safetensors"
"$generate" --model tiny --embeds "$tmp/prompt.safetensors" --chunks 3 --latent-size 8x8 \
  -q -o "$tmp/latents.safetensors"
"$vae" decode --vae tiny --input "$tmp/latents.safetensors" -o "$tmp/out.y4m"

header=$(head -n 1 "$tmp/out.y4m")
case "$header" in
  "YUV4MPEG2 W64 H64 "*) ;;
  *) echo "FAIL: y4m header '$header', expected 64x64"; exit 1 ;;
esac
frame=$((64 * 64 * 3 / 2))
bytes=$(wc -c < "$tmp/out.y4m")
frames=$(( (bytes - ${#header} - 1) / (6 + frame) ))
echo "9 latents -> $frames frames ($bytes bytes)"
[ $(( ${#header} + 1 + frames * (6 + frame) )) -eq "$bytes" ] ||
  { echo "FAIL: $bytes bytes is no whole number of frames"; exit 1; }
[ "$frames" -eq 33 ] || { echo "FAIL: $frames frames, expected 33"; exit 1; }
if command -v ffprobe >/dev/null 2>&1; then
  n=$(ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames -of csv=p=0 "$tmp/out.y4m")
  echo "ffprobe: $n frames"
  [ "$n" -eq 33 ] || { echo "FAIL: ffprobe reads $n frames"; exit 1; }
fi

"$vae" decode --vae tiny --input "$tmp/latents.safetensors" -o - > "$tmp/pipe.y4m"
cmp -s "$tmp/out.y4m" "$tmp/pipe.y4m" ||
  { echo "FAIL: -o - does not write the same y4m to stdout"; exit 1; }
echo "offline chain: ok"
