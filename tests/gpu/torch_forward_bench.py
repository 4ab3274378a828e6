#!/usr/bin/env python3
"""PyTorch peer of one denoise forward of the causal Wan2.1 14B DiT.

The model is written from docs/reference/wan2.1-spec.md (sections 2.2-2.8,
4.1-4.4, 4.8), not from the C engine, at the engine's benchmark shape:
L = F * fs query tokens (3 latent frames of 20 x 36 at 320x576 = 2160)
against N = C * fs + L keys (a 3-frame recomputed KV cache + the chunk's
own keys = 4320), 40 heads of 128, 40 layers, dim 5120, FFN 13824, cross-
attention to 512 text rows, per-frame adaLN modulation, full-width q/k
RMSNorm, interleaved 3-D RoPE at frame offset C, and the kv-cache attention
bias: log(0.3) added to the logits of cache keys [fs, C*fs) (spec 4.8).
The per-prompt state (text embedding, every layer's cross-attention K/V)
and the KV cache of the context frames exist before the timed forward, as
in the engine; the forward writes its own K/V into the cache rows
[C*fs, N) like the engine's projection GEMMs do.

Precision (the engine's choices, spec 2.8): bf16 weights and GEMM outputs,
f32 accumulation, the residual stream, time embedding and modulation in
f32, LayerNorm/RMSNorm statistics in f32, RoPE in f32.

Two variants, timed with CUDA events (warm-up, then the median of N):
  bf16  every block through torch.compile (one compiled block function
        reused by all 40 layers: the weights are arguments, so it compiles
        once);
  fp8   the same, with the DiT's big linears (self q, k, v, o, cross q, o,
        FFN up and down) as torch._scaled_mm on float8_e4m3fn with
        row-wise scales, torchao's dynamic recipe: per-output-channel weight
        scales computed once, per-row (per-token) activation scales computed
        from each activation's own amax inside the compiled block,
        bf16 output, fast accumulation as torchao's forward GEMM uses.
Self-attention goes through scaled_dot_product_attention; the bias variant
is chosen by measuring (--attn auto): an additive bf16 mask through SDPA's
own backend choice, the same forced onto cuDNN or memory-efficient
attention, or the flash backend without a mask on the three key ranges
([0, fs), [fs, C*fs), [C*fs, N)) whose outputs are merged by their
log-sum-exps with the biased range's weight scaled by 0.3 — the same
function (softmax over all N keys with log(0.3) on one range), reported as
the "attention" field.  Cross-attention is plain SDPA (no mask).

It also runs with Debian's torch 1.13 on a CPU (no torch.compile, no SDPA,
no float8: those paths are skipped) at tiny shapes, and --check compares
the forward at a tiny shape in float64 with tests/reference/dit_ref.py on
the same weights (the engine's f64 oracle) — a check of the function, not
of speed.

Usage:
  torch_forward_bench.py [--device cuda] [--modes bf16,fp8] [--layers 40]
      [--size 320x576] [--warmup 3] [--iters 10] [--attn auto] [--json]
  (--json: one cumulative JSON object per line, after each mode and at the
  end; the last line holds everything)
  torch_forward_bench.py --check        (CPU, tiny, float64 vs dit_ref.py)
Exit status 0 success, 1 failure, 2 usage.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HEAD_DIM = 128
FREQ_DIM = 256
TEXT_LEN = 512
IN_CH = 16
EPS = 1e-6
FP8_MAX = 448.0

FP8_LINEARS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
               "cross_attn.q", "cross_attn.o", "ffn.0", "ffn.2")


# --------------------------------------------------------------------------
# configuration and weights (spec 2.1, 3.2)

def wan14b(layers=40):
    return {"dim": 5120, "heads": 40, "layers": layers, "ffn": 13824,
            "text_dim": 4096}


def param_shapes(cfg):
    d, f, td = cfg["dim"], cfg["ffn"], cfg["text_dim"]
    s = {
        "patch_embedding.weight": (d, IN_CH, 1, 2, 2),
        "patch_embedding.bias": (d,),
        "text_embedding.0.weight": (d, td), "text_embedding.0.bias": (d,),
        "text_embedding.2.weight": (d, d), "text_embedding.2.bias": (d,),
        "time_embedding.0.weight": (d, FREQ_DIM), "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d), "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d), "time_projection.1.bias": (6 * d,),
        "head.modulation": (1, 2, d),
        "head.head.weight": (4 * IN_CH, d), "head.head.bias": (4 * IN_CH,),
    }
    for i in range(cfg["layers"]):
        p = "blocks.%d." % i
        s[p + "modulation"] = (1, 6, d)
        for a in ("self_attn", "cross_attn"):
            for m in "qkvo":
                s["%s%s.%s.weight" % (p, a, m)] = (d, d)
                s["%s%s.%s.bias" % (p, a, m)] = (d,)
            s["%s%s.norm_q.weight" % (p, a)] = (d,)
            s["%s%s.norm_k.weight" % (p, a)] = (d,)
        s[p + "norm3.weight"] = (d,)
        s[p + "norm3.bias"] = (d,)
        s[p + "ffn.0.weight"] = (f, d)
        s[p + "ffn.0.bias"] = (f,)
        s[p + "ffn.2.weight"] = (d, f)
        s[p + "ffn.2.bias"] = (d,)
    return s


def random_weights(cfg, dtype, device, seed=0):
    """Seeded weights with the scales of a trained net (fan-in normal for
    matrices, 1 + 0.1 N for norm scales, small biases); values do not
    matter for timing, only for --check."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = {}
    for k, shape in param_shapes(cfg).items():
        if k.endswith("modulation"):
            t = torch.randn(shape, generator=g, dtype=torch.float32) / math.sqrt(cfg["dim"])
        elif k.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)
        elif k.endswith(".bias"):
            t = 0.02 * torch.randn(shape, generator=g, dtype=torch.float32)
        else:
            fan_in = 1
            for n in shape[1:]:
                fan_in *= n
            t = torch.randn(shape, generator=g, dtype=torch.float32) / math.sqrt(fan_in)
        w[k] = t.to(dtype=dtype, device=device)
    return w


def random_weights_on_device(cfg, dtype, device, seed=0):
    """The same scales, drawn on the device (the 14B set in seconds)."""
    torch.manual_seed(seed)
    w = {}
    for k, shape in param_shapes(cfg).items():
        if k.endswith("modulation"):
            t = torch.randn(shape, device=device, dtype=torch.float32) / math.sqrt(cfg["dim"])
        elif k.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
            t = 1.0 + 0.1 * torch.randn(shape, device=device, dtype=torch.float32)
        elif k.endswith(".bias"):
            t = 0.02 * torch.randn(shape, device=device, dtype=torch.float32)
        else:
            fan_in = 1
            for n in shape[1:]:
                fan_in *= n
            t = torch.randn(shape, device=device, dtype=dtype) * (1.0 / math.sqrt(fan_in))
        w[k] = t.to(dtype)
    return w


# --------------------------------------------------------------------------
# elementary ops (spec 2.2-2.7); `ct` is the compute dtype of the f32 steps
# (f32 for the benchmark, f64 for --check)

def sinusoid(t):
    """[F] timesteps -> [F, 256] in float64, cos half first."""
    t = t.to(torch.float64).reshape(-1)
    half = FREQ_DIM // 2
    omega = torch.pow(torch.tensor(10000.0, dtype=torch.float64, device=t.device),
                      -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    a = t[:, None] * omega[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def layer_norm(x, ct):
    """LayerNorm without affine over the last dim, statistics in ct."""
    x = x.to(ct)
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + EPS)


def rms_norm(x, weight, ct, out_dtype):
    """Statistic in ct, normalised value rounded to out_dtype, times the
    weight (spec 2.7: the weight multiplies the rounded value)."""
    xf = x.to(ct)
    y = (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + EPS)).to(out_dtype)
    return (y.to(ct) * weight.to(ct)).to(out_dtype)


def rope_tables(frames, hp, wp, frame_offset, ct, device):
    """cos/sin [L, 64] (f64 angles -> ct): pairs 0..21 temporal (frame +
    offset), 22..42 height, 43..63 width; omega = 10000^(-2j/dim) with
    dim 44 (temporal) and 42 (spatial)."""
    base = torch.tensor(10000.0, dtype=torch.float64)
    om_t = torch.pow(base, -torch.arange(0, 44, 2, dtype=torch.float64) / 44)
    om_s = torch.pow(base, -torch.arange(0, 42, 2, dtype=torch.float64) / 42)
    f = torch.arange(frames, dtype=torch.float64) + frame_offset
    h = torch.arange(hp, dtype=torch.float64)
    w = torch.arange(wp, dtype=torch.float64)
    at = (f[:, None] * om_t)[:, None, None, :].expand(frames, hp, wp, 22)
    ah = (h[:, None] * om_s)[None, :, None, :].expand(frames, hp, wp, 21)
    aw = (w[:, None] * om_s)[None, None, :, :].expand(frames, hp, wp, 21)
    ang = torch.cat([at, ah, aw], dim=-1).reshape(frames * hp * wp, 64)
    return torch.cos(ang).to(device=device, dtype=ct), torch.sin(ang).to(device=device, dtype=ct)


def apply_rope(x, cos, sin, heads, out_dtype):
    """x [L, H*128]: interleaved pairs (x[2i], x[2i+1]) rotated in cos's
    dtype."""
    L = x.shape[0]
    xp = x.to(cos.dtype).reshape(L, heads, 64, 2)
    a, b = xp[..., 0], xp[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(L, -1).to(out_dtype)


def patchify(x):
    """[16, F, H, W] -> [F*(H/2)*(W/2), 64], input index c*4 + q*2 + r."""
    c, f, hh, ww = x.shape
    t = x.reshape(c, f, hh // 2, 2, ww // 2, 2).permute(1, 2, 4, 0, 3, 5)
    return t.reshape(f * (hh // 2) * (ww // 2), c * 4)


def unpatchify(y, frames, hp, wp):
    """[L, 64] with index (q*2 + r)*16 + c -> [16, F, 2hp, 2wp]."""
    u = y.reshape(frames, hp, wp, 2, 2, IN_CH).permute(5, 0, 1, 3, 2, 4)
    return u.reshape(IN_CH, frames, 2 * hp, 2 * wp)


# --------------------------------------------------------------------------
# attention

def have_sdpa():
    return hasattr(F, "scaled_dot_product_attention")


def attention_math(q, k, v, heads, ct, bias=None):
    """Reference attention in ct: q [L, H*d], k/v [N, H*d], bias [L, N]."""
    L, N = q.shape[0], k.shape[0]
    qh = q.reshape(L, heads, HEAD_DIM).transpose(0, 1).to(ct)
    kh = k.reshape(N, heads, HEAD_DIM).transpose(0, 1).to(ct)
    vh = v.reshape(N, heads, HEAD_DIM).transpose(0, 1).to(ct)
    s = qh @ kh.transpose(1, 2) / math.sqrt(HEAD_DIM)
    if bias is not None:
        s = s + bias.to(ct)[None]
    o = torch.softmax(s, dim=-1) @ vh
    return o.transpose(0, 1).reshape(L, heads * HEAD_DIM).to(q.dtype)


def to_heads(t, heads):
    n = t.shape[0]
    return t.reshape(1, n, heads, HEAD_DIM).transpose(1, 2)


def from_heads(o):
    _, h, n, d = o.shape
    return o.transpose(1, 2).reshape(n, h * d)


def sdpa(q, k, v, heads, mask=None):
    o = F.scaled_dot_product_attention(to_heads(q, heads), to_heads(k, heads),
                                       to_heads(v, heads), attn_mask=mask)
    return from_heads(o)


def flash_lse(q, k, v, heads):
    """SDPA's flash kernel on one key range: output [1, H, L, d] and
    log-sum-exp [1, H, L] (f32)."""
    out = torch.ops.aten._scaled_dot_product_flash_attention(
        to_heads(q, heads), to_heads(k, heads), to_heads(v, heads), 0.0, False,
        False, scale=1.0 / math.sqrt(HEAD_DIM))
    return out[0], out[1]


def attention_split(q, k, v, heads, fs, ctx_rows, log_bias):
    """softmax over all keys with log_bias on keys [fs, ctx_rows): flash on
    the three ranges, merged by their log-sum-exps."""
    parts = ((0, fs, 0.0), (fs, ctx_rows, log_bias), (ctx_rows, k.shape[0], 0.0))
    outs, lses = [], []
    for a, b, lb in parts:
        o, lse = flash_lse(q, k[a:b], v[a:b], heads)
        outs.append(o.float())
        lses.append(lse.float() + lb)
    m = torch.maximum(torch.maximum(lses[0], lses[1]), lses[2])
    ws = [torch.exp(x - m) for x in lses]
    den = ws[0] + ws[1] + ws[2]
    o = outs[0] * (ws[0] / den)[..., None] + outs[1] * (ws[1] / den)[..., None] \
        + outs[2] * (ws[2] / den)[..., None]
    return from_heads(o.to(q.dtype))


# Self-attention variants (--attn); the SDPA backend of the mask variants is
# chosen by the global SDP switches (set_sdp_backend), so that the compiled
# block holds no context manager.
ATTN_VARIANTS = ("sdpa", "cudnn", "efficient", "split")


def set_sdp_backend(name):
    b = torch.backends.cuda
    flags = {"sdpa": (True, True, True), "cudnn": (False, False, True),
             "efficient": (False, True, False), "split": (True, True, True),
             "math": (True, True, True)}[name]
    b.enable_flash_sdp(flags[0])
    b.enable_mem_efficient_sdp(flags[1])
    if hasattr(b, "enable_cudnn_sdp"):
        b.enable_cudnn_sdp(flags[2])
    # the math backend stays on as the last resort for shapes a chosen
    # backend refuses (the dispatcher tries it last)
    b.enable_math_sdp(True)


def self_attention(st, q, k, v, mask, mask_c):
    if st.attn == "math":
        return attention_math(q, k, v, st.heads, st.ct, mask_c)
    if st.attn == "split":
        return attention_split(q, k, v, st.heads, st.fs, st.ctx_rows, st.log_bias)
    return sdpa(q, k, v, st.heads, mask)


def cross_attention(st, q, k, v):
    if st.attn == "math" or not have_sdpa():
        return attention_math(q, k, v, st.heads, st.ct)
    return sdpa(q, k, v, st.heads)


# --------------------------------------------------------------------------
# linears: bf16 and FP8 row-wise

def fp8_quantize_weight(w):
    """Per-output-channel scale: w = w8 * s, s = amax(|row|) / 448."""
    s = w.float().abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX
    w8 = (w.float() / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return w8, s.t().contiguous()          # [N, K] e4m3, scale [1, N] f32


def linear_fp8(x, w8, ws, b, fast_accum, bias_in_mm):
    """Dynamic per-row activation scale from the row's own amax, then
    _scaled_mm (e4m3 x e4m3 -> bf16) with both scale vectors."""
    xf = x.float()
    xs = xf.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX
    x8 = (xf / xs).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    y = torch._scaled_mm(x8, w8.t(), scale_a=xs, scale_b=ws,
                         bias=b if bias_in_mm else None,
                         out_dtype=torch.bfloat16, use_fast_accum=fast_accum)
    return y if bias_in_mm else y + b


def lin(st, lw, q8, x, name):
    if name in q8:
        w8, ws = q8[name]
        return linear_fp8(x, w8, ws, lw[name + ".bias"], st.fast_accum, st.bias_in_mm)
    return F.linear(x, lw[name + ".weight"], lw[name + ".bias"])


# --------------------------------------------------------------------------
# one block (spec 2.3, 4.1, 4.3, 4.8): a pure function of its tensors, so
# that torch.compile traces it once for all layers

class Static:
    """The block's constants (Python values: guarded, not traced)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def block(st, x, mod, lw, q8, kc, vc, ck, cv, cos, sin, mask, mask_c):
    """x [L, D] residual stream (ct); mod [F, 6, D] = modulation + e0 (ct);
    lw the layer's weights by relative name, q8 its FP8 linears; kc/vc the
    layer's KV cache [N, D] (rows [ctx_rows, N) are written); ck/cv the
    cross-attention K/V [512, D].  Returns the new x."""
    dt, ct, F_, fs, L = st.dt, st.ct, st.frames, st.fs, st.L
    d = x.shape[1]
    x3 = x.reshape(F_, fs, d)

    # self-attention
    h = layer_norm(x3, ct) * (1 + mod[:, 1][:, None]) + mod[:, 0][:, None]
    h = h.to(dt).reshape(L, d)
    q = rms_norm(lin(st, lw, q8, h, "self_attn.q"), lw["self_attn.norm_q.weight"], ct, dt)
    k = rms_norm(lin(st, lw, q8, h, "self_attn.k"), lw["self_attn.norm_k.weight"], ct, dt)
    v = lin(st, lw, q8, h, "self_attn.v").to(dt)
    q = apply_rope(q, cos, sin, st.heads, dt)
    k = apply_rope(k, cos, sin, st.heads, dt)
    kc[st.ctx_rows:] = k
    vc[st.ctx_rows:] = v
    o = lin(st, lw, q8, self_attention(st, q, kc, vc, mask, mask_c), "self_attn.o")
    x3 = x3 + mod[:, 2][:, None] * o.to(ct).reshape(F_, fs, d)

    # cross-attention (no modulation, no gate)
    y = layer_norm(x3, ct) * lw["norm3.weight"].to(ct) + lw["norm3.bias"].to(ct)
    y = y.to(dt).reshape(L, d)
    q = rms_norm(lin(st, lw, q8, y, "cross_attn.q"), lw["cross_attn.norm_q.weight"], ct, dt)
    o = lin(st, lw, q8, cross_attention(st, q, ck, cv), "cross_attn.o")
    x3 = x3 + o.to(ct).reshape(F_, fs, d)

    # feed-forward
    h = layer_norm(x3, ct) * (1 + mod[:, 4][:, None]) + mod[:, 3][:, None]
    h = h.to(dt).reshape(L, d)
    u = gelu_tanh(lin(st, lw, q8, h, "ffn.0").to(ct)).to(dt)
    f = lin(st, lw, q8, u, "ffn.2")
    x3 = x3 + mod[:, 5][:, None] * f.to(ct).reshape(F_, fs, d)
    return x3.reshape(L, d)


# --------------------------------------------------------------------------
# the model

class Peer:
    """One denoise forward, precision as the engine: activations and GEMM
    outputs in dt (bf16), the residual stream, norms, RoPE and modulation in
    ct (f32)."""

    def __init__(self, cfg, w, device, dt, ct, frames, hp, wp, ctx_frames,
                 kv_bias=0.3, attn="math", fp8=False, fast_accum=True):
        self.cfg, self.w, self.device = cfg, w, device
        fs = hp * wp
        self.st = Static(dt=dt, ct=ct, frames=frames, fs=fs, L=frames * fs,
                         N=(ctx_frames + frames) * fs, ctx_rows=ctx_frames * fs,
                         heads=cfg["heads"], log_bias=math.log(kv_bias), attn=attn,
                         fast_accum=fast_accum, bias_in_mm=True)
        self.hp, self.wp = hp, wp
        self.cos, self.sin = rope_tables(frames, hp, wp, ctx_frames, ct, device)
        mask = torch.zeros(self.st.L, self.st.N, dtype=torch.float64)
        mask[:, fs:ctx_frames * fs] = math.log(kv_bias)
        self.mask = mask.to(device=device, dtype=dt)[None, None]   # SDPA's additive mask
        self.mask_c = mask.to(device=device, dtype=ct)
        # each layer's weights by relative name (the compiled block's inputs)
        self.lw, self.q8 = [], []
        for i in range(cfg["layers"]):
            p = "blocks.%d." % i
            self.lw.append({k[len(p):]: t for k, t in w.items() if k.startswith(p)})
            self.q8.append({})
        if fp8:
            for i in range(cfg["layers"]):
                for n in FP8_LINEARS:
                    self.q8[i][n] = fp8_quantize_weight(self.lw[i][n + ".weight"])
            self.st.bias_in_mm = fp8_bias_in_mm(device)
        self.block_fn = block

    def set_attention(self, name):
        self.st.attn = name
        if self.device == "cuda":
            set_sdp_backend(name)

    def set_prompt(self, embeds):
        """Per-prompt state (not timed): text embedding, cross K/V."""
        w, dt, ct = self.w, self.st.dt, self.st.ct
        ctx = torch.zeros(TEXT_LEN, self.cfg["text_dim"], dtype=dt, device=self.device)
        ctx[:embeds.shape[0]] = embeds.to(dt)
        h = gelu_tanh(F.linear(ctx, w["text_embedding.0.weight"],
                               w["text_embedding.0.bias"]).to(ct)).to(dt)
        ctx = F.linear(h, w["text_embedding.2.weight"], w["text_embedding.2.bias"])
        self.cross = []
        for lw in self.lw:
            k = rms_norm(F.linear(ctx, lw["cross_attn.k.weight"], lw["cross_attn.k.bias"]),
                         lw["cross_attn.norm_k.weight"], ct, dt)
            v = F.linear(ctx, lw["cross_attn.v.weight"], lw["cross_attn.v.bias"]).to(dt)
            self.cross.append((k.contiguous(), v.contiguous()))

    def set_cache(self, kv):
        """The KV cache [N, D] per layer; rows [0, C*fs) hold the context
        (post-norm, post-RoPE keys and values)."""
        self.k_cache, self.v_cache = [], []
        for k, v in kv:
            kc = torch.zeros(self.st.N, self.cfg["dim"], dtype=self.st.dt, device=self.device)
            vc = torch.zeros_like(kc)
            kc[:k.shape[0]] = k.to(self.st.dt)
            vc[:v.shape[0]] = v.to(self.st.dt)
            self.k_cache.append(kc)
            self.v_cache.append(vc)

    def compile(self):
        """torch.compile the block once (every tensor an argument)."""
        self.block_fn = torch.compile(block, dynamic=False)

    def forward(self, latent, t):
        """latent [16, F, H, W] f32, t [F] -> v [16, F, H, W] (ct)."""
        w, st = self.w, self.st
        dt, ct, d = st.dt, st.ct, self.cfg["dim"]
        tok = patchify(latent).to(dt)
        pw = w["patch_embedding.weight"].reshape(d, 4 * IN_CH)
        x = F.linear(tok, pw).to(ct) + w["patch_embedding.bias"].to(ct)
        emb = sinusoid(t).to(dt)
        e = F.linear(F.silu(F.linear(emb, w["time_embedding.0.weight"],
                                     w["time_embedding.0.bias"]).to(ct)).to(dt),
                     w["time_embedding.2.weight"], w["time_embedding.2.bias"]).to(ct)
        e0 = F.linear(F.silu(e).to(dt), w["time_projection.1.weight"],
                      w["time_projection.1.bias"]).to(ct).reshape(-1, 6, d)
        for i in range(self.cfg["layers"]):
            mod = w["blocks.%d.modulation" % i].to(ct)[0][None] + e0
            ck, cv = self.cross[i]
            x = self.block_fn(st, x, mod, self.lw[i], self.q8[i], self.k_cache[i],
                              self.v_cache[i], ck, cv, self.cos, self.sin,
                              self.mask, self.mask_c)
        mh = w["head.modulation"].to(ct)[0][None] + e[:, None, :]
        x3 = x.reshape(st.frames, st.fs, d)
        h = layer_norm(x3, ct) * (1 + mh[:, 1][:, None]) + mh[:, 0][:, None]
        y = F.linear(h.to(dt).reshape(st.L, d), w["head.head.weight"]).to(ct) \
            + w["head.head.bias"].to(ct)
        return unpatchify(y, st.frames, self.hp, self.wp)


def fp8_bias_in_mm(device):
    """Whether this torch's _scaled_mm takes a bias with row-wise scales."""
    try:
        a = torch.ones(16, 32, device=device).to(torch.float8_e4m3fn)
        b = torch.ones(16, 32, device=device).to(torch.float8_e4m3fn)
        torch._scaled_mm(a, b.t(), scale_a=torch.ones(16, 1, device=device),
                         scale_b=torch.ones(1, 16, device=device),
                         bias=torch.zeros(16, device=device, dtype=torch.bfloat16),
                         out_dtype=torch.bfloat16)
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------
# benchmark

def forward_tflop(cfg, L, N):
    d, f = cfg["dim"], cfg["ffn"]
    return cfg["layers"] * (L * (12.0 * d * d + 4.0 * d * f)
                            + 4.0 * L * d * (N + TEXT_LEN)) / 1e12


def time_cuda(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return times


def pick_attention(peer, log):
    """Time each self-attention variant at the real shape (eager, random
    bf16 q/k/v); check each against the f32 math reference on the first 256
    queries; keep the fastest that matches."""
    st = peer.st
    L, N, D = st.L, st.N, peer.cfg["dim"]
    g = torch.Generator(device="cuda").manual_seed(5)
    q = torch.randn(L, D, device="cuda", generator=g).to(torch.bfloat16)
    k = torch.randn(N, D, device="cuda", generator=g).to(torch.bfloat16)
    v = torch.randn(N, D, device="cuda", generator=g).to(torch.bfloat16)
    ref = attention_math(q[:256], k, v, st.heads, torch.float32, peer.mask_c[:256])
    results = {}
    for name in ATTN_VARIANTS:
        peer.set_attention(name)
        try:
            got = self_attention(st, q[:256], k, v, peer.mask[:, :, :256], None).float()
            err = float((got - ref.float()).norm() / ref.float().norm())
            ms = statistics.median(time_cuda(
                lambda: self_attention(st, q, k, v, peer.mask, None), 3, 10))
        except Exception as e:   # a backend this build or GPU lacks
            log("attention %-9s unavailable: %s" % (name, str(e).splitlines()[0][:160]))
            continue
        tf = 4.0 * L * N * D / (ms * 1e-3) / 1e12
        results[name] = {"ms": ms, "tflops": tf, "rel_err": err}
        log("attention %-9s %.3f ms  %.1f TFLOP/s  rel err %.2e" % (name, ms, tf, err))
    ok = {n: r for n, r in results.items() if r["rel_err"] < 2e-2}
    if not ok:
        raise SystemExit("torch_forward_bench: no attention variant matches the reference")
    best = min(ok, key=lambda n: ok[n]["ms"])
    peer.set_attention(best)
    return best, results


def run_bench(args):
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else \
        (lambda s: print(s, flush=True))
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("torch_forward_bench: no CUDA device", file=sys.stderr)
        return 77
    cfg = wan14b(args.layers)
    if args.dim:
        cfg.update(dim=args.dim, heads=args.dim // HEAD_DIM, ffn=args.ffn or 2 * args.dim,
                   text_dim=args.text_dim or 64)
    hh, ww = args.size
    hp, wp = hh // 16, ww // 16
    F_, C = args.frames, args.context_frames
    fs = hp * wp
    L, N = F_ * fs, (C + F_) * fs
    out = {"torch": torch.__version__, "device": dev, "layers": cfg["layers"],
           "height": hh, "width": ww, "L": L, "N": N, "warmup": args.warmup,
           "iters": args.iters, "compile": args.compile,
           "forward_tflop": forward_tflop(cfg, L, N)}
    if dev == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    t0 = time.time()
    dt, ct = torch.bfloat16, torch.float32
    w = random_weights_on_device(cfg, dt, dev) if dev == "cuda" else \
        random_weights(cfg, dt, dev)
    log("weights made in %.1f s (%.2f GB)" % (time.time() - t0,
        sum(t.numel() * t.element_size() for t in w.values()) / 1e9))
    g = torch.Generator(device="cpu").manual_seed(1)
    latent = torch.randn(IN_CH, F_, 2 * hp, 2 * wp, generator=g).to(dev)
    tsteps = torch.full((F_,), 750.0, dtype=torch.float64, device=dev)
    embeds = torch.randn(64, cfg["text_dim"], generator=g).to(dev)
    ctx_k = torch.randn(C * fs, cfg["dim"], generator=g).to(device=dev, dtype=dt)
    ctx_v = torch.randn(C * fs, cfg["dim"], generator=g).to(device=dev, dtype=dt)
    kv = [(ctx_k, ctx_v)] * cfg["layers"]

    default_attn = "sdpa" if dev == "cuda" and have_sdpa() else "math"
    for mode in [m for m in args.modes.split(",") if m]:
        fp8 = mode == "fp8"
        if fp8 and (not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm")):
            log("fp8: torch %s has no float8 / _scaled_mm (skipped)" % torch.__version__)
            out["fp8_skipped"] = "no float8 in torch %s" % torch.__version__
            continue
        if fp8 and (dev != "cuda" or torch.cuda.get_device_capability(0) < (8, 9)):
            log("fp8: needs a CUDA device of compute capability 8.9 or newer (skipped)")
            out["fp8_skipped"] = "no CUDA device of compute capability >= 8.9"
            continue
        t0 = time.time()
        peer = Peer(cfg, w, dev, dt, ct, F_, hp, wp, C, attn=default_attn, fp8=fp8,
                    fast_accum=not args.fp8_exact_accum)
        peer.set_prompt(embeds)
        peer.set_cache(kv)
        setup_s = time.time() - t0
        if dev == "cuda" and have_sdpa():
            if "attention" not in out:
                if args.attn == "auto":
                    best, results = pick_attention(peer, log)
                    out["attention_variants"] = results
                else:
                    best = args.attn
                out["attention"] = best
            peer.set_attention(out["attention"])
        use_compile = args.compile == "on" and hasattr(torch, "compile")
        compile_error = None
        if use_compile:
            peer.compile()
        t0 = time.time()
        with torch.no_grad():
            try:
                peer.forward(latent, tsteps)      # compiles on the first call
            except Exception as e:                # no compiler on the host, ...
                if not use_compile:
                    raise
                compile_error = str(e).splitlines()[0][:300]
                log("%s: torch.compile failed (%s); timing eager" % (mode, compile_error))
                use_compile = False
                peer.block_fn = block
                peer.forward(latent, tsteps)
            if dev == "cuda":
                torch.cuda.synchronize()
        first_s = time.time() - t0
        with torch.no_grad():
            if dev == "cuda":
                times = time_cuda(lambda p=peer: p.forward(latent, tsteps),
                                  args.warmup, args.iters)
            else:
                times = []
                for _ in range(args.iters):
                    a = time.time()
                    peer.forward(latent, tsteps)
                    times.append((time.time() - a) * 1e3)
            v = peer.forward(latent, tsteps)
        finite = bool(torch.isfinite(v).all())
        med = statistics.median(times)
        out[mode] = {"ms_median": med, "ms_min": min(times), "ms_max": max(times),
                     "tflops": out["forward_tflop"] / (med * 1e-3),
                     "setup_s": setup_s, "first_call_s": first_s,
                     "compiled": use_compile, "compile_error": compile_error,
                     "finite": finite,
                     "fp8_bias_in_mm": peer.st.bias_in_mm if fp8 else None,
                     "peak_mib": (torch.cuda.max_memory_allocated() / 2**20
                                  if dev == "cuda" else None)}
        log("%-5s forward %.2f ms median (min %.2f, max %.2f; %d runs after %d "
            "warm-up), %.1f TFLOP/s, first call %.1f s%s" % (
                mode, med, min(times), max(times), len(times), args.warmup,
                out[mode]["tflops"], first_s, "" if finite else ", NOT FINITE"))
        del peer
        if dev == "cuda":
            torch.cuda.empty_cache()
        # one cumulative JSON line per mode: a later mode killed by a
        # timeout leaves the earlier results
        if args.json:
            print(json.dumps(out), flush=True)
        if not finite:
            return 1
    if args.json:
        print(json.dumps(out), flush=True)
    return 0


# --------------------------------------------------------------------------
# --check: the forward at a tiny shape in float64 against dit_ref.py

def run_check():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "reference"))
    import dit_ref  # noqa: E402

    cfg = {"dim": 256, "heads": 2, "layers": 2, "ffn": 512, "text_dim": 64}
    F_, C, hp, wp = 3, 3, 4, 4
    fs = hp * wp
    f64 = torch.float64
    w = random_weights(cfg, f64, "cpu", seed=3)
    g = torch.Generator().manual_seed(4)
    latent = torch.randn(IN_CH, F_, 2 * hp, 2 * wp, generator=g, dtype=f64)
    context = torch.randn(IN_CH, C, 2 * hp, 2 * wp, generator=g, dtype=f64)
    embeds = torch.randn(7, cfg["text_dim"], generator=g, dtype=f64)
    t = torch.full((F_,), 750.0, dtype=f64)

    ref_cfg = dit_ref.infer_config(w)
    prompt = dit_ref.prompt_state(w, ref_cfg, dit_ref.text_embed(w, embeds))
    kvs = dit_ref.recompute_kv(w, ref_cfg, prompt, context, F_)
    bias = dit_ref.cached_bias(C, fs, F_ * fs, 0.3)
    want, own = dit_ref.forward(w, ref_cfg, latent, t, prompt, frame_offset=C,
                                kv_prefix=kvs, logit_bias=bias, collect_kv=True)

    peer = Peer(cfg, w, "cpu", f64, f64, F_, hp, wp, C, attn="math")
    peer.set_prompt(embeds)
    peer.set_cache([(k.reshape(C * fs, -1), v.reshape(C * fs, -1)) for k, v in kvs])
    got = peer.forward(latent, t)
    err = float((got - want).norm() / want.norm())
    kerr = float((peer.k_cache[0][C * fs:] - own[0][0].reshape(F_ * fs, -1)).norm()
                 / own[0][0].norm())
    ok, kok = err < 1e-10, kerr < 1e-10
    print("torch_forward_bench --check: tiny forward (2 layers, dim 256, L %d, N %d, "
          "kv-bias 0.3) vs dit_ref.py: rel L2 %.3e (limit 1e-10) %s"
          % (F_ * fs, (C + F_) * fs, err, "ok" if ok else "FAIL"))
    print("torch_forward_bench --check: own K rows written to the cache: rel L2 "
          "%.3e %s" % (kerr, "ok" if kok else "FAIL"))
    # the same forward in bf16 stays near it (the benchmark's precision)
    peer16 = Peer(cfg, {k: v.to(torch.bfloat16) for k, v in w.items()}, "cpu",
                  torch.bfloat16, torch.float32, F_, hp, wp, C, attn="math")
    peer16.set_prompt(embeds)
    peer16.set_cache([(k.reshape(C * fs, -1), v.reshape(C * fs, -1)) for k, v in kvs])
    got16 = peer16.forward(latent.float(), t).double()
    err16 = float((got16 - want).norm() / want.norm())
    ok16 = err16 < 5e-2
    print("torch_forward_bench --check: the same in bf16/f32 (the benchmark's "
          "precision): rel L2 %.3e (limit 5e-2) %s" % (err16, "ok" if ok16 else "FAIL"))
    return 0 if ok and kok and ok16 else 1


def parse_size(s):
    try:
        h, w = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must be HxW, got %r" % s)
    if h % 16 or w % 16 or h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError("size %r: both must be multiples of 16" % s)
    return h, w


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default="bf16,fp8", help="comma list of bf16, fp8")
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--size", type=parse_size, default=(320, 576))
    ap.add_argument("--dim", type=int, default=0,
                    help="a smaller model for CPU runs (multiple of 128; 0 = 5120)")
    ap.add_argument("--ffn", type=int, default=0)
    ap.add_argument("--text-dim", type=int, default=0)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--context-frames", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--compile", choices=("on", "off"), default="on")
    ap.add_argument("--attn", default="auto", choices=("auto",) + ATTN_VARIANTS + ("math",),
                    help="self-attention variant (auto: the fastest that matches)")
    ap.add_argument("--fp8-exact-accum", action="store_true",
                    help="use_fast_accum=False in _scaled_mm")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="tiny float64 forward against tests/reference/dit_ref.py")
    args = ap.parse_args(argv)
    if args.check:
        return run_check()
    for m in args.modes.split(","):
        if m not in ("bf16", "fp8", ""):
            ap.error("unknown mode %r (bf16, fp8)" % m)
    if args.layers < 1 or args.iters < 1 or args.warmup < 0:
        ap.error("--layers and --iters must be >= 1, --warmup >= 0")
    if args.dim % HEAD_DIM or args.dim < 0:
        ap.error("--dim must be a multiple of %d" % HEAD_DIM)
    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
