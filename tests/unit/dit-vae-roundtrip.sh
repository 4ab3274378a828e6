#!/bin/sh
# dit-vae round trip on a y4m clip: encode (streaming, frame 0 then chunks
# of 4) to latents and decode back to y4m, with the tiny and the real-size
# ("wan") synthetic VAE.  9 frames of 32x32 4:2:0 -> 3 latents -> 9 frames;
# a 10th frame is a trailing partial chunk and must be reported and dropped.
# usage: dit-vae-roundtrip.sh BUILD_DIR
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

for vae in tiny wan; do
  "$tool" encode --vae $vae --input "$tmp/in.y4m" -o "$tmp/lat.safetensors" \
    2> "$tmp/encode.err"
  cat "$tmp/encode.err"
  grep -q "dropping 1 trailing frame" "$tmp/encode.err" || { echo "FAIL: trailing frame not reported"; exit 1; }
  "$tool" decode --vae $vae --input "$tmp/lat.safetensors" -o "$tmp/out.y4m"
  header=$(head -n 1 "$tmp/out.y4m")
  case "$header" in
    "YUV4MPEG2 W32 H32 "*) ;;
    *) echo "FAIL ($vae): bad y4m header '$header'"; exit 1 ;;
  esac
  want=$(( ${#header} + 1 + 9 * (6 + frame) ))
  got=$(wc -c < "$tmp/out.y4m")
  if [ "$got" -ne "$want" ]; then
    echo "FAIL ($vae): $got bytes, expected $want (9 frames)"
    exit 1
  fi
  echo "$vae: 10 frames in -> 3 latents -> 9 frames out: ok"
done
