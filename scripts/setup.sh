#!/bin/sh
# Install what gst-dit needs on Debian 12 (bookworm) and configure + build it.
#   scripts/setup.sh [BUILD_DIR]        (default: build)
# Missing Debian packages are installed with apt-get when running as root;
# otherwise the exact command to run is printed and the script stops.
# Extra meson options can be passed in DIT_MESON_OPTIONS.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}

packages="build-essential meson ninja-build pkg-config
  python3 python3-numpy python3-torch valgrind
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libgstreamer-plugins-bad1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  ffmpeg nginx libnginx-mod-rtmp libsentencepiece-dev sentencepiece clang
  libsoup-3.0-dev libjson-glib-dev gstreamer1.0-nice python3-gi
  gir1.2-gstreamer-1.0 chromium"

# Node.js runs the browser tests (playwright-core drives Debian's chromium);
# a node that is already installed (any source) is used as it is.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages="$packages nodejs npm"
fi

missing=""
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends $missing
  else
    echo "setup: missing Debian packages; run:"
    echo "  sudo apt-get install -y$missing"
    exit 1
  fi
fi

# nvcc (CUDA backend) is optional; use it when the toolkit is installed.
if [ -x /usr/local/cuda/bin/nvcc ]; then
  PATH=/usr/local/cuda/bin:$PATH
  export PATH
fi

if [ ! -f "$build/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$build" ${DIT_MESON_OPTIONS:-}
fi
ninja -C "$build"
