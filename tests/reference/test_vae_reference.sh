#!/bin/sh
# The C WanVAE against the independent float64 reference (vae_ref.py), on a
# tiny synthetic checkpoint and identical random inputs (relative L2 <= 1e-4):
#   - streaming encode of 9 frames (frame 0, then 4 + 4)
#   - streaming decode of 5 latents, one per call (17 frames)
#   - anchor encode of one frame with a fresh cache
# Before that it checks the oracle itself (vae_ref.py selftest: streaming ==
# offline, spec §5.7 parameter counts) and tools/convert-pth.py (round trip
# of a torch.save zip checkpoint).
# usage: test_vae_reference.sh BUILD_DIR
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
if ! $py -c 'import torch' 2>/dev/null; then
  echo "SKIP: $py has no torch (install python3-torch)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== reference selftest"
$py "$here/vae_ref.py" selftest

echo "== convert-pth round trip"
$py - "$src/tools/convert-pth.py" "$here" "$tmp" <<'EOF'
import contextlib, importlib.util, io, sys
import torch
conv, here, tmp = sys.argv[1:4]
sys.path.insert(0, here)
import st_io
spec = importlib.util.spec_from_file_location("convert_pth", conv)
convert_pth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert_pth)

def run(args):
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    rc = convert_pth.main(args)
  return rc, err.getvalue()

g = torch.Generator().manual_seed(0)
sd = {"model.a.weight": torch.randn(3, 4, generator=g),
      "model.b": torch.randn(5, generator=g).to(torch.bfloat16),
      "model.c": torch.randn(2, 2, 2, generator=g).double(),
      "model.h": torch.randn(7, generator=g).half(),
      "model.t": torch.randn(4, 6, generator=g).t()}      # non-contiguous
torch.save({"generator": sd, "generator_ema": {k: 2 * v for k, v in sd.items()},
            "step": 5}, tmp + "/ck.pt")
torch.save(sd, tmp + "/plain.pth")
cases = [
    (["ck.pt", "o1.st", "--strip-prefix", "model."], {k[6:]: 2 * v for k, v in sd.items()}, None),
    (["ck.pt", "o2.st", "--key", "generator", "--dtype", "bf16"], sd, torch.bfloat16),
    (["plain.pth", "o3.st", "--dtype", "f32"], sd, torch.float32),
]
names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float64: "F64", torch.float16: "F16"}
bad = 0
for args, ref, dt in cases:
  rc, err = run([tmp + "/" + a if a.endswith((".pt", ".pth", ".st")) else a for a in args])
  if rc != 0:
    print("convert %s failed: %s" % (args, err.strip()))
    bad += 1
    continue
  got, _ = st_io.read(tmp + "/" + args[1])
  header, _, _ = st_io.read_header(tmp + "/" + args[1])
  if set(got) != set(ref):
    print("convert %s: keys %s, expected %s" % (args, sorted(got), sorted(ref)))
    bad += 1
  for k, v in ref.items():
    want = v if dt is None else v.to(dt)
    ok = (k in got and header[k]["dtype"] == names[want.dtype]
          and torch.equal(torch.from_numpy(got[k].copy()).double(), want.double()))
    print("convert %-40s %-6s %s" % (" ".join(args[2:]) or "(auto)", k, "ok" if ok else "FAIL"))
    bad += not ok
rc, err = run([tmp + "/ck.pt", tmp + "/o4.st", "--key", "nope"])
one_line = rc == 1 and len(err.strip().splitlines()) == 1
print("convert: missing --key is a one-line error:", "ok" if one_line else "FAIL " + err)
bad += not one_line
sys.exit(1 if bad else 0)
EOF

tool="$build/tools/dit-vae"
$py "$here/vae_ref.py" make-inputs --height 64 --width 64 --frames 9 --latents 5 --seed 5 \
  --out-pixels "$tmp/p.safetensors" --out-latents "$tmp/l.safetensors"
$py "$here/vae_ref.py" make-inputs --height 64 --width 64 --frames 1 --latents 1 --seed 6 \
  --out-pixels "$tmp/p1.safetensors"
if [ ! -x "$tool" ]; then
  # Reference half only (the C tool is not built): exercise it on its own weights.
  $py "$here/vae_ref.py" make-weights --base-dim 8 --seed 1 --out "$tmp/w.safetensors"
  $py "$here/vae_ref.py" encode --weights "$tmp/w.safetensors" --input "$tmp/p.safetensors" \
    --out "$tmp/lat_r.safetensors"
  $py "$here/vae_ref.py" decode --weights "$tmp/w.safetensors" --input "$tmp/l.safetensors" \
    --out "$tmp/pix_r.safetensors"
  $py "$here/vae_ref.py" anchor --weights "$tmp/w.safetensors" --input "$tmp/p1.safetensors" \
    --out "$tmp/anc_r.safetensors"
  echo "SKIP: $tool not built; reference half ran"
  exit 77
fi

"$build/tools/dit-weights" make --kind vae --preset tiny --seed 1 -o "$tmp/w.safetensors"

echo "== streaming encode, 9 frames"
"$tool" encode-tensor --vae "$tmp/w.safetensors" --input "$tmp/p.safetensors" \
  -o "$tmp/lat_c.safetensors"
$py "$here/vae_ref.py" encode --weights "$tmp/w.safetensors" --input "$tmp/p.safetensors" \
  --out "$tmp/lat_r.safetensors"
$py "$here/compare.py" "$tmp/lat_c.safetensors" "$tmp/lat_r.safetensors" --tol 1e-4

echo "== streaming decode, 5 latents one per call"
"$tool" decode-tensor --vae "$tmp/w.safetensors" --input "$tmp/l.safetensors" \
  -o "$tmp/pix_c.safetensors"
$py "$here/vae_ref.py" decode --weights "$tmp/w.safetensors" --input "$tmp/l.safetensors" \
  --out "$tmp/pix_r.safetensors"
$py "$here/compare.py" "$tmp/pix_c.safetensors" "$tmp/pix_r.safetensors" --tol 1e-4

echo "== anchor encode, 1 frame"
"$tool" anchor-tensor --vae "$tmp/w.safetensors" --input "$tmp/p1.safetensors" \
  -o "$tmp/anc_c.safetensors"
$py "$here/vae_ref.py" anchor --weights "$tmp/w.safetensors" --input "$tmp/p1.safetensors" \
  --out "$tmp/anc_r.safetensors"
$py "$here/compare.py" "$tmp/anc_c.safetensors" "$tmp/anc_r.safetensors" --tol 1e-4
echo "VAE reference match: OK"
