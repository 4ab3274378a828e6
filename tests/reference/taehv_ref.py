#!/usr/bin/python3
"""Independent float64 reference of TAEHV, the tiny video autoencoder of the
public madebyollin/taehv repository (taehv.py), in its Wan 2.1 form (taew2_1).

The C implementation (model/dit_taehv.c) is tested against this file.  It is
written from the published architecture and shares no code with the C side
(no weight folding, no channels-last layout, no per-block buffers):

  encoder  Conv(3, E) ReLU, then three stages TPool(E, 2|2|1) -> Conv(E, E,
           stride 2, no bias) -> 3 MemBlock(E); Conv(E, 16)
  decoder  3 tanh(x / 3), Conv(16, D0) ReLU, then three stages 3 MemBlock(Ds)
           -> nearest x2 -> TGrow(Ds, 1|2|2) -> Conv(Ds, Ds+1, no bias);
           ReLU, Conv(D3, 3)
  MemBlock relu(conv(relu(conv(relu(conv(cat[x, past])))) + x)), past = the
           block's input one frame earlier, zeros first
  TPool    frames (s t .. s t + s - 1) side by side on channels, 1x1 conv
  TGrow    1x1 conv to s C channels, channel group j becomes frame s t + j
  Conv     3x3, padding 1 (key names: the nn.Sequential indices)

Two evaluations:
  - OFFLINE, taehv.py's parallel mode: every layer over all frames at once,
    MemBlock pasts by shifting the sequence one frame; decode drops the first
    3 output frames, encode pads the end with the last frame to a multiple
    of 4;
  - STREAMING, frame by frame through the layer graph in causal order with
    per-layer memory (last input of a MemBlock, TPool's pending frames).
`selftest` checks that both agree, which is the oracle for the C streaming.

Conventions at the files (the engine's API): pixels [3, T, H, W] in
[-1, 1] (TAEHV works in [0, 1]: x01 = (x + 1) / 2, decoded y -> 2 clamp(y,
0, 1) - 1), latents [16, F, h, w].  --latents raw decodes Wan's raw latents
(LightTAE): z * std + mean first.  Weights: safetensors (st_io) or a torch
.pth state dict; an oversized TGrow weight is cut to its last rows as
taehv.py's patch_tgrow_layers does.  Everything is float64 on the CPU.
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch = None
F = None
DTYPE = None

POOL = (2, 2, 1)        # encoder TPool strides
GROW = (1, 2, 2)        # decoder TGrow strides
TRIM = 3                # decoder frames dropped at the start of a stream
LATENT_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENT_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
PRESETS = {"taew2_1": (64, (256, 128, 64, 64)), "tiny": (8, (32, 16, 8, 8))}


class RefError(Exception):
  pass


def import_torch():
  global torch, F, DTYPE
  if torch is None:
    try:
      import torch as torch_module
      import torch.nn.functional as functional
    except ImportError:
      return False
    torch, F, DTYPE = torch_module, functional, torch_module.float64
    torch.set_num_threads(1)
  return True


# --------------------------------------------------------------------------
# layers (x is [T, C, H, W], the batch of frames taehv.py runs at once)

def conv(x, w, b=None, stride=1, pad=None):
  """Conv2d as unfold + GEMM (float64 conv2d is slow in torch 1.13)."""
  k = w.shape[-1]
  if pad is None:
    pad = (k - 1) // 2
  t, c, h, wd = x.shape
  ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
  cols = F.unfold(x, k, padding=pad, stride=stride)        # [T, C k k, L]
  y = w.reshape(w.shape[0], -1) @ cols                      # [T, O, L]
  if b is not None:
    y = y + b.reshape(1, -1, 1)
  return y.reshape(t, w.shape[0], ho, wo)


def memblock(W, prefix, x, past):
  h = torch.cat([x, past], 1)
  h = F.relu(conv(h, W[prefix + ".conv.0.weight"], W[prefix + ".conv.0.bias"]))
  h = F.relu(conv(h, W[prefix + ".conv.2.weight"], W[prefix + ".conv.2.bias"]))
  h = conv(h, W[prefix + ".conv.4.weight"], W[prefix + ".conv.4.bias"])
  return F.relu(h + x)


def tpool(w, x, s):
  t, c, h, wd = x.shape
  return conv(x.reshape(t // s, s * c, h, wd), w)


def tgrow(w, x, s):
  t, c, h, wd = x.shape
  return conv(x, w).reshape(t * s, c, h, wd)


def upsample(x):
  return x.repeat_interleave(2, 2).repeat_interleave(2, 3)


# --------------------------------------------------------------------------
# the layer graph: a list of (kind, arg) run in order

def decoder_layers(W):
  L = [("fn", lambda x: 3.0 * torch.tanh(x / 3.0)),
       ("fn", lambda x: F.relu(conv(x, W["decoder.1.weight"], W["decoder.1.bias"])))]
  for s in range(3):
    for b in range(3):
      L.append(("mem", "decoder.%d" % (3 + 6 * s + b)))
    L.append(("fn", upsample))
    L.append(("grow", (W["decoder.%d.conv.weight" % (7 + 6 * s)], GROW[s])))
    w = W["decoder.%d.weight" % (8 + 6 * s)]
    L.append(("fn", lambda x, w=w: conv(x, w)))
  L.append(("fn", F.relu))
  L.append(("fn", lambda x: conv(x, W["decoder.22.weight"], W["decoder.22.bias"])))
  return L


def encoder_layers(W):
  L = [("fn", lambda x: F.relu(conv(x, W["encoder.0.weight"], W["encoder.0.bias"])))]
  for s in range(3):
    L.append(("pool", (W["encoder.%d.conv.weight" % (2 + 5 * s)], POOL[s])))
    w = W["encoder.%d.weight" % (3 + 5 * s)]
    L.append(("fn", lambda x, w=w: conv(x, w, stride=2)))
    for b in range(3):
      L.append(("mem", "encoder.%d" % (4 + 5 * s + b)))
  L.append(("fn", lambda x: conv(x, W["encoder.17.weight"], W["encoder.17.bias"])))
  return L


def run_offline(W, layers, x):
  for kind, arg in layers:
    if kind == "fn":
      x = arg(x)
    elif kind == "mem":
      past = torch.cat([torch.zeros_like(x[:1]), x[:-1]], 0)
      x = memblock(W, arg, x, past)
    elif kind == "pool":
      x = tpool(arg[0], x, arg[1])
    else:
      x = tgrow(arg[0], x, arg[1])
  return x


class Stream:
  """Frame-by-frame evaluation with per-layer memory, depth first."""

  def __init__(self, W, layers):
    self.W, self.layers = W, layers
    self.memory = [None] * len(layers)
    self.out = []

  def push(self, x, i=0):
    """x: one frame [1, C, H, W] entering layer i."""
    while i < len(self.layers):
      kind, arg = self.layers[i]
      if kind == "fn":
        x = arg(x)
      elif kind == "mem":
        past = self.memory[i] if self.memory[i] is not None else torch.zeros_like(x)
        self.memory[i] = x
        x = memblock(self.W, arg, x, past)
      elif kind == "pool":
        pending = (self.memory[i] or []) + [x]
        if len(pending) < arg[1]:
          self.memory[i] = pending
          return
        self.memory[i] = []
        x = tpool(arg[0], torch.cat(pending, 0), arg[1])
      else:
        for f in tgrow(arg[0], x, arg[1]).split(1, 0):
          self.push(f, i + 1)
        return
      i += 1
    self.out.append(x)


# --------------------------------------------------------------------------
# model entry points (files' conventions)

def latent_in(z, raw):
  """z [16, F, h, w] -> [F, 16, h, w], raw: Wan's un-normalised latents."""
  x = z.permute(1, 0, 2, 3)
  if raw:
    std = torch.tensor(LATENT_STD, dtype=DTYPE).reshape(1, 16, 1, 1)
    mean = torch.tensor(LATENT_MEAN, dtype=DTYPE).reshape(1, 16, 1, 1)
    x = x * std + mean
  return x


def pixels_out(y):
  """[T, 3, H, W] TAEHV output -> [3, T, H, W] in [-1, 1]."""
  return (2.0 * y.clamp(0.0, 1.0) - 1.0).permute(1, 0, 2, 3)


def decode_offline(W, z, raw=False):
  y = run_offline(W, decoder_layers(W), latent_in(z, raw))
  return pixels_out(y[TRIM:])


def decode_streaming(W, z, raw=False):
  s = Stream(W, decoder_layers(W))
  for f in latent_in(z, raw).split(1, 0):
    s.push(f)
  return pixels_out(torch.cat(s.out, 0)[TRIM:])


def frames_in(p):
  """[3, T, H, W] in [-1, 1] -> [T', 3, H, W] in [0, 1], end padded to 4k."""
  x = ((p + 1.0) / 2.0).permute(1, 0, 2, 3)
  n = (-x.shape[0]) % 4
  if n:
    x = torch.cat([x, x[-1:].expand(n, -1, -1, -1)], 0)
  return x


def encode_offline(W, p):
  return run_offline(W, encoder_layers(W), frames_in(p)).permute(1, 0, 2, 3)


def encode_streaming(W, p):
  s = Stream(W, encoder_layers(W))
  for f in frames_in(p).split(1, 0):
    s.push(f)
  return torch.cat(s.out, 0).permute(1, 0, 2, 3)


# --------------------------------------------------------------------------
# weights

def param_spec(enc, dec, z=16):
  """[(name, shape)] in state-dict order, from the architecture."""
  out = []

  def cv(name, o, i, k, bias=True):
    out.append((name + ".weight", (o, i, k, k)))
    if bias:
      out.append((name + ".bias", (o,)))

  def mem(name, c):
    cv(name + ".conv.0", c, 2 * c, 3)
    cv(name + ".conv.2", c, c, 3)
    cv(name + ".conv.4", c, c, 3)

  cv("encoder.0", enc, 3, 3)
  for s in range(3):
    cv("encoder.%d.conv" % (2 + 5 * s), enc, enc * POOL[s], 1, False)
    cv("encoder.%d" % (3 + 5 * s), enc, enc, 3, False)
    for b in range(3):
      mem("encoder.%d" % (4 + 5 * s + b), enc)
  cv("encoder.17", z, enc, 3)
  cv("decoder.1", dec[0], z, 3)
  for s in range(3):
    for b in range(3):
      mem("decoder.%d" % (3 + 6 * s + b), dec[s])
    cv("decoder.%d.conv" % (7 + 6 * s), dec[s] * GROW[s], dec[s], 1, False)
    cv("decoder.%d" % (8 + 6 * s), dec[s + 1], dec[s], 3, False)
  cv("decoder.22", 3, dec[3], 3)
  return out


def random_weights(enc, dec, seed):
  g = torch.Generator().manual_seed(seed)
  W = {}
  for name, shape in param_spec(enc, dec):
    if name.endswith(".bias"):
      W[name] = 0.05 * torch.randn(shape, generator=g, dtype=DTYPE)
    else:
      W[name] = torch.randn(shape, generator=g, dtype=DTYPE) / math.sqrt(math.prod(shape[1:]))
  return W


def check_weights(W, path):
  """Widths from the shapes, then every key and shape of the architecture."""
  try:
    enc = int(W["encoder.0.weight"].shape[0])
    dec = tuple(int(W["decoder.%d.weight" % i].shape[0]) for i in (1, 8, 14, 20))
  except KeyError as e:
    raise RefError("%s: not a TAEHV state dict (no %s)" % (path, e))
  spec = dict(param_spec(enc, dec))
  for s in range(3):   # patch_tgrow_layers: keep the last-timestep rows
    k = "decoder.%d.conv.weight" % (7 + 6 * s)
    if k in W and W[k].shape[0] > spec[k][0]:
      W[k] = W[k][-spec[k][0]:]
  for name, shape in spec.items():
    if name not in W:
      raise RefError("%s: missing tensor %s" % (path, name))
    if tuple(W[name].shape) != shape:
      raise RefError("%s: %s has shape %s, expected %s" % (path, name, list(W[name].shape),
                                                         list(shape)))
  extra = sorted(set(W) - set(spec))
  if extra:
    raise RefError("%s: unexpected tensor %s" % (path, extra[0]))
  return W


def load_weights(path):
  import_torch()
  if path.endswith((".pth", ".pt")):
    sd = torch.load(path, map_location="cpu")
    W = {k: v.to(DTYPE) for k, v in sd.items()}
  else:
    arrays, _ = st_io.read(path)
    W = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
  return check_weights(W, path)


def read_tensor(path, name):
  arrays, _ = st_io.read(path)
  if name not in arrays:
    raise RefError("%s: no tensor named '%s' (has: %s)" % (path, name, ", ".join(sorted(arrays))))
  a = arrays[name]
  if a.ndim != 4:
    raise RefError("%s: '%s' has shape %s, expected 4 dims" % (path, name, list(a.shape)))
  return torch.from_numpy(np.asarray(a, dtype=np.float64))


def write_tensor(path, name, t):
  st_io.write(path, {name: t.numpy().astype(np.float32)})


# --------------------------------------------------------------------------
# selftest

def rel_l2(a, b):
  return float((a - b).norm() / max(float(b.norm()), 1e-300))


def selftest(args):
  import_torch()
  failures = []

  def check(name, ok, detail=""):
    print("%-58s %s %s" % (name, "ok" if ok else "FAIL", detail))
    if not ok:
      failures.append(name)

  g = torch.Generator().manual_seed(1)
  # layer semantics against explicit index formulas
  x = torch.randn(4, 3, 2, 2, generator=g, dtype=DTYPE)
  w = torch.randn(3, 6, 1, 1, generator=g, dtype=DTYPE)
  y = tpool(w, x, 2)
  want = torch.einsum("oi,tihw->tohw", w[:, :3, 0, 0], x[0::2]) + \
      torch.einsum("oi,tihw->tohw", w[:, 3:, 0, 0], x[1::2])
  check("TPool: channels [0, C) from frame 2t, [C, 2C) from 2t+1", rel_l2(y, want) < 1e-14)
  w = torch.randn(6, 3, 1, 1, generator=g, dtype=DTYPE)
  y = tgrow(w, x, 2)
  ok = all(rel_l2(y[2 * t + j], torch.einsum("oi,ihw->ohw", w[3 * j:3 * j + 3, :, 0, 0], x[t]))
           < 1e-14 for t in range(4) for j in range(2))
  check("TGrow: rows [jC, (j+1)C) become frame 2t+j", ok)
  w = torch.randn(5, 3, 3, 3, generator=g, dtype=DTYPE)
  b = torch.randn(5, generator=g, dtype=DTYPE)
  check("conv (unfold GEMM) == F.conv2d, stride 1 and 2",
        rel_l2(conv(x, w, b), F.conv2d(x, w, b, padding=1)) < 1e-13
        and rel_l2(conv(x, w, b, stride=2), F.conv2d(x, w, b, stride=2, padding=1)) < 1e-13)

  enc, dec = PRESETS["tiny"]
  W = random_weights(enc, dec, 7)
  W = check_weights(W, "random")
  z = torch.randn(16, 5, 4, 6, generator=g, dtype=DTYPE)
  a, s = decode_offline(W, z), decode_streaming(W, z)
  check("decode: 5 latents -> 17 frames", tuple(a.shape) == (3, 17, 32, 48), str(list(a.shape)))
  check("decode: streaming == offline", rel_l2(s, a) < 1e-12, "%.2e" % rel_l2(s, a))
  one = torch.cat([decode_offline(W, z[:, :k])[:, -4 if k > 1 else -1:] for k in range(1, 6)], 1)
  check("decode: causal (prefix decodes agree)", rel_l2(one, a) < 1e-12)
  check("decode: output in [-1, 1] and not constant",
        float(a.abs().max()) <= 1.0 and float(a.std()) > 1e-3)
  r = decode_offline(W, z, raw=True)
  check("decode: raw latents differ", rel_l2(r, a) > 1e-3)
  p = torch.rand(3, 9, 32, 48, generator=g, dtype=DTYPE) * 2 - 1
  a, s = encode_offline(W, p), encode_streaming(W, p)
  check("encode: 9 frames -> 3 latents", tuple(a.shape) == (16, 3, 4, 6), str(list(a.shape)))
  check("encode: streaming == offline", rel_l2(s, a) < 1e-12, "%.2e" % rel_l2(s, a))
  pad = torch.cat([p, p[:, -1:].expand(-1, 3, -1, -1)], 1)
  check("encode: end padding repeats the last frame", rel_l2(encode_offline(W, pad), a) < 1e-14)
  check("encode: latent k does not see frames after 4k+3",
        rel_l2(encode_offline(W, p[:, :8])[:, :2], a[:, :2]) < 1e-14)
  n = sum(math.prod(sh) for _, sh in param_spec(*PRESETS["taew2_1"]))
  ne = sum(math.prod(sh) for k, sh in param_spec(*PRESETS["taew2_1"]) if k.startswith("encoder."))
  check("taew2_1 widths: 1470928 encoder + 9844611 decoder parameters",
        ne == 1470928 and n - ne == 9844611, "%d + %d" % (ne, n - ne))
  if failures:
    print("selftest: %d failure(s)" % len(failures))
    return 1
  print("selftest: all ok")
  return 0


# --------------------------------------------------------------------------
# commands

def cmd_decode(args):
  W = load_weights(args.weights)
  z = read_tensor(args.input, "latents")
  write_tensor(args.out, "pixels", decode_offline(W, z, args.latents == "raw"))
  return 0


def cmd_encode(args):
  W = load_weights(args.weights)
  p = read_tensor(args.input, "pixels")
  if (p.shape[1] - 1) % 4:
    raise RefError("%s: %d frames; the engine's streams have 1 + 4k" % (args.input, p.shape[1]))
  write_tensor(args.out, "latents", encode_offline(W, p))
  return 0


def cmd_make_inputs(args):
  rng = np.random.default_rng(args.seed)
  if args.out_pixels:
    # smooth frames (a random colour field moving a little per frame)
    t = np.arange(args.frames).reshape(1, -1, 1, 1)
    yy = np.arange(args.height).reshape(1, 1, -1, 1)
    xx = np.arange(args.width).reshape(1, 1, 1, -1)
    ph = rng.uniform(0, 6.3, size=(3, 1, 1, 1))
    fr = rng.uniform(0.05, 0.3, size=(3, 1, 1, 1))
    p = 0.8 * np.sin(fr * xx + 0.7 * fr * yy + ph + 0.2 * t) \
        + 0.1 * rng.standard_normal((3, args.frames, args.height, args.width))
    st_io.write(args.out_pixels, {"pixels": np.clip(p, -1, 1).astype(np.float32)})
  if args.out_latents:
    z = rng.standard_normal((16, args.latents, args.height // 8, args.width // 8))
    st_io.write(args.out_latents, {"latents": z.astype(np.float32)})
  return 0


def cmd_save_pth(args):
  """A random TAEHV state dict saved with torch.save, as the published
  .pth files are (fp16 like taew2_1.pth unless --dtype f32)."""
  import_torch()
  enc, dec = PRESETS[args.preset]
  W = random_weights(enc, dec, args.seed)
  if args.tall_grow:
    # a TGrow weight with twice the rows, which patch_tgrow_layers cuts
    k = "decoder.7.conv.weight"
    extra = torch.randn(W[k].shape, generator=torch.Generator().manual_seed(99), dtype=DTYPE)
    W[k] = torch.cat([extra, W[k]], 0)
  dt = torch.float16 if args.dtype == "f16" else torch.float32
  torch.save({k: v.to(dt) for k, v in W.items()}, args.out)
  return 0


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  sub = ap.add_subparsers(dest="cmd", required=True)
  sub.add_parser("selftest", help="layer semantics, streaming == offline, parameter counts")
  d = sub.add_parser("decode", help="'latents' [16,F,h,w] -> 'pixels' [3,4F-3,H,W]")
  d.add_argument("--weights", required=True)
  d.add_argument("--input", required=True)
  d.add_argument("--out", required=True)
  d.add_argument("--latents", choices=("normalised", "raw"), default="normalised")
  e = sub.add_parser("encode", help="'pixels' [3,1+4k,H,W] -> 'latents' [16,1+k,h,w]")
  e.add_argument("--weights", required=True)
  e.add_argument("--input", required=True)
  e.add_argument("--out", required=True)
  m = sub.add_parser("make-inputs", help="random pixels and latents")
  m.add_argument("--height", type=int, default=64)
  m.add_argument("--width", type=int, default=64)
  m.add_argument("--frames", type=int, default=9)
  m.add_argument("--latents", type=int, default=5)
  m.add_argument("--seed", type=int, default=0)
  m.add_argument("--out-pixels")
  m.add_argument("--out-latents")
  s = sub.add_parser("save-pth", help="a random state dict as a torch .pth")
  s.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--dtype", choices=("f16", "f32"), default="f16")
  s.add_argument("--tall-grow", action="store_true",
                 help="decoder.7's TGrow with twice the rows (cut on load)")
  s.add_argument("--out", required=True)
  args = ap.parse_args(argv)
  if args.cmd != "make-inputs" and not import_torch():
    print("taehv_ref: this python has no torch", file=sys.stderr)
    return 77
  try:
    return {"selftest": selftest, "decode": cmd_decode, "encode": cmd_encode,
            "make-inputs": cmd_make_inputs, "save-pth": cmd_save_pth}[args.cmd](args)
  except (RefError, st_io.SafetensorsError) as e:
    print("taehv_ref: %s" % e, file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
