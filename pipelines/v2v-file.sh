#!/bin/sh
# Video-to-video: a file (or videotestsrc) restyled into an MP4 file.
set -eu
usage() {
  cat <<USAGE
Usage: $0 [-i INPUT|videotestsrc] [-o OUT.mp4] [-n FRAMES] [-s WxH] [-m PRESET] [-- ditgenerate properties...]
Encode input video to latents, restyle it with ditgenerate, decode, write MP4.
  -i INPUT  input media file, or "videotestsrc" (default)
  -o FILE   output file (default v2v.mp4)
  -n N      input frames to use (default 33; 0 = all of the file, or
            videotestsrc until Ctrl-C)
  -s WxH    working size, multiples of 16 (default 64x64)
  -m PRESET the weights of every dit element (DiT, VAE, text encoder):
            a preset of all three, e.g. tiny (seeded random weights, as
            the tests use); default: the elements' defaults
  after --   extra ditgenerate properties, e.g. strength=0.6 seed=3
The dit plugin is used as installed, from GST_PLUGIN_PATH_1_0, or else
from this checkout's build/ (dit-env.sh).
USAGE
}
in=videotestsrc; out=v2v.mp4; frames=33; size=64x64; models=; vae=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -i) in=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    -n) frames=$2; shift 2 ;;
    -s) size=$2; shift 2 ;;
    -m) models="model=$2 vae-model=$2 text-model=$2"; vae="vae-model=$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
. "$(dirname "$0")/dit-env.sh"
w=${size%x*}; h=${size#*x}
if [ "$in" = videotestsrc ]; then
  src="videotestsrc num-buffers=$([ "$frames" = 0 ] && echo -1 || echo "$frames") pattern=ball"
else
  src="filesrc location=$in ! decodebin ! videorate"
fi
# ditencode num-frames ends the stream after exactly N frames of any input
# shellcheck disable=SC2086
exec gst-launch-1.0 -e $src ! videoconvert ! videoscale ! \
  "video/x-raw,format=RGBx,width=$w,height=$h,framerate=16/1" ! \
  ditencode num-frames="$frames" $vae ! \
  ditgenerate $models "$@" ! queue max-size-buffers=1 ! ditdecode $vae ! videoconvert ! x264enc ! mp4mux ! \
  filesink location="$out"
