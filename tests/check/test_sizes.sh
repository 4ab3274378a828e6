#!/bin/sh
# Sizes that are not multiples of 16: each of these lines must fail (exit
# status not 0) with a message that names the size and the
# rule.  This caught the caps mapping dropping such sizes in the caps query
# path, so that users saw "could not link ditencode0 to ditgenerate0" or
# "downstream accepts no latent caps" instead of the cause.
#   test_sizes.sh PIPELINES_DIR
set -u
pipelines=${1:?usage: test_sizes.sh PIPELINES_DIR}
RULE="width and height must be positive multiples of 16 pixels"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failed=0

# expect SIZE COMMAND...: the command fails and its output names SIZE and
# RULE.  gst-launch-1.0 (1.22) can miss an error posted before its main loop
# runs and then never exits (x264enc with a size it refuses does the same):
# once the message is out, a command still running 5 s later is stopped.
expect() {
  size=$1; shift
  "$@" > "$dir/out" 2>&1 &
  pid=$!
  i=0
  while kill -0 $pid 2>/dev/null; do
    i=$((i + 1))
    if grep -q "$RULE" "$dir/out"; then
      [ $i -le 50 ] || { kill -9 $pid; echo "(stopped after the error)"; }
    elif [ $i -gt 600 ]; then
      kill -9 $pid
    fi
    sleep 0.1
  done
  wait $pid
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL (exit 0, expected an error): $*"; tail -5 "$dir/out"
    failed=1
  elif ! grep -q "$size" "$dir/out" || ! grep -q "$RULE" "$dir/out"; then
    echo "FAIL (exit $rc, no message naming $size and the rule): $*"
    grep -E "ERROR|WARNING" "$dir/out" | head -5
    failed=1
  else
    echo "ok: $*"; grep -m1 "$RULE" "$dir/out"
  fi
}

# the tiny presets on every element: the sizes, not the weights, are checked
gen="ditgenerate model=tiny vae-model=tiny text-model=tiny"
codec="vae-model=tiny"
# shellcheck disable=SC2086
expect 100x60 gst-launch-1.0 videotestsrc num-buffers=20 ! \
  video/x-raw,width=100,height=60 ! ditencode $codec ! $gen ! queue ! \
  ditdecode $codec ! fakesink
# shellcheck disable=SC2086
expect 100x60 gst-launch-1.0 videotestsrc num-buffers=20 ! \
  video/x-raw,width=100,height=60 ! ditencode $codec ! fakesink
# shellcheck disable=SC2086
expect 100x100 gst-launch-1.0 $gen num-chunks=1 ! ditdecode $codec ! \
  video/x-raw,width=100,height=100 ! fakesink
expect 100x100 sh "$pipelines/t2v-mp4.sh" -m tiny -s 100x100 -n 1 -o "$dir/t2v.mp4"
expect 100x60 sh "$pipelines/v2v-file.sh" -m tiny -s 100x60 -n 9 -o "$dir/v2v.mp4"
exit $failed
