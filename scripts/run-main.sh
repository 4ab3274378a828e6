#!/bin/sh
# Set up, build, and run the default generation: text-to-video with the
# embedded tiny model, 4 chunks, encoded to out.mp4 (no GPU, no downloads).
#   scripts/run-main.sh [OUTPUT]          (default: out.mp4)
set -eu
cd "$(dirname "$0")/.."
out=${1:-out.mp4}
sh scripts/setup.sh build
GST_PLUGIN_PATH_1_0="$PWD/build/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
export GST_PLUGIN_PATH_1_0
gst-launch-1.0 ditgenerate num-chunks=4 ! queue ! ditdecode ! videoconvert ! x264enc ! \
  mp4mux ! filesink location="$out"
echo "wrote $out"
