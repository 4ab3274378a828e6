#!/bin/sh
# Ctrl-C on a text-to-video recording.  gst-launch-1.0 -e turns SIGINT into
# an EOS sent to the pipeline, which hands it to its sources; ditgenerate
# (text-to-video, no chunk limit) must end its stream so that mp4mux writes
# its index.  The pipeline gets SIGINT once frames reach the encoder; it
# must exit 0 within BOUND seconds, and the MP4 must hold every frame that
# reached the encoder (counted by an identity before x264enc, against
# ffprobe -count_frames).  This caught ditgenerate ignoring the EOS: the
# pipeline generated on ("Waiting for EOS...") and the MP4 had no moov atom.
# Exit 77 (skip) without x264enc, mp4mux or ffprobe.
set -u
BOUND=10
command -v ffprobe >/dev/null 2>&1 || { echo "ffprobe missing: skip"; exit 77; }
for e in x264enc mp4mux ditgenerate; do
  gst-inspect-1.0 "$e" >/dev/null 2>&1 || { echo "$e missing: skip"; exit 77; }
done

dir=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
chains() { grep -c "frames: last-message = chain" "$dir/log" || true; }
fail() { echo "FAIL: $*"; tail -20 "$dir/log"; exit 1; }

: > "$dir/log"   # before the launch, so the first poll reads a file
gst-launch-1.0 -e -v ditgenerate model=tiny vae-model=tiny text-model=tiny ! \
  queue max-size-buffers=1 ! ditdecode vae-model=tiny ! \
  identity name=frames silent=false ! videoconvert ! x264enc ! mp4mux ! \
  filesink location="$dir/out.mp4" > "$dir/log" 2>&1 &
pid=$!

# The first frames (60 s at most: the model loads first).
i=0
while [ "$(chains)" -lt 1 ]; do
  kill -0 "$pid" 2>/dev/null || fail "gst-launch-1.0 ended before any frame"
  i=$((i + 1))
  [ $i -le 600 ] || fail "no frame within 60 s"
  sleep 0.1
done
kill -INT "$pid"
t0=$(date +%s)
i=0
while kill -0 "$pid" 2>/dev/null; do
  i=$((i + 1))
  [ $i -le $((BOUND * 10)) ] || fail "still running $BOUND s after SIGINT"
  sleep 0.1
done
wait "$pid"
rc=$?
pid=
echo "gst-launch-1.0 exited $rc, $(($(date +%s) - t0)) s after SIGINT"
[ "$rc" -eq 0 ] || fail "exit status $rc"
grep -q "EOS received" "$dir/log" || fail "no EOS on the bus"

pushed=$(chains)
read=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=nb_read_frames -of csv=p=0 "$dir/out.mp4") ||
  fail "ffprobe cannot read the MP4"
echo "frames to the encoder: $pushed, frames in the MP4: $read"
[ "$pushed" -ge 9 ] || fail "fewer frames than one chunk ($pushed)"
[ "$read" = "$pushed" ] || fail "the MP4 holds $read frames, $pushed were pushed"
exit 0
