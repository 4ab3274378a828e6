#!/usr/bin/python3
"""Independent float64 reference of the Wan2.1 VAE (WanVAE), spec §5.

The C VAE (model/dit_vae.c) is tested against this file, so it is written from
docs/reference/wan2.1-spec.md §5 alone and shares no code with the C side:

  - primitives §5.2 (causal conv3d, RMS_norm, residual block, per-frame
    attention, resample modes), topology §5.3/§5.4, latent normalisation §5.5;
  - the streaming semantics of §5.6 with one 2-frame cache per causal conv,
    keyed by the conv's checkpoint name: encoder chunks are frame 0 alone and
    then 4 frames, the decoder takes one latent per call;
  - an OFFLINE path that runs every temporal op once over the whole sequence
    (plain causal convs with zero padding at t < 0, the stride-2 time conv as
    one valid conv with frame 0 passed through, the upsampling time conv with
    the latent-0 features replaced by zeros).  `selftest` checks that the
    streaming path equals it, which is the cache logic's own oracle.

Everything runs in torch.float64 on the CPU; files are float32 safetensors
(tests/reference/st_io.py).  Weights use the checkpoint layout and names of
§5.7; the base width and dim_mult are read from the shapes, so the same code
runs the real 96-wide VAE and the tiny test presets.

Tensors inside are [1, C, T, H, W] (batch of one, like the original module);
files hold [C, T, H, W].  Used as a module: load_model / random_model /
param_spec import torch on first use; call import_torch() before using the
classes directly.
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch = None   # imported on first use: make-inputs runs without it
F = None
DTYPE = None


def import_torch():
  """Returns False when this python has no torch (the shell test skips)."""
  global torch, F, DTYPE
  if torch is None:
    try:
      import torch as torch_module
      import torch.nn.functional as functional
    except ImportError:
      return False
    torch, F, DTYPE = torch_module, functional, torch_module.float64
    torch.set_num_threads(1)     # CI machines are small and shared
  return True

CACHE_T = 2
Z_DIM = 16
NUM_RES_BLOCKS = 2
TEMPORAL_DOWNSAMPLE = [False, True, True]
LATENT_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENT_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


class RefError(Exception):
  pass


# --------------------------------------------------------------------------
# Parameters: a strict name -> tensor source.  The model takes every tensor it
# needs by name and expected shape; afterwards nothing may be left over, which
# is the same strictness as the original load_state_dict.

class Params:
  def __init__(self, tensors=None, rng=None):
    self.tensors = tensors      # dict name -> float64 tensor, or None
    self.rng = rng              # torch.Generator for random weights
    self.used = []              # (name, shape) in construction order
    self.made = []              # (name, tensor) drawn at random, same order

  def take(self, name, shape, kind):
    shape = tuple(shape)
    self.used.append((name, shape))
    if self.tensors is None:
      t = self._random(shape, kind)
      self.made.append((name, t))
      return t
    if name not in self.tensors:
      raise RefError("weights: missing tensor %s (expected shape %s)" % (name, list(shape)))
    t = self.tensors[name]
    if kind == "gamma" and t.numel() == shape[0] and t.shape[0] == shape[0]:
      t = t.reshape(shape)   # gamma is [C,1,1,1] or [C,1,1]; both are per channel
    if tuple(t.shape) != shape:
      raise RefError("weights: %s has shape %s, expected %s" % (name, list(t.shape), list(shape)))
    return t

  def _random(self, shape, kind):
    if self.rng is None:          # shape-only walk (parameter counts)
      return None
    if kind == "gamma":
      return 1.0 + 0.1 * torch.randn(shape, generator=self.rng, dtype=DTYPE)
    if kind == "bias":
      return 0.05 * torch.randn(shape, generator=self.rng, dtype=DTYPE)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=self.rng, dtype=DTYPE) / math.sqrt(fan_in)

  def check_all_used(self):
    if self.tensors is None:
      return
    names = set(n for n, _ in self.used)
    extra = sorted(k for k in self.tensors if k not in names)
    if extra:
      raise RefError("weights: %d unexpected tensor(s), first: %s" % (len(extra), extra[0]))


# --------------------------------------------------------------------------
# Primitives (§5.2)

def conv_taps(x, w, b, stride=(1, 1, 1)):
  """Valid (unpadded) 3-D convolution as a sum of one GEMM per kernel tap.
  x [1, C, T, H, W], w [O, C, kt, kh, kw].  torch 1.13's float64 conv3d is the
  unvectorised slow path; this is several times faster and `selftest`
  compares it with F.conv3d."""
  _, c, t, h, wd = x.shape
  o, _, kt, kh, kw = w.shape
  st, sh, sw = stride
  to, ho, wo = (t - kt) // st + 1, (h - kh) // sh + 1, (wd - kw) // sw + 1
  acc = b.reshape(o, 1).expand(o, to * ho * wo).clone()
  for a in range(kt):
    for i in range(kh):
      for j in range(kw):
        tap = x[0, :, a:a + st * (to - 1) + 1:st, i:i + sh * (ho - 1) + 1:sh,
                j:j + sw * (wo - 1) + 1:sw]
        acc.addmm_(w[:, :, a, i, j], tap.reshape(c, -1))
  return acc.view(1, o, to, ho, wo)


def conv2d_frames(x, w, b, stride=1):
  """Per-frame Conv2d on an already padded [1, C, T, H, W]."""
  return conv_taps(x, w.unsqueeze(2), b, (1, stride, stride))


class CausalConv3d:
  """Conv3d with zero padding (w: pw both sides, h: ph both sides, t: 2*pt in
  front).  With a cache, up to CACHE_T previous input frames are prepended and
  the front padding shrinks by their number; that is exactly the offline
  causal conv, which `selftest` checks."""

  def __init__(self, p, prefix, cin, cout, k, pad):
    self.name = prefix
    self.weight = p.take(prefix + ".weight", (cout, cin) + tuple(k), "weight")
    self.bias = p.take(prefix + ".bias", (cout,), "bias")
    self.pt, self.ph, self.pw = pad

  def run(self, x, past=None, stride=(1, 1, 1)):
    front = 2 * self.pt
    if past is not None and self.pt > 0:
      x = torch.cat([past, x], 2)
      front -= past.shape[2]
    x = F.pad(x, (self.pw, self.pw, self.ph, self.ph, front, 0))
    return conv_taps(x, self.weight, self.bias, stride)

  def __call__(self, x, cache):
    """cache: None for the offline pass, else the per-conv cache dict."""
    if cache is None or self.pt == 0:
      return self.run(x)
    old = cache.get(self.name)
    new = x[:, :, -CACHE_T:]
    if new.shape[2] < CACHE_T and old is not None:
      new = torch.cat([old[:, :, -1:], new], 2)
    out = self.run(x, old)
    cache[self.name] = new
    return out


def rms_norm(x, gamma):
  """x / max(||x||_2 over channels, 1e-12) * sqrt(C) * gamma; channels = dim 1."""
  c = x.shape[1]
  g = gamma.reshape((c,) + (1,) * (x.dim() - 2))
  return F.normalize(x, dim=1, eps=1e-12) * math.sqrt(c) * g


class ResidualBlock:
  def __init__(self, p, prefix, cin, cout):
    self.gamma0 = p.take(prefix + ".residual.0.gamma", (cin, 1, 1, 1), "gamma")
    self.conv2 = CausalConv3d(p, prefix + ".residual.2", cin, cout, (3, 3, 3), (1, 1, 1))
    self.gamma3 = p.take(prefix + ".residual.3.gamma", (cout, 1, 1, 1), "gamma")
    self.conv6 = CausalConv3d(p, prefix + ".residual.6", cout, cout, (3, 3, 3), (1, 1, 1))
    self.shortcut = None
    if cin != cout:
      self.shortcut = CausalConv3d(p, prefix + ".shortcut", cin, cout, (1, 1, 1), (0, 0, 0))

  def __call__(self, x, cache):
    h = x if self.shortcut is None else self.shortcut(x, cache)
    y = self.conv2(F.silu(rms_norm(x, self.gamma0)), cache)
    y = self.conv6(F.silu(rms_norm(y, self.gamma3)), cache)  # dropout: identity
    return y + h


class AttentionBlock:
  """Single-head self-attention over the h*w pixels of each frame."""

  def __init__(self, p, prefix, c):
    self.c = c
    self.gamma = p.take(prefix + ".norm.gamma", (c, 1, 1), "gamma")
    self.wqkv = p.take(prefix + ".to_qkv.weight", (3 * c, c, 1, 1), "weight")
    self.bqkv = p.take(prefix + ".to_qkv.bias", (3 * c,), "bias")
    self.wproj = p.take(prefix + ".proj.weight", (c, c, 1, 1), "weight")
    self.bproj = p.take(prefix + ".proj.bias", (c,), "bias")

  def __call__(self, x, cache):
    _, c, t, h, w = x.shape
    f = x[0].permute(1, 0, 2, 3)                          # [T, C, H, W]
    qkv = F.conv2d(rms_norm(f, self.gamma), self.wqkv, self.bqkv).reshape(t, 3 * c, h * w)
    q = qkv[:, :c].transpose(1, 2)                        # [T, HW, C]
    k = qkv[:, c:2 * c].transpose(1, 2)
    v = qkv[:, 2 * c:].transpose(1, 2)
    a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1) @ v
    o = F.conv2d(a.transpose(1, 2).reshape(t, c, h, w), self.wproj, self.bproj)
    return x + o.permute(1, 0, 2, 3).unsqueeze(0)


class Resample:
  def __init__(self, p, prefix, c, mode):
    self.mode = mode
    self.name = prefix + ".time_conv"
    if mode.startswith("down"):
      self.w = p.take(prefix + ".resample.1.weight", (c, c, 3, 3), "weight")
      self.b = p.take(prefix + ".resample.1.bias", (c,), "bias")
      if mode == "downsample3d":
        self.time_conv = CausalConv3d(p, self.name, c, c, (3, 1, 1), (0, 0, 0))
    else:
      self.w = p.take(prefix + ".resample.1.weight", (c // 2, c, 3, 3), "weight")
      self.b = p.take(prefix + ".resample.1.bias", (c // 2,), "bias")
      if mode == "upsample3d":
        self.time_conv = CausalConv3d(p, self.name, c, 2 * c, (3, 1, 1), (1, 0, 0))

  def _down2d(self, x):
    return conv2d_frames(F.pad(x, (0, 1, 0, 1)), self.w, self.b, 2)

  def _up2d(self, x):
    x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)   # nearest x2
    return conv2d_frames(F.pad(x, (1, 1, 1, 1)), self.w, self.b)

  @staticmethod
  def _interleave(y):
    """[1, 2C, T, H, W] -> [1, C, 2T, H, W]: channels [0,C) are frame 2t,
    [C,2C) frame 2t+1."""
    _, c2, t, h, w = y.shape
    y = y.reshape(1, 2, c2 // 2, t, h, w)
    return torch.stack((y[:, 0], y[:, 1]), 3).reshape(1, c2 // 2, 2 * t, h, w)

  def __call__(self, x, cache):
    if self.mode == "downsample2d":
      return self._down2d(x)
    if self.mode == "upsample2d":
      return self._up2d(x)
    if self.mode == "downsample3d":
      x = self._down2d(x)
      if cache is None:
        # Offline: frame 0 passes through; the stride-2 window slides over
        # the whole sequence with no padding (frame 0 opens the first window).
        if x.shape[2] == 1:
          return x
        return torch.cat([x[:, :, :1], self.time_conv.run(x, stride=(2, 1, 1))], 2)
      old = cache.get(self.name)
      if old is None:
        cache[self.name] = x
        return x
      out = self.time_conv.run(torch.cat([old[:, :, -1:], x], 2), stride=(2, 1, 1))
      cache[self.name] = x[:, :, -1:]
      return out
    # upsample3d
    if cache is None:
      # Offline: frame 0 passes through undoubled; every later frame sees a
      # causal window in which frame 0 is replaced by zeros.
      if x.shape[2] > 1:
        xz = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:]], 2)
        y = self._interleave(self.time_conv.run(xz))[:, :, 2:]
        x = torch.cat([x[:, :, :1], y], 2)
    else:
      old = cache.get(self.name)
      if old is None:
        cache[self.name] = "Rep"
      else:
        new = x[:, :, -CACHE_T:]
        if new.shape[2] < CACHE_T:
          head = torch.zeros_like(new) if isinstance(old, str) else old[:, :, -1:]
          new = torch.cat([head, new], 2)
        y = self.time_conv.run(x, None if isinstance(old, str) else old)
        cache[self.name] = new
        x = self._interleave(y)
    return self._up2d(x)


# --------------------------------------------------------------------------
# Topology (§5.3, §5.4)

def infer_dims(tensors):
  """Base width and dim_mult from a checkpoint's shapes (real: 96, [1,2,4,4])."""
  if "encoder.conv1.weight" not in tensors:
    raise RefError("weights: missing tensor encoder.conv1.weight")
  base = int(tensors["encoder.conv1.weight"].shape[0])
  mult = []
  for stage in range(4):
    key = "encoder.downsamples.%d.residual.2.weight" % (stage * (NUM_RES_BLOCKS + 1))
    if key not in tensors:
      raise RefError("weights: missing tensor %s" % key)
    out = int(tensors[key].shape[0])
    if out % base:
      raise RefError("weights: %s has %d output channels, not a multiple of %d" % (key, out, base))
    mult.append(out // base)
  return base, mult


class Encoder:
  def __init__(self, p, base, mult, z_dim):
    dims = [base * m for m in [1] + mult]
    self.conv1 = CausalConv3d(p, "encoder.conv1", 3, dims[0], (3, 3, 3), (1, 1, 1))
    self.downsamples = []
    idx = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
      for _ in range(NUM_RES_BLOCKS):
        self.downsamples.append(ResidualBlock(p, "encoder.downsamples.%d" % idx, cin, cout))
        cin = cout
        idx += 1
      if i != len(mult) - 1:
        mode = "downsample3d" if TEMPORAL_DOWNSAMPLE[i] else "downsample2d"
        self.downsamples.append(Resample(p, "encoder.downsamples.%d" % idx, cout, mode))
        idx += 1
    c = dims[-1]
    self.middle = [ResidualBlock(p, "encoder.middle.0", c, c),
                   AttentionBlock(p, "encoder.middle.1", c),
                   ResidualBlock(p, "encoder.middle.2", c, c)]
    self.head_gamma = p.take("encoder.head.0.gamma", (c, 1, 1, 1), "gamma")
    self.head_conv = CausalConv3d(p, "encoder.head.2", c, 2 * z_dim, (3, 3, 3), (1, 1, 1))

  def __call__(self, x, cache):
    x = self.conv1(x, cache)
    for layer in self.downsamples + self.middle:
      x = layer(x, cache)
    return self.head_conv(F.silu(rms_norm(x, self.head_gamma)), cache)


class Decoder:
  def __init__(self, p, base, mult, z_dim):
    dims = [base * m for m in [mult[-1]] + mult[::-1]]
    temporal_up = TEMPORAL_DOWNSAMPLE[::-1]
    c = dims[0]
    self.conv1 = CausalConv3d(p, "decoder.conv1", z_dim, c, (3, 3, 3), (1, 1, 1))
    self.middle = [ResidualBlock(p, "decoder.middle.0", c, c),
                   AttentionBlock(p, "decoder.middle.1", c),
                   ResidualBlock(p, "decoder.middle.2", c, c)]
    self.upsamples = []
    idx = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
      if i in (1, 2, 3):
        cin = cin // 2        # the preceding resample halved the width
      for _ in range(NUM_RES_BLOCKS + 1):
        self.upsamples.append(ResidualBlock(p, "decoder.upsamples.%d" % idx, cin, cout))
        cin = cout
        idx += 1
      if i != len(mult) - 1:
        mode = "upsample3d" if temporal_up[i] else "upsample2d"
        self.upsamples.append(Resample(p, "decoder.upsamples.%d" % idx, cout, mode))
        idx += 1
    self.head_gamma = p.take("decoder.head.0.gamma", (dims[-1], 1, 1, 1), "gamma")
    self.head_conv = CausalConv3d(p, "decoder.head.2", dims[-1], 3, (3, 3, 3), (1, 1, 1))

  def __call__(self, x, cache):
    x = self.conv1(x, cache)
    for layer in self.middle + self.upsamples:
      x = layer(x, cache)
    return self.head_conv(F.silu(rms_norm(x, self.head_gamma)), cache)


class WanVAE:
  def __init__(self, p, base, mult, z_dim=Z_DIM):
    if z_dim != len(LATENT_MEAN):
      raise RefError("z_dim %d: the latent normalisation is defined for %d channels"
                     % (z_dim, len(LATENT_MEAN)))
    self.base, self.mult, self.z_dim = base, list(mult), z_dim
    self.encoder = Encoder(p, base, mult, z_dim)
    self.conv1 = CausalConv3d(p, "conv1", 2 * z_dim, 2 * z_dim, (1, 1, 1), (0, 0, 0))
    self.conv2 = CausalConv3d(p, "conv2", z_dim, z_dim, (1, 1, 1), (0, 0, 0))
    self.decoder = Decoder(p, base, mult, z_dim)
    p.check_all_used()
    self.mean = torch.tensor(LATENT_MEAN, dtype=DTYPE).view(1, z_dim, 1, 1, 1)
    self.inv_std = 1.0 / torch.tensor(LATENT_STD, dtype=DTYPE).view(1, z_dim, 1, 1, 1)

  # ---- encoder
  def _finish_encode(self, h):
    mu = self.conv1(h, None)[:, :self.z_dim]      # logvar (channels z..2z) unused
    return (mu - self.mean) * self.inv_std

  def encode_stream(self, pixels, cache=None):
    """pixels [1, 3, 1+4k, H, W] -> normalised mu [1, 16, 1+k, H/8, W/8];
    chunks: frame 0 alone, then 4 frames each, caches kept across chunks."""
    t = pixels.shape[2]
    if (t - 1) % 4:
      raise RefError("encode: %d frames; the encoder needs 1+4k" % t)
    cache = {} if cache is None else cache
    outs = [self.encoder(pixels[:, :, :1], cache)]
    for i in range(1, 1 + (t - 1) // 4):
      outs.append(self.encoder(pixels[:, :, 1 + 4 * (i - 1):1 + 4 * i], cache))
    return self._finish_encode(torch.cat(outs, 2))

  def encode_offline(self, pixels):
    return self._finish_encode(self.encoder(pixels, None))

  def encode_anchor(self, frame):
    """One frame with a fresh cache."""
    return self._finish_encode(self.encoder(frame, {}))

  # ---- decoder
  def _start_decode(self, z):
    return self.conv2(z / self.inv_std + self.mean, None)

  def decode_stream(self, z, cache=None, per_call=None):
    """z [1, 16, F, h, w] -> pixels [1, 3, 1+4(F-1), 8h, 8w] in [-1, 1].
    per_call: list of latent counts per call (default one latent per call).
    Returns (pixels, list of frame counts per call)."""
    cache = {} if cache is None else cache
    x = self._start_decode(z)
    f = z.shape[2]
    per_call = per_call or [1] * f
    if sum(per_call) != f:
      raise RefError("decode: call sizes %s do not add up to %d latents" % (per_call, f))
    outs, counts, pos = [], [], 0
    for n in per_call:
      y = self.decoder(x[:, :, pos:pos + n], cache)
      outs.append(y)
      counts.append(y.shape[2])
      pos += n
    return torch.cat(outs, 2).clamp(-1.0, 1.0), counts

  def decode_offline(self, z):
    return self.decoder(self._start_decode(z), None).clamp(-1.0, 1.0)


def param_spec(base, mult=(1, 2, 4, 4), z_dim=Z_DIM):
  """[(name, shape)] of the checkpoint, in module order (walks the model)."""
  import_torch()
  p = Params()
  WanVAE(p, base, list(mult), z_dim)
  return p.used


def load_model(path):
  import_torch()
  arrays, _ = st_io.read(path)
  tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
  base, mult = infer_dims(tensors)
  if "conv2.weight" not in tensors:
    raise RefError("weights: missing tensor conv2.weight")
  z_dim = int(tensors["conv2.weight"].shape[0])
  return WanVAE(Params(tensors), base, mult, z_dim)


def random_model(base, seed, mult=(1, 2, 4, 4)):
  import_torch()
  p = Params(rng=torch.Generator().manual_seed(seed))
  return WanVAE(p, base, list(mult)), p.made


# --------------------------------------------------------------------------
# File helpers

def read_tensor(path, name, rank):
  arrays, _ = st_io.read(path)
  if name not in arrays:
    raise RefError("%s: no tensor named '%s' (has: %s)" % (path, name, ", ".join(sorted(arrays))))
  a = arrays[name]
  if a.ndim != rank:
    raise RefError("%s: '%s' has shape %s, expected rank %d" % (path, name, list(a.shape), rank))
  return torch.from_numpy(np.asarray(a, dtype=np.float64)).unsqueeze(0)


def write_tensor(path, name, t):
  st_io.write(path, {name: t[0].numpy().astype(np.float32)})


def check_pixels(x, path):
  _, c, t, h, w = x.shape
  if c != 3 or h % 8 or w % 8:
    raise RefError("%s: pixels %s: need [3, T, H, W] with H, W multiples of 8"
                   % (path, list(x.shape[1:])))


# --------------------------------------------------------------------------
# selftest

def rel_l2(a, b):
  return float((a - b).norm() / max(float(b.norm()), 1e-300))


def selftest(args):
  failures = []

  def check(name, ok, detail=""):
    print("%-58s %s %s" % (name, "ok  " if ok else "FAIL", detail))
    if not ok:
      failures.append(name)

  def close(name, a, b, tol=1e-12):
    if a.shape != b.shape:
      check(name, False, "shape %s vs %s" % (list(a.shape), list(b.shape)))
      return
    e = rel_l2(a, b)
    check(name, e <= tol, "rel_l2 %.3e" % e)

  g = torch.Generator().manual_seed(args.seed)

  # Parameter walk of the real configuration against the spec §5.7 totals.
  spec = param_spec(96)
  count = lambda pref: sum(math.prod(s) for n, s in spec if n.startswith(pref))
  check("real VAE: 194 tensors", len(spec) == 194, str(len(spec)))
  check("real VAE: 126 892 531 parameters", count("") == 126892531, str(count("")))
  check("real VAE: encoder 53 595 872 / decoder 73 295 331",
        count("encoder.") == 53595872 and count("decoder.") == 73295331,
        "%d / %d" % (count("encoder."), count("decoder.")))
  check("real VAE: conv1 1 056 / conv2 272",
        count("conv1.") == 1056 and count("conv2.") == 272)

  # RMS_norm: x / ||x|| * sqrt(C) * gamma == x * rsqrt(mean x^2) * gamma.
  x = torch.randn(1, 6, 3, 4, 5, generator=g, dtype=DTYPE)
  gam = torch.randn(6, 1, 1, 1, generator=g, dtype=DTYPE)
  close("rms_norm == x*rsqrt(mean_c x^2)*gamma", rms_norm(x, gam),
        x * torch.rsqrt((x * x).mean(1, keepdim=True)) * gam)

  # Convolutions against torch's own: the causal conv offline equals
  # F.conv3d on a sequence with two zero frames in front, the resample 2-D
  # ops equal F.conv2d / F.interpolate frame by frame.
  class P:
    def take(self, name, shape, kind):
      return torch.randn(shape, generator=g, dtype=DTYPE)
  conv = CausalConv3d(P(), "c", 4, 5, (3, 3, 3), (1, 1, 1))
  x = torch.randn(1, 4, 11, 6, 7, generator=g, dtype=DTYPE)
  off = conv(x, None)
  xz = torch.cat([torch.zeros_like(x[:, :, :2]), x], 2)
  close("causal conv offline == F.conv3d(zero frames at t<0)", off,
        F.conv3d(xz, conv.weight, conv.bias, padding=(0, 1, 1)))
  w2 = torch.randn(1, 4, 3, 1, 1, generator=g, dtype=DTYPE)
  close("conv_taps stride (2,1,1) == F.conv3d", conv_taps(x, w2, torch.zeros(1, dtype=DTYPE), (2, 1, 1)),
        F.conv3d(x, w2, stride=(2, 1, 1)))
  frames = x[0].permute(1, 0, 2, 3)
  for mode, c_out in (("downsample2d", 4), ("upsample2d", 2)):
    rs = Resample(P(), "r", 4, mode)
    if mode == "downsample2d":
      ref = F.conv2d(F.pad(frames, (0, 1, 0, 1)), rs.w, rs.b, stride=2)
    else:
      ref = F.conv2d(F.interpolate(frames, scale_factor=2.0, mode="nearest"), rs.w, rs.b, padding=1)
    close("%s == F.conv2d per frame" % mode, rs(x, None), ref.permute(1, 0, 2, 3).unsqueeze(0))
  for split in ([1, 4, 4, 2], [1, 1, 1, 4, 1, 3], [3, 1, 1, 1, 5]):
    cache, outs, pos = {}, [], 0
    for n in split:
      outs.append(conv(x[:, :, pos:pos + n], cache))
      pos += n
    close("causal conv streamed %s == offline" % split, torch.cat(outs, 2), off)
    check("  cache holds %d frames" % CACHE_T, cache["c"].shape[2] == CACHE_T)

  # Full model at the tiny width.
  base, h, w = args.base_dim, args.height, args.width
  model, _ = random_model(base, args.seed)
  for k in (1, 2):
    t = 1 + 4 * k
    pix = 2 * torch.rand(1, 3, t, h, w, generator=g, dtype=DTYPE) - 1
    cache = {}
    lat = model.encode_stream(pix, cache)
    check("encode %d frames -> [16, %d, %d, %d]" % (t, 1 + k, h // 8, w // 8),
          list(lat.shape) == [1, 16, 1 + k, h // 8, w // 8], str(list(lat.shape[1:])))
    close("encode %d frames: streaming == offline" % t, lat, model.encode_offline(pix))
    if k == 1:
      check("encoder: %d cache slots" % len(cache), len(cache) == 24,
            "22 residual/conv1/head + 2 time_conv")
      close("encode: latent 0 == anchor(frame 0)", lat[:, :, :1],
            model.encode_anchor(pix[:, :, :1]))
    if k == 2:
      close("encode: causal (5-frame prefix == first 2 latents)",
            model.encode_stream(pix[:, :, :5]), lat[:, :, :2])

  f = 5
  z = torch.randn(1, 16, f, h // 8, w // 8, generator=g, dtype=DTYPE)
  cache = {}
  pix, counts = model.decode_stream(z, cache)
  check("decode %d latents: frame counts 1, 4, 4, ..." % f,
        counts == [1] + [4] * (f - 1), str(counts))
  check("decode: shape [3, %d, %d, %d]" % (1 + 4 * (f - 1), h, w),
        list(pix.shape) == [1, 3, 1 + 4 * (f - 1), h, w], str(list(pix.shape[1:])))
  check("decoder: %d cache slots" % len(cache), len(cache) == 32, "30 convs + 2 time_conv")
  close("decode: streaming == offline (latent 0 zeroed in time_conv)", pix,
        model.decode_offline(z))
  close("decode: calls [1, 4] == one latent per call",
        model.decode_stream(z, None, [1, f - 1])[0], pix)
  close("decode: calls [1, 2, 2] == one latent per call",
        model.decode_stream(z, None, [1, 2, 2])[0], pix)
  close("decode: causal (3-latent prefix == first 9 frames)",
        model.decode_stream(z[:, :, :3])[0], pix[:, :, :9])
  check("decode: output in [-1, 1]", float(pix.abs().max()) <= 1.0)
  frac = float((pix.abs() < 1).double().mean())
  check("decode: outputs not all clamped", frac > 0.05, "%.0f%% unclamped" % (100 * frac))
  # The decoder's first frame must never feed the time-upsampling convs:
  # changing latent 0 changes frame 0 and, through the residual convs, later
  # frames too, so check the Rep rule directly on one upsample3d instead.
  up = [l for l in model.decoder.upsamples if isinstance(l, Resample) and l.mode == "upsample3d"][0]
  c = up.w.shape[1]
  xa = torch.randn(1, c, 3, 2, 2, generator=g, dtype=DTYPE)
  xb = xa.clone()
  xb[:, :, 0] += 1.0
  ya = up(xa, None)
  yb = up(xb, None)
  close("upsample3d: frames >= 1 independent of frame 0", ya[:, :, 1:], yb[:, :, 1:], 0.0)
  cache = {}
  ys = torch.cat([up(xa[:, :, i:i + 1], cache) for i in range(3)], 2)
  close("upsample3d: streamed (Rep, zeros, cache) == offline", ys, ya)

  if failures:
    print("selftest: %d check(s) failed" % len(failures))
    return 1
  print("selftest: all checks passed")
  return 0


# --------------------------------------------------------------------------
# CLI

def cmd_encode(args):
  model = load_model(args.weights)
  pix = read_tensor(args.input, "pixels", 4)
  check_pixels(pix, args.input)
  with torch.no_grad():
    lat = model.encode_stream(pix)
  write_tensor(args.out, "latents", lat)
  return 0


def cmd_anchor(args):
  model = load_model(args.weights)
  pix = read_tensor(args.input, "pixels", 4)
  check_pixels(pix, args.input)
  with torch.no_grad():
    lat = torch.cat([model.encode_anchor(pix[:, :, i:i + 1]) for i in range(pix.shape[2])], 2)
  write_tensor(args.out, "latents", lat)
  return 0


def cmd_decode(args):
  model = load_model(args.weights)
  z = read_tensor(args.input, "latents", 4)
  if z.shape[1] != model.z_dim:
    raise RefError("%s: latents have %d channels, expected %d" % (args.input, z.shape[1], model.z_dim))
  with torch.no_grad():
    pix, _ = model.decode_stream(z)
  write_tensor(args.out, "pixels", pix)
  return 0


def cmd_make_inputs(args):
  if args.height % 8 or args.width % 8 or args.frames < 1 or args.latents < 1:
    raise RefError("make-inputs: height/width must be multiples of 8, frames/latents >= 1")
  rng = np.random.default_rng(args.seed)
  if args.out_pixels:
    pix = rng.uniform(-1.0, 1.0, (3, args.frames, args.height, args.width))
    st_io.write(args.out_pixels, {"pixels": pix.astype(np.float32)})
  if args.out_latents:
    lat = rng.standard_normal((Z_DIM, args.latents, args.height // 8, args.width // 8))
    st_io.write(args.out_latents, {"latents": lat.astype(np.float32)})
  return 0


def cmd_make_weights(args):
  _, used = random_model(args.base_dim, args.seed)
  st_io.write(args.out, {n: t.numpy().astype(np.float32) for n, t in used},
              {"format": "pt", "note": "random WanVAE weights, base dim %d" % args.base_dim})
  return 0


def main(argv=None):
  ap = argparse.ArgumentParser(
      description="Float64 reference of the Wan2.1 VAE (spec §5): streaming encode/decode.")
  sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
  sub.required = True

  def io_cmd(name, helptext, fn):
    s = sub.add_parser(name, help=helptext, description=helptext)
    s.add_argument("--weights", required=True, help="VAE safetensors (spec §5.7 names)")
    s.add_argument("--input", required=True, help="input safetensors")
    s.add_argument("--out", required=True, help="output safetensors (F32)")
    s.set_defaults(fn=fn)

  io_cmd("encode", "stream-encode 'pixels' [3,1+4k,H,W] to 'latents' [16,1+k,H/8,W/8]", cmd_encode)
  io_cmd("decode", "stream-decode 'latents' [16,F,h,w] one per call to 'pixels' "
         "[3,1+4(F-1),8h,8w]", cmd_decode)
  io_cmd("anchor", "encode each frame of 'pixels' with a fresh cache to 'latents' "
         "[16,T,H/8,W/8]", cmd_anchor)
  s = sub.add_parser("make-inputs", help="random pixels in [-1,1] and latents ~ N(0,1)")
  s.add_argument("--height", type=int, default=64)
  s.add_argument("--width", type=int, default=64)
  s.add_argument("--frames", type=int, default=9, help="pixel frames (1+4k to encode)")
  s.add_argument("--latents", type=int, default=5, help="latent frames")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--out-pixels", help="write 'pixels' [3,T,H,W] here")
  s.add_argument("--out-latents", help="write 'latents' [16,F,H/8,W/8] here")
  s.set_defaults(fn=cmd_make_inputs)
  s = sub.add_parser("make-weights", help="random weights (spec names, checkpoint layout)")
  s.add_argument("--base-dim", type=int, default=8)
  s.add_argument("--seed", type=int, default=1)
  s.add_argument("--out", required=True)
  s.set_defaults(fn=cmd_make_weights)
  s = sub.add_parser("selftest", help="streaming == offline, shapes, frame counts, param counts")
  s.add_argument("--base-dim", type=int, default=8)
  s.add_argument("--height", type=int, default=16)
  s.add_argument("--width", type=int, default=32)
  s.add_argument("--seed", type=int, default=0)
  s.set_defaults(fn=selftest)
  args = ap.parse_args(argv)
  try:
    if args.cmd == "make-inputs":
      return args.fn(args)
    if not import_torch():
      print("vae_ref: torch is not available in this python", file=sys.stderr)
      return 77
    with torch.no_grad():
      return args.fn(args)
  except (RefError, st_io.SafetensorsError, OSError) as e:
    print("vae_ref: %s" % e, file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
