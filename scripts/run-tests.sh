#!/bin/sh
# Set up, build and run the whole test suite (what CI runs).
#   scripts/run-tests.sh [BUILD_DIR]     (default: build-ci)
# Warnings are errors here.  GPU tests exit 77 (skipped) without a GPU.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-ci}
DIT_MESON_OPTIONS="-Dwerror=true ${DIT_MESON_OPTIONS:-}" sh scripts/setup.sh "$build"
# The browser tests' npm packages (pinned by tests/serve/package-lock.json).
# Without them the browser tests report SKIP (exit 77), visibly.
if [ ! -d tests/serve/node_modules ]; then
  (cd tests/serve && npm ci --no-audit --no-fund) ||
    echo "run-tests: npm ci failed; the browser tests will be skipped"
fi
meson test -C "$build" --print-errorlogs --num-processes 2
# The unit and element tests again under valgrind (leaks are errors); the
# real-size ('slow') and shell-driven ('shell') tests are left out there.
meson test -C "$build" --setup valgrind --suite unit --suite check \
  --no-suite slow --no-suite shell --print-errorlogs --num-processes 2
