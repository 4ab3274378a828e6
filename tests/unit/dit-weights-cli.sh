#!/bin/sh
# dit-weights command-line smoke test: make, inspect, help, usage errors.
# Usage: dit-weights-cli.sh PATH/TO/dit-weights
set -u
tool="$1"
# Under `meson test --setup valgrind` (DIT_VALGRIND=1) every tool run is
# checked by valgrind too; a valgrind error turns into exit status 99.
vg=""
if [ "${DIT_VALGRIND:-0}" = 1 ] && command -v valgrind >/dev/null; then
  vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/dit-weights-cli-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
failed=0

fail () {
  echo "FAIL: $*" >&2
  failed=1
}

expect_rc () {
  want="$1"; shift
  $vg "$@" >"$dir/out" 2>"$dir/err"
  rc=$?
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want: $(cat "$dir/err")"
}

# make + inspect
expect_rc 0 "$tool" make --preset tiny --seed 3 --dtype bf16 -o "$dir/tiny.safetensors"
[ -s "$dir/tiny.safetensors" ] || fail "make wrote no file"
expect_rc 0 "$tool" inspect "$dir/tiny.safetensors"
grep -qx "valid tiny checkpoint" "$dir/out" || fail "inspect did not report a valid tiny checkpoint"
grep -qx "parameters: 2227008" "$dir/out" || fail "inspect parameter count"
grep -qx "bytes: 4454016" "$dir/out" || fail "inspect bf16 byte count"
grep -q "^metadata: format=gst-dit kind=dit preset=tiny seed=3$" "$dir/out" \
  || fail "inspect metadata"
grep -q "^  blocks.1.modulation  *\[1, 6, 256\]  *BF16$" "$dir/out" \
  || fail "inspect tensor line"

# the same seed gives the same file; another seed a different one
expect_rc 0 "$tool" make --preset tiny --seed 3 --dtype bf16 -o "$dir/again.safetensors"
cmp -s "$dir/tiny.safetensors" "$dir/again.safetensors" || fail "make is not reproducible"
expect_rc 0 "$tool" make --preset tiny --seed 4 --dtype bf16 -o "$dir/other.safetensors"
cmp -s "$dir/tiny.safetensors" "$dir/other.safetensors" && fail "seed does not change the weights"

# inspect through a directory
mkdir "$dir/d" && cp "$dir/tiny.safetensors" "$dir/d/model.safetensors"
expect_rc 0 "$tool" inspect "$dir/d"
grep -qx "valid tiny checkpoint" "$dir/out" || fail "inspect of a directory"

# help and usage errors
expect_rc 0 "$tool" --help
grep -q "Usage: dit-weights" "$dir/out" || fail "--help prints usage"
expect_rc 0 "$tool" make --help
expect_rc 2 "$tool" make --preset tiny --bogus -o "$dir/x.safetensors"
grep -q "^dit-weights: .*--bogus" "$dir/err" || fail "bad flag message: $(cat "$dir/err")"
expect_rc 2 "$tool"
expect_rc 2 "$tool" frobnicate
expect_rc 2 "$tool" make --preset tiny
expect_rc 2 "$tool" make --preset huge -o "$dir/x.safetensors"
expect_rc 2 "$tool" make --preset tiny --dtype f64 -o "$dir/x.safetensors"
expect_rc 2 "$tool" make --preset tiny --seed -1 -o "$dir/x.safetensors"
expect_rc 2 "$tool" inspect
[ -e "$dir/x.safetensors" ] && fail "a usage error wrote a file"

# failures
expect_rc 1 "$tool" inspect "$dir/missing.safetensors"
grep -q "^dit-weights: .*missing.safetensors" "$dir/err" \
  || fail "missing file message: $(cat "$dir/err")"
head -c 1000 "$dir/tiny.safetensors" > "$dir/cut.safetensors"
expect_rc 1 "$tool" inspect "$dir/cut.safetensors"
grep -q "cut.safetensors" "$dir/err" || fail "truncated file message: $(cat "$dir/err")"
expect_rc 1 "$tool" make --preset tiny -o "$dir/no/such/dir/x.safetensors"
grep -q "^dit-weights: .*x.safetensors" "$dir/err" || fail "unwritable output message"

# LoRA: inspect recognises one by its keys, merge-lora merges it
python3 - "$dir/lora.safetensors" <<'PY'
import json, struct, sys
def tensor(shape, seed):
    n = 1
    for d in shape:
        n *= d
    vals = [((i * 7919 + seed * 104729) % 1000 - 500) / 5000.0 for i in range(n)]
    return shape, struct.pack("<%df" % n, *vals)
ts = {}
for b in range(2):
    m = "lora_unet_blocks_%d_self_attn_q" % b
    ts[m + ".lora_down.weight"] = tensor([8, 256], b)
    ts[m + ".lora_up.weight"] = tensor([256, 8], b + 5)
    ts[m + ".alpha"] = ([], struct.pack("<f", 4.0))
hdr, off, blobs = {}, 0, []
for k, (shape, blob) in ts.items():
    hdr[k] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
    off += len(blob)
    blobs.append(blob)
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
expect_rc 0 "$tool" inspect "$dir/lora.safetensors"
grep -q "^lora: format kohya (lora_down/lora_up), 2 targets" "$dir/out" \
  || fail "inspect LoRA format line: $(cat "$dir/out")"
grep -qx "rank: 8" "$dir/out" || fail "inspect LoRA rank"
grep -qx "alpha: 4" "$dir/out" || fail "inspect LoRA alpha"
grep -q "^  blocks.1.self_attn.q  *low-rank rank 8  *\[256, 256\] alpha 4" "$dir/out" \
  || fail "inspect LoRA target line"
grep -qx "valid LoRA for tiny" "$dir/out" || fail "inspect LoRA validity"
expect_rc 1 "$tool" inspect "$dir/lora.safetensors" --preset wan-1.3b
grep -q "shape does not fit layer 'blocks.0.self_attn.q' of model wan-1.3b" \
  "$dir/err" || fail "LoRA against another preset: $(cat "$dir/err")"
expect_rc 0 "$tool" merge-lora "$dir/tiny.safetensors" "$dir/lora.safetensors:0.5" \
  -o "$dir/merged.safetensors"
expect_rc 0 "$tool" inspect "$dir/merged.safetensors"
grep -qx "valid tiny checkpoint" "$dir/out" || fail "merged checkpoint invalid"
grep -q "BF16$" "$dir/out" || fail "merge-lora keeps the base's dtype"
cmp -s "$dir/tiny.safetensors" "$dir/merged.safetensors" && fail "merge changed nothing"
expect_rc 0 "$tool" merge-lora "$dir/tiny.safetensors" "$dir/lora.safetensors:0" \
  -o "$dir/zero.safetensors"
expect_rc 2 "$tool" merge-lora "$dir/tiny.safetensors" -o "$dir/x.safetensors"
expect_rc 2 "$tool" merge-lora "$dir/tiny.safetensors" "$dir/lora.safetensors:much" \
  -o "$dir/x.safetensors"
expect_rc 1 "$tool" merge-lora "$dir/tiny.safetensors" "$dir/nope.safetensors" \
  -o "$dir/x.safetensors"
grep -q "nope.safetensors" "$dir/err" || fail "missing LoRA message: $(cat "$dir/err")"
[ -e "$dir/x.safetensors" ] && fail "a failed merge wrote a file"

[ "$failed" -eq 0 ] && echo "dit-weights-cli: all checks passed"
rm -rf "$dir"
trap - EXIT INT TERM
# The valgrind test setup also wraps this shell, and shells leak a few bytes
# by design; leaving through exec ends that valgrind session without a leak
# report, so the exit status is this script's verdict alone.
exec /bin/sh -c "exit $failed"
