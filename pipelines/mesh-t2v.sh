#!/bin/sh
# Text-to-video to an MP4 file with the DiT on a 2-worker generator mesh.
set -eu
usage() {
  cat <<USAGE
Usage: $0 [-o OUT.mp4] [-n CHUNKS] [-s WxH] [-d DEVICES] [-b cpu|cuda]
          [-w DIT-WORKER] [-m PRESET] [-- ditgenerate properties...]
Generate video with ditgenerate's DiT split over dit-worker processes
(tensor parallel, one per device) and write an H.264 MP4.  This process
keeps the VAE and the text encoder; the workers hold the DiT shards.
  -o FILE     output file (default out.mp4)
  -n N        chunks to generate (default 4; 9 frames first, 12 after)
  -s WxH      frame size, multiples of 16 (default 64x64)
  -d LIST     mesh devices, one worker each (default 0,1; 1, 2, 4 or 8)
  -b BACKEND  worker backend (default cpu; cuda puts rank i on GPU LIST[i])
  -w PATH     dit-worker executable (default: \$GST_DIT_WORKER, the
              checkout's build/tools/dit-worker when the plugin comes
              from there, the installed one, then PATH)
  -m PRESET   the weights of every dit element (DiT, VAE, text
              encoder): a preset of all three, e.g. tiny (seeded random
              weights, as the tests use); default: the elements' defaults
  after --    extra ditgenerate properties, e.g. model=wan-14b
              prompt="a koi pond at dawn" device=cuda:0 mesh-timeout-ms=30000
Defaults need no GPU and no download (embedded tiny model, CPU workers).
A dead or stalled worker stops the pipeline with an error naming its rank.
The dit plugin is used as installed, from GST_PLUGIN_PATH_1_0, or else
from this checkout's build/ (dit-env.sh).
USAGE
}
out=out.mp4; chunks=4; size=64x64; devices=0,1; backend=cpu; worker=; models=; vae=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -o) out=$2; shift 2 ;;
    -n) chunks=$2; shift 2 ;;
    -s) size=$2; shift 2 ;;
    -d) devices=$2; shift 2 ;;
    -b) backend=$2; shift 2 ;;
    -w) worker=$2; shift 2 ;;
    -m) models="model=$2 vae-model=$2 text-model=$2"; vae="vae-model=$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
. "$(dirname "$0")/dit-env.sh"
w=${size%x*}; h=${size#*x}
if [ -n "$worker" ]; then
  set -- worker-path="$worker" "$@"
fi
# shellcheck disable=SC2086
exec gst-launch-1.0 -e ditgenerate num-chunks="$chunks" $models \
  mesh-devices="$devices" mesh-backend="$backend" "$@" ! queue max-size-buffers=1 ! ditdecode $vae ! \
  "video/x-raw,width=$w,height=$h" ! videoconvert ! x264enc ! mp4mux ! \
  filesink location="$out"
