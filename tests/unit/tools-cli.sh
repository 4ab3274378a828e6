#!/bin/sh
# Command-line conventions of the tools, on the tiny presets (named: the
# tools' default weights are not what is checked here):
#  - sizes are pixels, WxH: dit-generate's default is the elements' 64x64,
#    --size 96x64 is 96 wide (the y4m dit-vae decodes says so), and
#    --latent-size HxW (latent grid, the older form) gives the same file;
#  - dit-vae needs no --vae (it has a default, like the other tools);
#  - a misspelled preset lists the presets instead of "cannot open";
#  - dit-bench --help and dit-worker --help describe every option their
#    parser takes (options read from their source) and end with the
#    exit-status line, on stdout with exit status 0;
#  - dit-worker takes the layout as --mesh-parallel like the other tools,
#    --parallel as its alias.
# Each of these failed before: dit-generate made 576x320, dit-vae needed
# --vae, "tinny: cannot open", dit-bench's help went to stderr without
# option descriptions, dit-worker's listed only option names.
#   tools-cli.sh SOURCE_ROOT DIT_GENERATE DIT_VAE DIT_TEXT DIT_BENCH DIT_WORKER
set -u
src=$1 generate=$2 vae=$3 text=$4 bench=$5 worker=$6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }

# header of the y4m that dit-vae decode (tiny VAE) makes of a latents file
y4m_size() {
  "$vae" decode --vae tiny --input "$1" -o "$tmp/out.y4m" 2> "$tmp/vae.err" ||
    { cat "$tmp/vae.err"; echo "(decode failed)"; return; }
  head -n 1 "$tmp/out.y4m" | sed 's/^YUV4MPEG2 W\([0-9]*\) H\([0-9]*\) .*/\1x\2/'
}

# 1. sizes
"$generate" -m tiny -n 1 -q -o "$tmp/default.safetensors" || fail "dit-generate"
s=$(y4m_size "$tmp/default.safetensors")
[ "$s" = 64x64 ] || fail "dit-generate default size: $s, expected 64x64"
"$generate" -m tiny -n 1 -q --size 96x64 -o "$tmp/size.safetensors" || fail "--size"
s=$(y4m_size "$tmp/size.safetensors")
[ "$s" = 96x64 ] || fail "dit-generate --size 96x64 decodes to $s"
"$generate" -m tiny -n 1 -q --latent-size 8x12 -o "$tmp/latent.safetensors" ||
  fail "--latent-size"
cmp -s "$tmp/size.safetensors" "$tmp/latent.safetensors" ||
  fail "--latent-size 8x12 differs from --size 96x64"
rc=0; "$generate" -m tiny -n 1 -q --size 100x64 -o "$tmp/x" 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q "100x64" "$tmp/err" ||
  fail "--size 100x64: exit $rc, $(cat "$tmp/err")"
# --vae is optional: no usage error without it (exit 2)
rc=0; "$vae" decode --input "$tmp/default.safetensors" -o "$tmp/x" \
  > "$tmp/err" 2>&1 || rc=$?
[ $rc != 2 ] || fail "dit-vae decode without --vae: usage error: $(cat "$tmp/err")"
echo "sizes: ok"

# 2. presets: a misspelled name lists the valid ones
expect_presets() {
  want=$1; shift
  rc=0; "$@" > "$tmp/out" 2>&1 || rc=$?
  if [ $rc = 1 ] && grep -q "neither a preset ($want)" "$tmp/out"; then
    echo "ok: $(tail -n 1 "$tmp/out")"
  else
    fail "$* (exit $rc): $(cat "$tmp/out")"
  fi
}
expect_presets "demo, wan-14b, wan-1.3b, tiny, tiny-tp" \
  "$generate" --model tinny -n 1 -o "$tmp/x"
expect_presets "demo, wan, tiny" \
  "$vae" decode --vae tinny --input "$tmp/default.safetensors" -o "$tmp/x"
expect_presets "demo, umt5-xxl, tiny" "$text" --model tinny "a koi" -o "$tmp/x"

# 3. help texts
check_help() {
  tool=$1 source=$2
  rc=0; "$tool" --help > "$tmp/help" 2> "$tmp/help.err" || rc=$?
  [ $rc = 0 ] || fail "$tool --help: exit $rc"
  [ -s "$tmp/help.err" ] && fail "$tool --help writes to stderr"
  grep -q "^Exit status: 0 success" "$tmp/help" ||
    fail "$tool --help: no exit-status line"
  for opt in $(grep -o 'strcmp ([a-z]*, "--[a-z0-9-]*")' "$source" |
      sed 's/.*"\(--[a-z0-9-]*\)".*/\1/' | sort -u); do
    [ "$opt" = --help ] && continue
    # the option at the start of a line, then its description
    grep -Eq "^ +(-[a-z], )?$opt( [^ ]+)? +[A-Za-z(]" "$tmp/help" ||
      fail "$tool --help does not describe $opt"
  done
}
check_help "$bench" "$src/tools/dit-bench.c"
check_help "$worker" "$src/tools/dit-worker.c"
echo "help: checked"

# 4. dit-worker's layout option is --mesh-parallel, as in dit-generate and
#    dit-bench; --parallel (the older name, still what meshes spawn
#    workers with) is an alias.  A bad value is a usage error naming the
#    option given; before --mesh-parallel existed it was "unknown option".
"$worker" --help > "$tmp/help" 2>&1
grep -Eq "^ +--mesh-parallel L +layout:" "$tmp/help" ||
  fail "dit-worker --help does not document --mesh-parallel as the layout"
for opt in --mesh-parallel --parallel; do
  rc=0; "$worker" $opt pp --connect 127.0.0.1:1 --rank 0 > "$tmp/out" 2>&1 ||
    rc=$?
  [ $rc = 2 ] && grep -q "dit-worker: $opt: mesh layout 'pp'" "$tmp/out" ||
    fail "dit-worker $opt pp: exit $rc, $(cat "$tmp/out")"
done
echo "dit-worker --mesh-parallel: ok"
exit $failed
