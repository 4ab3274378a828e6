#!/bin/sh
# Text-to-video to MP4 while the prompt changes during playback.
set -eu
usage() {
  cat <<USAGE
Usage: $0 [-o OUT.mp4] [-n CHUNKS] [-t SECONDS] [-b CHUNKS] [PROMPT...]
Generate video with ditgenerate, starting from the first PROMPT and
switching to the next one every SECONDS while the pipeline plays.
  -o FILE   output file (default prompt-change.mp4)
  -n N      chunks to generate (default 8)
  -t S      seconds between prompt changes (default 2)
  -b N      prompt-transition-chunks: blend old -> new over N chunks (default 2)
  PROMPT    prompts; a weighted list "a:0.7|b:0.3" blends prompts
            (default: three built-in prompts)
Defaults need no GPU and no download (tiny DiT, tiny umT5, shipped
tokenizer).  Needs dit-prompt-switch (built with the GStreamer plugin; set
DIT_PROMPT_SWITCH to its path when it is not on PATH).
USAGE
}
out=prompt-change.mp4; chunks=8; every=2; blend=2
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -o) out=$2; shift 2 ;;
    -n) chunks=$2; shift 2 ;;
    -t) every=$2; shift 2 ;;
    -b) blend=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  set -- "a koi pond at dawn, drone shot" "a red fox running through snow, slow motion" \
    "a lighthouse at night:0.6|a thunderstorm over the sea:0.4"
fi
switch=${DIT_PROMPT_SWITCH:-dit-prompt-switch}
first=$1; shift
# gst-launch quoting: backslash-escape the prompt's double quotes
q=$(printf '%s' "$first" | sed 's/\\/\\\\/g; s/"/\\"/g')
exec "$switch" --every "$every" \
  "ditgenerate num-chunks=$chunks prompt=\"$q\" prompt-transition-chunks=$blend ! queue max-size-buffers=1 ! ditdecode ! videoconvert ! x264enc ! mp4mux ! filesink location=\"$out\"" \
  "$@"
