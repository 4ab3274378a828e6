#!/bin/sh
# The scripts in pipelines/ as a user runs them from a checkout:
#  1. with no GST_PLUGIN_PATH_1_0 and nothing installed, each script finds
#     the plugin (and the tools it calls: dit-worker, dit-prompt-switch) in
#     the checkout's build/ by itself: t2v-mp4.sh, mesh-t2v.sh;
#  2. v2v-file.sh -n N on a file input writes exactly N frames;
#  3. prompt-change.sh with its defaults shows every prompt change (each
#     new prompt takes effect before the stream ends, as the chunk meta's
#     prompt epoch says) and writes the whole video;
#  4. prompt-change.sh (plugin on GST_PLUGIN_PATH_1_0) without
#     dit-prompt-switch anywhere says so and exits 1 (not the shell's
#     "exec: not found", 127).
# Each failed before: no script looked for the build, -n was lost on the
# way through decodebin, the defaults ended before the first change.
# The checkout is a copy of pipelines/ with build/ linked to this build.
# Every script runs with -m tiny: the mechanics are checked, not the model.
#   test_pipelines.sh PIPELINES_DIR BUILD_DIR
set -u
src=${1:?usage: test_pipelines.sh PIPELINES_DIR BUILD_DIR}
build=${2:?usage: test_pipelines.sh PIPELINES_DIR BUILD_DIR}
for e in x264enc mp4mux; do
  gst-inspect-1.0 "$e" >/dev/null 2>&1 || { echo "$e missing: skip"; exit 77; }
done
command -v ffprobe >/dev/null 2>&1 || { echo "ffprobe missing: skip"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/repo" "$tmp/bare"
cp -r "$src" "$tmp/repo/pipelines"
cp -r "$src" "$tmp/bare/pipelines"
ln -s "$(cd "$build" && pwd)" "$tmp/repo/build"
# a user's environment: no plugin path, a registry of its own
unset GST_PLUGIN_PATH_1_0 GST_PLUGIN_PATH GST_DIT_WORKER DIT_PROMPT_SWITCH
export GST_REGISTRY="$tmp/registry.bin"
failed=0
fail() { echo "FAIL: $*"; [ -f "$tmp/log" ] && tail -8 "$tmp/log"; failed=1; }
frames() {
  ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames -of csv=p=0 "$1" 2>/dev/null
}
p=$tmp/repo/pipelines

# 1. the plugin and the tools from the checkout's build
if sh "$p/t2v-mp4.sh" -m tiny -n 1 -o "$tmp/t2v.mp4" > "$tmp/log" 2>&1; then
  n=$(frames "$tmp/t2v.mp4")
  [ "$n" = 9 ] && echo "ok: t2v-mp4.sh -n 1: 9 frames" ||
    fail "t2v-mp4.sh -n 1 wrote $n frames, expected 9"
else
  fail "t2v-mp4.sh without GST_PLUGIN_PATH_1_0"
fi
if sh "$p/mesh-t2v.sh" -m tiny -n 1 -o "$tmp/mesh.mp4" > "$tmp/log" 2>&1; then
  n=$(frames "$tmp/mesh.mp4")
  [ "$n" = 9 ] && echo "ok: mesh-t2v.sh -n 1: 9 frames" ||
    fail "mesh-t2v.sh -n 1 wrote $n frames, expected 9"
else
  fail "mesh-t2v.sh without GST_PLUGIN_PATH_1_0 and GST_DIT_WORKER"
fi

# 2. v2v-file.sh -n on a file: 40 frames in, 9 used
gst-launch-1.0 -q videotestsrc num-buffers=40 pattern=ball ! \
  video/x-raw,width=64,height=64,framerate=16/1 ! x264enc ! mp4mux ! \
  filesink location="$tmp/in.mp4" > /dev/null 2>&1 || fail "making in.mp4"
for n in 9 14; do
  if sh "$p/v2v-file.sh" -m tiny -i "$tmp/in.mp4" -n $n -o "$tmp/v2v.mp4" \
      > "$tmp/log" 2>&1; then
    got=$(frames "$tmp/v2v.mp4")
    [ "$got" = $n ] && echo "ok: v2v-file.sh -i FILE -n $n: $n frames" ||
      fail "v2v-file.sh -i FILE -n $n wrote $got frames"
  else
    fail "v2v-file.sh -i FILE -n $n"
  fi
done

# 3. prompt-change.sh defaults: three prompts, both changes in effect
if sh "$p/prompt-change.sh" -m tiny -o "$tmp/prompt.mp4" > "$tmp/log" 2>&1; then
  changes=$(grep -c "^chunk [0-9]*: prompt -> " "$tmp/log")
  effect=$(grep -c "^chunk [0-9]*: prompt [0-9]* in effect" "$tmp/log")
  n=$(frames "$tmp/prompt.mp4")
  echo "prompt-change.sh: $changes changes, $effect in effect, $n frames"
  [ "$changes" = 2 ] || fail "prompt-change.sh made $changes prompt changes, expected 2"
  [ "$effect" = 2 ] || fail "prompt-change.sh: $effect of 2 changes took effect before EOS"
  [ "$n" = $((9 + 11 * 12)) ] || fail "prompt-change.sh wrote $n frames, expected 141"
else
  fail "prompt-change.sh with its defaults"
fi

# 4. no dit-prompt-switch: a message, exit 1
rc=0
PATH=/usr/bin:/bin GST_PLUGIN_PATH_1_0=$build/gst \
  sh "$tmp/bare/pipelines/prompt-change.sh" -m tiny -o "$tmp/x.mp4" \
  > "$tmp/log" 2>&1 || rc=$?
if [ $rc = 1 ] && grep -q "dit-prompt-switch" "$tmp/log" &&
    ! grep -q "exec:" "$tmp/log"; then
  echo "ok: without dit-prompt-switch: $(head -n 1 "$tmp/log")"
else
  fail "prompt-change.sh without dit-prompt-switch: exit $rc"
fi
exit $failed
