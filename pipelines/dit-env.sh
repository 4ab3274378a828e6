# dit-env.sh — sourced by the scripts in pipelines/, not run by itself.
# When the dit plugin is not installed (gst-inspect-1.0 ditgenerate finds
# nothing), the scripts use this checkout's build: the first of $DIT_BUILD,
# build/, build-gpu/ and build-ci/ next to pipelines/ that holds
# gst/libgstdit.so goes on GST_PLUGIN_PATH_1_0, its tools/ on PATH (for
# dit-prompt-switch) and its dit-worker into GST_DIT_WORKER (unless set).
# Neither installed nor built: a message that says what to do, exit 1.
dit_root=$(cd "$(dirname "$0")/.." && pwd)
if ! gst-inspect-1.0 ditgenerate > /dev/null 2>&1; then
  for dit_build in ${DIT_BUILD:-} "$dit_root/build" "$dit_root/build-gpu" \
      "$dit_root/build-ci"; do
    [ -f "$dit_build/gst/libgstdit.so" ] || continue
    GST_PLUGIN_PATH_1_0="$dit_build/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
    PATH="$dit_build/tools:$PATH"
    export GST_PLUGIN_PATH_1_0 PATH
    if [ -z "${GST_DIT_WORKER:-}" ] && [ -x "$dit_build/tools/dit-worker" ]; then
      GST_DIT_WORKER="$dit_build/tools/dit-worker"
      export GST_DIT_WORKER
    fi
    break
  done
  if ! gst-inspect-1.0 ditgenerate > /dev/null 2>&1; then
    echo "$(basename "$0"): the dit GStreamer plugin is not installed and" \
      "not built in $dit_root/build: build it (meson setup build &&" \
      "ninja -C build), set DIT_BUILD to a build directory, or set" \
      "GST_PLUGIN_PATH_1_0 to BUILD/gst" >&2
    exit 1
  fi
fi
