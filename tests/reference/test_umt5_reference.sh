#!/bin/sh
# The C umT5 encoder (dit-text, tiny preset, f32) against the independent
# float64 PyTorch reference (umt5_ref.py) on the same synthetic checkpoint
# and the same ids, relative L2 <= 1e-4:
#   - a short prompt, the empty prompt ([EOS] only), a 2,000-character
#     prompt (truncated to 512 ids: distances past max_distance 128 reach
#     the last bucket), and explicit ids covering the whole vocabulary range.
# First the reference's own bucket function is checked against spec §6.4.
# usage: test_umt5_reference.sh BUILD_DIR
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
text="$build/tools/dit-text"
if ! $py -c 'import torch' 2>/dev/null; then
  echo "SKIP: $py has no torch (install python3-torch)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== reference selftest"
$py "$here/umt5_ref.py" selftest

"$build/tools/dit-weights" make --kind text --preset tiny --seed 11 -o "$tmp/t5.safetensors"

long=$($py -c 'print(", ".join(["a red fox in the snow at dawn"] * 70)[:2000])')
n=0
check () {   # check NAME IDS
  n=$((n + 1))
  "$text" encode --model "$tmp/t5.safetensors" --ids "$2" -o "$tmp/c$n.safetensors"
  $py "$here/umt5_ref.py" encode "$tmp/t5.safetensors" --ids "$2" -o "$tmp/r$n.safetensors"
  echo "== $1 ($(echo "$2" | tr ',' '\n' | wc -l) ids)"
  $py "$here/compare.py" "$tmp/c$n.safetensors" "$tmp/r$n.safetensors" --tol 1e-4
}
ids_of () {
  "$text" tokenize -- "$1" | tr ' ' ','
}
if "$text" tokenize "x" >/dev/null 2>&1; then
  check "short prompt" "$(ids_of 'a koi pond at dawn, drone shot')"
  check "empty prompt" "$(ids_of '')"
  ids=$(ids_of "$long")
  count=$(echo "$ids" | tr ',' '\n' | wc -l)
  if [ "$count" -ne 512 ]; then
    echo "FAIL: the 2,000-character prompt gave $count ids, expected 512"
    exit 1
  fi
  check "2,000-character prompt" "$ids"
else
  echo "(no tokenizer in this build: ids only)"
fi
check "ids over the vocabulary" "$($py -c 'print(",".join(str((i * 37) % 640) for i in range(300)))')"
echo "umt5 reference: all cases within 1e-4"
