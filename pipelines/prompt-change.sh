#!/bin/sh
# Text-to-video to MP4 while the prompt changes during playback.
set -eu
usage() {
  cat <<USAGE
Usage: $0 [-o OUT.mp4] [-n CHUNKS] [-c CHUNKS | -t SECONDS] [-b CHUNKS] [-m PRESET] [PROMPT...]
Generate video with ditgenerate, starting from the first PROMPT and
switching to the next one while the pipeline plays.
  -o FILE   output file (default prompt-change.mp4)
  -n N      chunks to generate (default 12: 141 frames, 8.8 s at 16 fps)
  -c N      chunks between prompt changes (default 4: the three default
            prompts show for 4 chunks each, however fast the machine is)
  -t S      change every S seconds of wall clock instead (for live output)
  -b N      prompt-transition-chunks: blend old -> new over N chunks (default 2)
  -m PRESET the weights of every dit element (DiT, VAE, text encoder):
            a preset of all three, e.g. tiny (seeded random weights, as
            the tests use); default: the elements' defaults
  PROMPT    prompts; a weighted list "a:0.7|b:0.3" blends prompts
            (default: three built-in prompts)
Defaults need no GPU and no download (tiny DiT, tiny umT5, shipped
tokenizer).  Runs dit-prompt-switch (built with the GStreamer plugin):
\$DIT_PROMPT_SWITCH, else the one on PATH, else this checkout's build.
It prints every change and the chunk at which each new prompt takes effect.
The dit plugin is used as installed, from GST_PLUGIN_PATH_1_0, or else
from this checkout's build/ (dit-env.sh).
USAGE
}
out=prompt-change.mp4; chunks=12; every_chunks=4; every=; blend=2; models=; vae=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -o) out=$2; shift 2 ;;
    -n) chunks=$2; shift 2 ;;
    -c) every_chunks=$2; every=; shift 2 ;;
    -t) every=$2; shift 2 ;;
    -b) blend=$2; shift 2 ;;
    -m) models="model=$2 vae-model=$2 text-model=$2"; vae="vae-model=$2"; shift 2 ;;
    --) shift; break ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
. "$(dirname "$0")/dit-env.sh"
if [ $# -eq 0 ]; then
  set -- "a koi pond at dawn, drone shot" "a red fox running through snow, slow motion" \
    "a lighthouse at night:0.6|a thunderstorm over the sea:0.4"
fi
switch=${DIT_PROMPT_SWITCH:-dit-prompt-switch}
if ! command -v "$switch" > /dev/null 2>&1; then
  echo "$(basename "$0"): $switch not found: it is built with the GStreamer" \
    "plugin (BUILD/tools/dit-prompt-switch); put it on PATH or set" \
    "DIT_PROMPT_SWITCH to its path" >&2
  exit 1
fi
if [ -n "$every" ]; then
  when="--every $every"
else
  when="--every-chunks $every_chunks"
fi
first=$1; shift
# gst-launch quoting: backslash-escape the prompt's double quotes
q=$(printf '%s' "$first" | sed 's/\\/\\\\/g; s/"/\\"/g')
# shellcheck disable=SC2086
exec "$switch" $when \
  "ditgenerate num-chunks=$chunks $models prompt=\"$q\" prompt-transition-chunks=$blend ! queue max-size-buffers=1 ! ditdecode $vae ! videoconvert ! x264enc ! mp4mux ! filesink location=\"$out\"" \
  "$@"
