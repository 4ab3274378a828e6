#!/bin/sh
# Run the envelope fuzz target for a bounded time over a fresh seed corpus.
#   run_fuzz.sh FUZZER MAKE_CORPUS SECONDS
# Exits 77 (skip) when the fuzzer was not built (no clang/libFuzzer).
fuzzer=$1 make_corpus=$2 secs=${3:-20}
if [ ! -x "$fuzzer" ]; then
  echo "fuzz target not built (needs clang with libFuzzer)"; exit 77
fi
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$make_corpus" "$dir" || exit 1
"$fuzzer" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
  -print_final_stats=1 "$dir"
