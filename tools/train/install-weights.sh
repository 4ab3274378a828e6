#!/bin/sh
# Install trained demo weights (the OUTDIR of run-gpu.sh, or of train.py)
# as the shipped model, then show what they do through the real elements:
#
#   sh tools/train/install-weights.sh DIR [BUILD_DIR]
#
#   1. copies DIR/demo-dit.safetensors, demo-vae.safetensors and
#      demo-umt5.safetensors into model/data/, printing each file's recipe
#      metadata
#   2. rebuilds BUILD_DIR (default build)
#   3. runs the demo tests (suite demo: each also shows the seeded random
#      presets failing) and the export check (the files in the C engine
#      against the trainer's modules: demo-export)
# Exit 0 when everything passed; the files stay installed either way (git
# status model/data to see them; delete them to go back to the skips).
set -eu
usage="usage: install-weights.sh DIR [BUILD_DIR]"
case ${1:-} in -h|--help) echo "$usage"; exit 0 ;; '') echo "$usage" >&2; exit 2 ;; esac
dir=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$src/build}
py=/usr/bin/python3
for f in demo-dit.safetensors demo-vae.safetensors demo-umt5.safetensors; do
  if [ ! -f "$dir/$f" ]; then
    echo "install-weights: $dir/$f: no such file" >&2
    exit 1
  fi
done
if [ ! -f "$build/build.ninja" ]; then
  echo "install-weights: $build is not a configured build directory (meson setup $build)" >&2
  exit 1
fi

echo "== installing the weights of $dir"
for f in demo-dit.safetensors demo-vae.safetensors demo-umt5.safetensors; do
  cp "$dir/$f" "$src/model/data/$f"
  $py - "$src/model/data/$f" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
m = h.get("__metadata__", {})
print("  %s: %s, seed %s, %s VAE steps, %s DiT steps" % (sys.argv[1].split("/")[-1],
      m.get("model"), m.get("seed"), m.get("vae_steps"), m.get("dit_steps")))
EOF
done
du -ch "$src"/model/data/demo-*.safetensors | tail -1 | sed 's/^/  together /'

echo "== build"
ninja -C "$build" -j2 >/dev/null

echo "== demo tests and export check"
rc=0
meson test -C "$build" --suite demo --num-processes 2 >/dev/null || rc=1
# each check's measurements, for the demo model and the random presets
grep -hE "(demo model|random tiny): |^FAIL: " "$build"/meson-logs/testlog.txt || true
meson test -C "$build" --print-errorlogs demo-export || rc=1
[ $rc -eq 0 ] && echo "install-weights: all passed" || echo "install-weights: FAILED (see above)"
exit $rc
