#!/bin/sh
# Text-to-video to an MP4 file with ditgenerate as the source.
set -eu
usage() {
  cat <<USAGE
Usage: $0 [-o OUT.mp4] [-n CHUNKS] [-s WxH] [-m PRESET] [-- ditgenerate properties...]
Generate video from text embeddings and write an H.264 MP4.
  -o FILE   output file (default out.mp4)
  -n N      chunks to generate (default 4; 9 frames first, 12 after)
  -s WxH    frame size, multiples of 16 (default 64x64)
  -m PRESET the weights of every dit element (DiT, VAE, text encoder):
            a preset of all three, e.g. tiny (seeded random weights, as
            the tests use); default: the elements' defaults
  after --   extra ditgenerate properties, e.g. model=tiny seed=7
             prompt-embeds=embeds.safetensors
Defaults need no GPU and no download (embedded tiny model).
The dit plugin is used as installed, from GST_PLUGIN_PATH_1_0, or else
from this checkout's build/ (dit-env.sh).
USAGE
}
out=out.mp4; chunks=4; size=64x64; models=; vae=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -o) out=$2; shift 2 ;;
    -n) chunks=$2; shift 2 ;;
    -s) size=$2; shift 2 ;;
    -m) models="model=$2 vae-model=$2 text-model=$2"; vae="vae-model=$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
. "$(dirname "$0")/dit-env.sh"
w=${size%x*}; h=${size#*x}
# shellcheck disable=SC2086
exec gst-launch-1.0 -e ditgenerate num-chunks="$chunks" $models "$@" ! queue max-size-buffers=1 ! ditdecode $vae ! \
  "video/x-raw,width=$w,height=$h" ! videoconvert ! x264enc ! mp4mux ! \
  filesink location="$out"
