#!/bin/sh
# Live text-to-video to an RTMP ingest (nginx-rtmp, YouTube, Twitch, ...).
set -eu
usage() {
  cat <<USAGE
Usage: $0 [-n CHUNKS] [-s WxH] [-e x264|nvh264|auto] [-m PRESET] URL [-- ditgenerate properties...]
Stream generated video as H.264 in FLV to rtmp://HOST[:PORT]/APP/KEY.
  -n N      chunks to send, 0 = until interrupted (default 0)
  -s WxH    frame size, multiples of 16 (default 64x64)
  -e ENC    encoder: auto (nvh264enc when present, else x264enc), x264, nvh264
  -m PRESET the weights of every dit element (DiT, VAE, text encoder):
            a preset of all three, e.g. tiny (seeded random weights, as
            the tests use); default: the elements' defaults
The dit plugin is used as installed, from GST_PLUGIN_PATH_1_0, or else
from this checkout's build/ (dit-env.sh).
USAGE
}
chunks=0; size=64x64; enc=auto; url=; models=; vae=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -n) chunks=$2; shift 2 ;;
    -s) size=$2; shift 2 ;;
    -e) enc=$2; shift 2 ;;
    -m) models="model=$2 vae-model=$2 text-model=$2"; vae="vae-model=$2"; shift 2 ;;
    --) shift; break ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) url=$1; shift ;;
  esac
done
[ -n "$url" ] || { usage >&2; exit 2; }
. "$(dirname "$0")/dit-env.sh"
w=${size%x*}; h=${size#*x}
if [ "$enc" = auto ]; then
  if gst-inspect-1.0 nvh264enc >/dev/null 2>&1; then enc=nvh264; else enc=x264; fi
fi
case "$enc" in
  nvh264) encoder="nvh264enc preset=low-latency-hq rc-mode=cbr bitrate=2000 gop-size=32 zerolatency=true bframes=0" ;;
  x264) encoder="x264enc tune=zerolatency speed-preset=veryfast bitrate=2000 key-int-max=32" ;;
  *) echo "unknown encoder $enc" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
exec gst-launch-1.0 -e ditgenerate num-chunks="$chunks" $models "$@" ! queue max-size-buffers=1 ! ditdecode $vae ! \
  "video/x-raw,width=$w,height=$h" ! \
  queue max-size-buffers=4 max-size-bytes=0 max-size-time=0 ! videoconvert ! \
  $encoder ! video/x-h264,profile=main ! h264parse config-interval=-1 ! \
  flvmux streamable=true ! rtmp2sink location="$url"
