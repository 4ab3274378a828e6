#!/usr/bin/python3
"""Float64 PyTorch reference of the causal Wan2.1 DiT and its streaming rollout.

This is the oracle the C engine is tested against.  It is written from
docs/reference/wan2.1-spec.md (sections 2 and 4.1-4.8) and shares no code with the
engine: weights and tensors go through st_io.py (numpy + struct), every op is
spelled out with torch tensor math in float64.

Model (spec 2.2-2.6, 4.1): Conv3d patch embedding (1,2,2), fp64 sinusoid with the
cos half first, time MLP, per-frame adaLN modulation, text embedding of the
prompt rows zero-padded to 512 (padded rows are attended), blocks with full-width
q/k RMSNorm and interleaved 3D RoPE (22/21/21 pairs, absolute temporal index =
frame + frame offset), cross-attention over the 512 text rows, head and
channel-fastest unpatchify.

Streaming (spec 4.6, 4.7d, 4.8, as the engine implements it): chunk 0 denoises
F frames against its own keys; every later chunk first recomputes the K/V of
the last C generated latent frames (t = 0, RoPE frames 0..C-1, block-causal
mask in blocks of F frames), then denoises at RoPE frames C..C+F-1 against
[context K/V, own K/V] with log(kv_bias) added to the logits of context frames
1..C-1.  Steps are looked up, unwarped, in the shift-5 table.

Subcommands: make-weights, make-inputs, forward, rollout, selftest (see --help).
"""

import argparse
import math
import os
import re
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

HEAD_DIM = 128
FREQ_DIM = 256
TEXT_LEN = 512
IN_CH = 16
EPS = 1e-6
NUM_TRAIN_TIMESTEPS = 1000

DTYPE = torch.float64


# --------------------------------------------------------------------------
# weights and config

def load_weights(path):
    arrays, _ = st_io.read(path)
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}


def infer_config(w):
    if "patch_embedding.weight" not in w:
        raise SystemExit("weights: missing patch_embedding.weight")
    dim = w["patch_embedding.weight"].shape[0]
    if dim % HEAD_DIM:
        raise SystemExit("weights: dim %d is not a multiple of %d" % (dim, HEAD_DIM))
    layers = 0
    while "blocks.%d.modulation" % layers in w:
        layers += 1
    cfg = {
        "dim": dim,
        "heads": dim // HEAD_DIM,
        "layers": layers,
        "text_dim": w["text_embedding.0.weight"].shape[1],
        "ffn": w["blocks.0.ffn.0.weight"].shape[0],
    }
    expected = param_shapes(cfg)
    for k, shape in expected.items():
        if k not in w:
            raise SystemExit("weights: missing %s" % k)
        if tuple(w[k].shape) != shape:
            raise SystemExit("weights: %s has shape %s, expected %s"
                             % (k, list(w[k].shape), list(shape)))
    extra = sorted(set(w) - set(expected))
    if extra:
        raise SystemExit("weights: unexpected keys %s" % extra[:5])
    return cfg


def param_shapes(cfg):
    """Key -> shape, exactly spec 3.2."""
    d, f, td = cfg["dim"], cfg["ffn"], cfg["text_dim"]
    s = {
        "patch_embedding.weight": (d, IN_CH, 1, 2, 2),
        "patch_embedding.bias": (d,),
        "text_embedding.0.weight": (d, td), "text_embedding.0.bias": (d,),
        "text_embedding.2.weight": (d, d), "text_embedding.2.bias": (d,),
        "time_embedding.0.weight": (d, FREQ_DIM), "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d), "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d), "time_projection.1.bias": (6 * d,),
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
    s["head.modulation"] = (1, 2, d)
    s["head.head.weight"] = (2 * 2 * IN_CH, d)
    s["head.head.bias"] = (2 * 2 * IN_CH,)
    return s


# --------------------------------------------------------------------------
# elementary ops

def linear(x, w, b):
    return x @ w.t() + b


def silu(x):
    return x / (1.0 + torch.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, weight=None, bias=None):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + EPS)
    if weight is not None:
        y = y * weight + bias
    return y


def rms_norm(x, weight):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + EPS) * weight


def sinusoid(t):
    """[n] timesteps -> [n, 256]; cos half first, omega_j = 10000^(-j/128)."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    half = FREQ_DIM // 2
    omega = torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                      -torch.arange(half, dtype=torch.float64) / half)
    arg = t[:, None] * omega[None, :]
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


# --------------------------------------------------------------------------
# 3D RoPE

def rope_pairs():
    """(temporal, height, width) pair counts for head_dim 128: 22, 21, 21."""
    c = HEAD_DIM // 2
    return c - 2 * (c // 3), c // 3, c // 3


def rope_omegas():
    d = HEAD_DIM
    dim_t = d - 4 * (d // 6)
    dim_s = 2 * (d // 6)
    base = torch.tensor(10000.0, dtype=torch.float64)
    om_t = torch.pow(base, -torch.arange(0, dim_t, 2, dtype=torch.float64) / dim_t)
    om_s = torch.pow(base, -torch.arange(0, dim_s, 2, dtype=torch.float64) / dim_s)
    return om_t, om_s


def rope_angles(frames, hp, wp, frame_offset):
    """[frames*hp*wp, 64] rotation angle of each pair, tokens in (f, h, w) order."""
    om_t, om_s = rope_omegas()
    nt, nh, nw = rope_pairs()
    assert (len(om_t), len(om_s), len(om_s)) == (nt, nh, nw)
    f = torch.arange(frames, dtype=torch.float64) + frame_offset
    h = torch.arange(hp, dtype=torch.float64)
    w = torch.arange(wp, dtype=torch.float64)
    at = (f[:, None] * om_t[None, :])[:, None, None, :].expand(frames, hp, wp, nt)
    ah = (h[:, None] * om_s[None, :])[None, :, None, :].expand(frames, hp, wp, nh)
    aw = (w[:, None] * om_s[None, :])[None, None, :, :].expand(frames, hp, wp, nw)
    return torch.cat([at, ah, aw], dim=-1).reshape(frames * hp * wp, nt + nh + nw)


def apply_rope(x, angles):
    """x [L, H, 128]: pairs (x[2i], x[2i+1]) rotated by angles [L, 64]."""
    L, H, _ = x.shape
    xp = x.reshape(L, H, HEAD_DIM // 2, 2)
    a, b = xp[..., 0], xp[..., 1]
    c = torch.cos(angles).to(x.dtype)[:, None, :]
    s = torch.sin(angles).to(x.dtype)[:, None, :]
    return torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(L, H, HEAD_DIM)


# --------------------------------------------------------------------------
# patchify / unpatchify

def patch_embed(w, x):
    """x [16, F, h, w] -> tokens [F*(h/2)*(w/2), D] (Conv3d, kernel = stride = (1,2,2))."""
    y = torch.nn.functional.conv3d(x[None], w["patch_embedding.weight"],
                                   w["patch_embedding.bias"], stride=(1, 2, 2))[0]
    d = y.shape[0]
    return y.reshape(d, -1).t().contiguous()


def unpatchify(y, frames, hp, wp):
    """tokens [L, 64] with index (q*2 + r)*16 + c -> [16, F, 2hp, 2wp]."""
    u = y.reshape(frames, hp, wp, 2, 2, IN_CH)          # f h w q r c
    u = u.permute(5, 0, 1, 3, 2, 4)                     # c f h q w r
    return u.reshape(IN_CH, frames, 2 * hp, 2 * wp)


# --------------------------------------------------------------------------
# model

def text_embed(w, embeds):
    """embeds [rows, text_dim] -> [512, D]; zero rows pad the prompt to 512."""
    rows, td = embeds.shape
    if rows > TEXT_LEN:
        raise SystemExit("embeds: %d rows, at most %d" % (rows, TEXT_LEN))
    ctx = torch.zeros(TEXT_LEN, td, dtype=DTYPE)
    ctx[:rows] = embeds
    h = gelu_tanh(linear(ctx, w["text_embedding.0.weight"], w["text_embedding.0.bias"]))
    return linear(h, w["text_embedding.2.weight"], w["text_embedding.2.bias"])


def prompt_state(w, cfg, ctx):
    """Per-prompt state: the text embedding and each layer's cross-attention K/V
    (they depend only on the prompt, spec 2.3, so they are computed once)."""
    nh = cfg["heads"]
    cross = []
    for i in range(cfg["layers"]):
        c = "blocks.%d.cross_attn." % i
        k = rms_norm(linear(ctx, w[c + "k.weight"], w[c + "k.bias"]), w[c + "norm_k.weight"])
        v = linear(ctx, w[c + "v.weight"], w[c + "v.bias"])
        cross.append((k.reshape(-1, nh, HEAD_DIM), v.reshape(-1, nh, HEAD_DIM)))
    return {"ctx": ctx, "cross": cross}


def time_embed(w, t):
    """t [F] -> e [F, D] (head) and e0 [F, 6, D] (blocks)."""
    emb = sinusoid(t).to(DTYPE)
    e = linear(silu(linear(emb, w["time_embedding.0.weight"], w["time_embedding.0.bias"])),
               w["time_embedding.2.weight"], w["time_embedding.2.bias"])
    e0 = linear(silu(e), w["time_projection.1.weight"], w["time_projection.1.bias"])
    return e, e0.reshape(e.shape[0], 6, e.shape[1])


def attention(q, k, v, logit_bias=None):
    """q [L, H, 128], k/v [N, H, 128]; logit_bias [L, N] added after the scaling."""
    s = torch.einsum("lhd,nhd->hln", q, k) / math.sqrt(HEAD_DIM)
    if logit_bias is not None:
        s = s + logit_bias[None]
    p = torch.softmax(s, dim=-1)
    o = torch.einsum("hln,nhd->lhd", p, v)
    return o.reshape(q.shape[0], -1)


def forward(w, cfg, x, t, prompt, frame_offset=0, kv_prefix=None, logit_bias=None,
            collect_kv=False):
    """One DiT forward.

    x [16, F, h, w]; t [F] per-frame timesteps; prompt from prompt_state();
    kv_prefix: per layer (K, V) [N0, H, 128] prepended to the own keys (K already
    normed and rotated); logit_bias [L, N0 + L] additive (-inf = masked).
    Returns v [16, F, h, w] and, with collect_kv, the per-layer own (K, V)."""
    d, nh = cfg["dim"], cfg["heads"]
    _, frames, hh, ww = x.shape
    hp, wp = hh // 2, ww // 2
    fs = hp * wp
    L = frames * fs
    tok = patch_embed(w, x)
    e, e0 = time_embed(w, t)
    angles = rope_angles(frames, hp, wp, frame_offset)
    kvs = []

    def per_frame(v):  # [F, D] -> [L, D], broadcast over each frame's tokens
        return v[:, None, :].expand(frames, fs, d).reshape(L, d)

    for i in range(cfg["layers"]):
        p = "blocks.%d." % i
        m = w[p + "modulation"][0][None] + e0           # [F, 6, D]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            per_frame(m[:, j]) for j in range(6))

        h = layer_norm(tok) * (1 + scale_msa) + shift_msa
        a = p + "self_attn."
        q = rms_norm(linear(h, w[a + "q.weight"], w[a + "q.bias"]), w[a + "norm_q.weight"])
        k = rms_norm(linear(h, w[a + "k.weight"], w[a + "k.bias"]), w[a + "norm_k.weight"])
        v = linear(h, w[a + "v.weight"], w[a + "v.bias"])
        q = apply_rope(q.reshape(L, nh, HEAD_DIM), angles)
        k = apply_rope(k.reshape(L, nh, HEAD_DIM), angles)
        v = v.reshape(L, nh, HEAD_DIM)
        if collect_kv:
            kvs.append((k, v))
        if kv_prefix is not None:
            kk = torch.cat([kv_prefix[i][0], k], dim=0)
            vv = torch.cat([kv_prefix[i][1], v], dim=0)
        else:
            kk, vv = k, v
        o = linear(attention(q, kk, vv, logit_bias), w[a + "o.weight"], w[a + "o.bias"])
        tok = tok + gate_msa * o

        c = p + "cross_attn."
        y = layer_norm(tok, w[p + "norm3.weight"], w[p + "norm3.bias"])
        q = rms_norm(linear(y, w[c + "q.weight"], w[c + "q.bias"]), w[c + "norm_q.weight"])
        k, v = prompt["cross"][i]
        o = attention(q.reshape(L, nh, HEAD_DIM), k, v)
        tok = tok + linear(o, w[c + "o.weight"], w[c + "o.bias"])

        h = layer_norm(tok) * (1 + scale_mlp) + shift_mlp
        f = linear(gelu_tanh(linear(h, w[p + "ffn.0.weight"], w[p + "ffn.0.bias"])),
                   w[p + "ffn.2.weight"], w[p + "ffn.2.bias"])
        tok = tok + gate_mlp * f

    mh = w["head.modulation"][0][None] + e[:, None, :]  # [F, 2, D]
    shift, scale = per_frame(mh[:, 0]), per_frame(mh[:, 1])
    y = linear(layer_norm(tok) * (1 + scale) + shift, w["head.head.weight"], w["head.head.bias"])
    out = unpatchify(y, frames, hp, wp)
    return (out, kvs) if collect_kv else out


def block_causal_bias(frames, fs, block_frames):
    """[L, L] additive mask: query in block b sees keys of blocks 0..b (spec 4.2)."""
    L = frames * fs
    blk = torch.arange(L) // (fs * block_frames)
    allowed = blk[None, :] <= blk[:, None]
    bias = torch.zeros(L, L, dtype=DTYPE)
    bias[~allowed] = -math.inf
    return bias


def recompute_kv(w, cfg, prompt, context, block_frames):
    """Context pass: t = 0, RoPE frames 0..C-1, block-causal; returns per-layer (K, V)."""
    cframes = context.shape[1]
    fs = (context.shape[2] // 2) * (context.shape[3] // 2)
    t0 = torch.zeros(cframes, dtype=DTYPE)
    _, kvs = forward(w, cfg, context, t0, prompt, frame_offset=0,
                     logit_bias=block_causal_bias(cframes, fs, block_frames), collect_kv=True)
    return kvs


def cached_bias(cframes, fs, own, kv_bias):
    """[own, C*fs + own] logit bias: log(kv_bias) on window positions [fs, C*fs)."""
    bias = torch.zeros(own, cframes * fs + own, dtype=DTYPE)
    if kv_bias != 1.0 and cframes > 1:
        bias[:, fs:cframes * fs] = math.log(kv_bias)
    return bias


def forward_with_context(w, cfg, x, t, prompt, context, frame_offset, kv_bias, block_frames):
    kvs = recompute_kv(w, cfg, prompt, context, block_frames)
    fs = (x.shape[2] // 2) * (x.shape[3] // 2)
    bias = cached_bias(context.shape[1], fs, x.shape[1] * fs, kv_bias)
    return forward(w, cfg, x, t, prompt, frame_offset=frame_offset, kv_prefix=kvs,
                   logit_bias=bias)


# --------------------------------------------------------------------------
# scheduler

def shifted_table(shift):
    """float32 (sigma', timesteps) of FlowMatchScheduler(shift, extra_one_step) with 1000 steps."""
    sig = torch.linspace(1.0, 0.0, NUM_TRAIN_TIMESTEPS + 1, dtype=torch.float32)[:-1]
    sig = shift * sig / (1 + (shift - 1) * sig)
    return sig, sig * NUM_TRAIN_TIMESTEPS


def sigma_of(t, shift):
    sig, ts = shifted_table(shift)
    i = int(torch.argmin((ts - float(t)).abs()))
    return float(sig[i]), i


# --------------------------------------------------------------------------
# rollout

def rollout(w, cfg, prompt, noise, chunks, frames, cframes, kv_bias, steps, shift, log=None):
    sigmas = [sigma_of(s, shift)[0] for s in steps]
    outputs = []
    for k in range(chunks):
        if k == 0:
            kvs, offset, bias = None, 0, None
        else:
            allf = torch.cat(outputs, dim=1)
            context = allf[:, -cframes:]
            cf = context.shape[1]
            kvs = recompute_kv(w, cfg, prompt, context, frames)
            offset = cf
            fs = (context.shape[2] // 2) * (context.shape[3] // 2)
            bias = cached_bias(cf, fs, frames * fs, kv_bias)
        x = noise_tensor(noise, k, 0, frames)
        for j, step in enumerate(steps):
            t = torch.full((frames,), float(step), dtype=DTYPE)
            v = forward(w, cfg, x, t, prompt, frame_offset=offset, kv_prefix=kvs, logit_bias=bias)
            x0 = x - sigmas[j] * v
            if j + 1 < len(steps):
                x = (1 - sigmas[j + 1]) * x0 + sigmas[j + 1] * noise_tensor(noise, k, j + 1, frames)
        outputs.append(x0)
        if log:
            log("chunk %d done" % k)
    return outputs


def noise_tensor(noise, k, j, frames):
    key = "noise.c%d.s%d" % (k, j)
    if key not in noise:
        raise SystemExit("noise: missing %s" % key)
    n = noise[key]
    if n.dim() != 4 or n.shape[0] != IN_CH or n.shape[1] != frames:
        raise SystemExit("noise: %s has shape %s, expected [16, %d, h, w]"
                         % (key, list(n.shape), frames))
    return n


# --------------------------------------------------------------------------
# CLI helpers

def read_tensors(path):
    arrays, meta = st_io.read(path)
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}, meta


def to_np(t):
    return t.detach().cpu().numpy().astype(np.float32)


def check_latent(name, x):
    if x.dim() != 4 or x.shape[0] != IN_CH or x.shape[2] % 2 or x.shape[3] % 2:
        raise SystemExit("%s: shape %s, expected [16, F, h, w] with even h, w"
                         % (name, list(x.shape)))


def load_model(args):
    w = load_weights(args.weights)
    cfg = infer_config(w)
    e, _ = read_tensors(args.embeds)
    if "embeds" not in e:
        raise SystemExit("%s: no tensor 'embeds'" % args.embeds)
    emb = e["embeds"]
    if emb.dim() != 2 or emb.shape[1] != cfg["text_dim"]:
        raise SystemExit("%s: embeds has shape %s, expected [rows, %d]"
                         % (args.embeds, list(emb.shape), cfg["text_dim"]))
    return w, cfg, prompt_state(w, cfg, text_embed(w, emb))


def cmd_make_weights(args):
    rng = np.random.default_rng(args.seed)
    cfg = {"dim": args.dim, "heads": args.dim // HEAD_DIM, "layers": args.layers,
           "text_dim": args.text_dim, "ffn": args.ffn}
    if args.dim % HEAD_DIM or args.dim <= 0:
        raise SystemExit("--dim must be a positive multiple of %d" % HEAD_DIM)
    out = {}
    for k, shape in param_shapes(cfg).items():
        if k.endswith("modulation"):
            a = rng.standard_normal(shape) / math.sqrt(args.dim)
        elif re.search(r"(norm_q|norm_k|norm3)\.weight$", k):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif k.endswith(".bias"):
            a = 0.02 * rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            a = rng.standard_normal(shape) / math.sqrt(fan_in)
        out[k] = a.astype(np.float32)
    st_io.write(args.out, out, {"format": "pt"})


def parse_hw(s):
    m = re.fullmatch(r"(\d+)x(\d+)", s)
    if not m:
        raise SystemExit("--latent-size must look like 16x16")
    h, w = int(m.group(1)), int(m.group(2))
    if h <= 0 or w <= 0 or h % 2 or w % 2:
        raise SystemExit("--latent-size: h and w must be positive and even")
    return h, w


def cmd_make_inputs(args):
    w = load_weights(args.weights)
    cfg = infer_config(w)
    h, ww = parse_hw(args.latent_size)
    rng = np.random.default_rng(args.seed)
    f = args.frames
    embeds = rng.standard_normal((args.txt_rows, cfg["text_dim"])).astype(np.float32)
    st_io.write(args.out_embeds, {"embeds": embeds})
    noise = {}
    for k in range(args.chunks):
        for j in range(args.steps):
            n = rng.standard_normal((IN_CH, f, h, ww)).astype(np.float32)
            noise["noise.c%d.s%d" % (k, j)] = n
    st_io.write(args.out_noise, noise)
    pattern = [1000.0, 750.0, 750.0, 500.0, 250.0, 0.0]
    t = np.array([pattern[i % len(pattern)] for i in range(f)], dtype=np.float32)
    fwd = {
        "x": rng.standard_normal((IN_CH, f, h, ww)).astype(np.float32),
        "t": t,
        "context": rng.standard_normal((IN_CH, args.context_frames, h, ww)).astype(np.float32),
    }
    st_io.write(args.out_forward, fwd, {"frame_offset": str(args.frame_offset)})


def cmd_forward(args):
    w, cfg, prompt = load_model(args)
    xin, meta = read_tensors(args.input)
    for key in ("x", "t"):
        if key not in xin:
            raise SystemExit("%s: no tensor %r" % (args.input, key))
    x, t = xin["x"], xin["t"]
    check_latent("x", x)
    if t.dim() != 1 or t.shape[0] != x.shape[1]:
        raise SystemExit("t has shape %s, expected [%d]" % (list(t.shape), x.shape[1]))
    offset = int(meta.get("frame_offset", "0"))
    if args.with_context:
        if "context" not in xin:
            raise SystemExit("%s: no tensor 'context'" % args.input)
        c = xin["context"]
        check_latent("context", c)
        if c.shape[2:] != x.shape[2:]:
            raise SystemExit("context and x latent sizes differ")
        block = args.frames_per_chunk or x.shape[1]
        v = forward_with_context(w, cfg, x, t, prompt, c, offset, args.kv_bias, block)
    else:
        v = forward(w, cfg, x, t, prompt, frame_offset=offset)
    st_io.write(args.out, {"v": to_np(v)})


def cmd_rollout(args):
    w, cfg, prompt = load_model(args)
    noise, _ = read_tensors(args.noise)
    steps = [float(s) for s in args.steps.split(",")]
    t0 = time.time()
    log = (lambda s: print("%s (%.2f s)" % (s, time.time() - t0), file=sys.stderr)) \
        if args.verbose else None
    outs = rollout(w, cfg, prompt, noise, args.chunks, args.frames_per_chunk, args.context_frames,
                   args.kv_bias, steps, args.shift, log)
    st_io.write(args.out, {"latents.c%d" % k: to_np(o) for k, o in enumerate(outs)})


# --------------------------------------------------------------------------
# selftest

def cmd_selftest(args):
    global DTYPE
    failures = []

    def check(name, ok, detail=""):
        print("%-48s %s %s" % (name, "ok" if ok else "FAIL", detail))
        if not ok:
            failures.append(name)

    def close(name, got, want, tol):
        check(name, abs(got - want) <= tol, "got %.9g want %.9g" % (got, want))

    # spec 8: sinusoid at t = 1000 and t = 0
    e = sinusoid([1000.0])[0]
    for i, want in enumerate([0.562379076290703, 0.789614728633505, 0.439953862701706]):
        close("sinusoid(1000) cos[%d]" % i, float(e[i]), want, 1e-12)
    for i, want in enumerate([0.826879540532003, 0.613602950062202, -0.898020377660690]):
        close("sinusoid(1000) sin[%d]" % i, float(e[128 + i]), want, 1e-12)
    e0 = sinusoid([0.0])[0]
    check("sinusoid(0) = [1]*128 + [0]*128",
          bool(torch.all(e0[:128] == 1.0)) and bool(torch.all(e0[128:] == 0.0)))

    # spec 8 / 4.6: shifted table and unwarped lookups (float32 values)
    sig, ts = shifted_table(5.0)
    for i, want in [(250, 937.5), (500, 833.33331), (750, 625.0), (999, 4.98008)]:
        close("timesteps[%d]" % i, float(ts[i]), want, 1e-4)
    close("sigma'[999]", float(sig[999]), 0.0049801, 1e-7)
    for t, want_s, want_i in [(1000, 1.0, 0), (750, 0.7500001, 625), (500, 0.5005996, 833),
                              (250, 0.2515974, 937), (0, 0.0049801, 999)]:
        s, i = sigma_of(t, 5.0)
        check("sigma(%d) index" % t, i == want_i, "got %d want %d" % (i, want_i))
        close("sigma(%d)" % t, s, want_s, 1e-7)

    # spec 2.6 / 8: RoPE split and frequencies, measured through apply_rope
    check("rope pairs 22/21/21", rope_pairs() == (22, 21, 21))
    om_t, om_s = rope_omegas()
    close("omega_t[1] = 10000^(-2/44)", float(om_t[1]), 0.65793, 1e-5)
    close("omega_s[1] = 10000^(-2/42)", float(om_s[1]), 0.64495, 1e-5)
    ones = torch.ones(1, 1, HEAD_DIM, dtype=DTYPE)
    ang = rope_angles(2, 2, 2, 0)       # tokens (f, h, w) in order: index = (f*2 + h)*2 + w
    moved = {}
    for name, tok in (("t", 4), ("h", 2), ("w", 1)):
        r = apply_rope(ones, ang[tok:tok + 1])[0, 0]
        moved[name] = torch.nonzero((r - 1.0).abs() > 1e-12).reshape(-1)
    check("rope temporal dims 0..43", moved["t"].tolist() == list(range(0, 44)))
    check("rope height dims 44..85", moved["h"].tolist() == list(range(44, 86)))
    check("rope width dims 86..127", moved["w"].tolist() == list(range(86, 128)))
    # pair 1 at frame position 1 rotates by omega_t[1]; offset shifts the temporal index
    r = apply_rope(torch.tensor([0.0, 0.0, 1.0, 0.0] + [0.0] * 124, dtype=DTYPE)[None, None],
                   rope_angles(1, 1, 1, 1))[0, 0]
    close("rope pair 1 angle at frame 1", math.atan2(float(r[3]), float(r[2])), float(om_t[1]),
          1e-12)
    r = apply_rope(torch.tensor([0.0] * 88 + [1.0, 0.0] + [0.0] * 38, dtype=DTYPE)[None, None],
                   rope_angles(1, 1, 2, 0)[1:2])
    close("rope width pair 44 angle at w=1", math.atan2(float(r[0, 0, 89]), float(r[0, 0, 88])),
          float(om_s[1]), 1e-12)

    # spec 2.2(1) and 2.5: patch-embed input index c*4 + q*2 + r, unpatchify (q*2 + r)*16 + c
    d = 4
    g = torch.Generator().manual_seed(0)
    wpe = torch.randn(d, IN_CH, 1, 2, 2, generator=g, dtype=DTYPE)
    x = torch.randn(IN_CH, 2, 4, 6, generator=g, dtype=DTYPE)
    tok = patch_embed({"patch_embedding.weight": wpe,
                       "patch_embedding.bias": torch.zeros(d, dtype=DTYPE)}, x)
    flat = wpe.reshape(d, 64)
    f_, h_, w_ = 1, 1, 2
    vec = torch.tensor([float(x[c, f_, 2 * h_ + q, 2 * w_ + r]) for c in range(16)
                        for q in range(2) for r in range(2)], dtype=DTYPE)
    err = float((tok[(f_ * 2 + h_) * 3 + w_] - flat @ vec).abs().max())
    check("patch embed index c*4+q*2+r", err < 1e-12, "err %.3g" % err)
    y = torch.randn(2 * 2 * 3, 64, generator=g, dtype=DTYPE)
    u = unpatchify(y, 2, 2, 3)
    ok = all(float(u[c, f_, 2 * h_ + q, 2 * w_ + r]) == float(y[(f_ * 2 + h_) * 3 + w_,
                                                                  (q * 2 + r) * 16 + c])
             for c in range(16) for q in range(2) for r in range(2))
    check("unpatchify index (q*2+r)*16+c", ok)

    # GELU-tanh against torch's implementation, LayerNorm against torch's
    z = torch.linspace(-6, 6, 101, dtype=DTYPE)
    check("gelu_tanh", torch.allclose(gelu_tanh(z),
                                      torch.nn.functional.gelu(z, approximate="tanh"),
                                      atol=1e-14, rtol=0))
    zz = torch.randn(5, 32, generator=g, dtype=DTYPE)
    check("layer_norm", torch.allclose(layer_norm(zz),
                                       torch.nn.functional.layer_norm(zz, (32,), eps=EPS),
                                       atol=1e-12, rtol=0))

    # model-level checks on a tiny random model (no files needed)
    tiny = {"dim": 256, "heads": 2, "layers": 2, "text_dim": 64, "ffn": 512}
    rng = np.random.default_rng(1)
    w = {}
    for k, shape in param_shapes(tiny).items():
        if k.endswith("modulation"):
            a = rng.standard_normal(shape) / math.sqrt(tiny["dim"])
        elif re.search(r"(norm_q|norm_k|norm3)\.weight$", k):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif k.endswith(".bias"):
            a = 0.02 * rng.standard_normal(shape)
        else:
            a = rng.standard_normal(shape) / math.sqrt(int(np.prod(shape[1:])))
        w[k] = torch.from_numpy(a)
    cfg = infer_config(w)
    check("infer_config", cfg == tiny, str(cfg))
    ctx = text_embed(w, torch.from_numpy(rng.standard_normal((7, 64))))
    prompt = prompt_state(w, cfg, ctx)
    hh = ww = 8
    fs = (hh // 2) * (ww // 2)
    xc = torch.from_numpy(rng.standard_normal((16, 3, hh, ww)))
    cx = torch.from_numpy(rng.standard_normal((16, 3, hh, ww)))
    t = torch.tensor([1000.0, 750.0, 750.0], dtype=DTYPE)

    # padded text rows become the constant W2 gelu(b1) + b2
    pad = linear(gelu_tanh(w["text_embedding.0.bias"]), w["text_embedding.2.weight"],
                 w["text_embedding.2.bias"])
    check("text padding rows constant", torch.allclose(ctx[7:], pad[None].expand(505, -1),
                                                       atol=1e-12, rtol=0))

    # cached path == full-sequence pass over [context, x] with the block-causal mask and
    # the kv-bias folded into the mask (same math, no cache)
    for kvb in (1.0, 0.3):
        v_cached = forward_with_context(w, cfg, xc, t, prompt, cx, 3, kvb, 3)
        full = torch.cat([cx, xc], dim=1)
        tf = torch.cat([torch.zeros(3, dtype=DTYPE), t])
        mask = block_causal_bias(6, fs, 3)
        if kvb != 1.0:
            mask[3 * fs:, fs:3 * fs] += math.log(kvb)
        v_full = forward(w, cfg, full, tf, prompt, frame_offset=0, logit_bias=mask)[:, 3:]
        rel = float((v_cached - v_full).norm() / v_full.norm())
        check("cached == masked full pass (bias %.1f)" % kvb, rel < 1e-12, "rel %.3g" % rel)

    # the bias and the context both reach the output
    v_a = forward_with_context(w, cfg, xc, t, prompt, cx, 3, 0.3, 3)
    v_c = forward_with_context(w, cfg, xc, t, prompt, cx, 3, 1.0, 3)
    cx2 = cx.clone()
    cx2[:, 2] += 1.0
    v_b = forward_with_context(w, cfg, xc, t, prompt, cx2, 3, 0.3, 3)
    check("kv bias changes the output", float((v_a - v_c).norm() / v_c.norm()) > 1e-4)
    check("context changes the output", float((v_a - v_b).norm() / v_a.norm()) > 1e-4)

    # per-frame timesteps: changing t of frame 2 changes frames 0..1 only through attention;
    # with the frame's own timestep the head modulation of frame 2 changes directly
    v0 = forward(w, cfg, xc, t, prompt)
    v1 = forward(w, cfg, xc, torch.tensor([1000.0, 750.0, 500.0], dtype=DTYPE), prompt)
    check("per-frame timestep reaches its frame", float((v0[:, 2] - v1[:, 2]).norm()) > 1e-6)

    # RoPE is relative inside the own keys: a frame offset alone leaves a keys-only
    # (no context) forward unchanged
    v_off = forward(w, cfg, xc, t, prompt, frame_offset=5)
    rel = float((v_off - v0).norm() / v0.norm())
    check("frame offset invariance without context", rel < 1e-10, "rel %.3g" % rel)

    # rollout: chunk 1 depends on chunk 0, timing of the tiny 16x16 three-chunk rollout
    hh = ww = 16
    noise = {"noise.c%d.s%d" % (k, j): torch.from_numpy(rng.standard_normal((16, 3, hh, ww)))
             for k in range(3) for j in range(4)}
    steps = [1000.0, 750.0, 500.0, 250.0]
    # CPU time of this (single-threaded) process, so a busy machine does not fail it
    t0 = time.process_time()
    outs = rollout(w, cfg, prompt, noise, 3, 3, 3, 0.3, steps, 5.0)
    dt = time.process_time() - t0
    check("3-chunk 16x16 rollout under 30 s CPU", dt < 30.0, "%.2f s" % dt)
    # same chunk-1 noise, different chunk-0 noise (8x8 latents to keep it quick)
    small = {k: v[:, :, :8, :8] for k, v in noise.items()}
    small2 = dict(small)
    small2["noise.c0.s0"] = small["noise.c0.s0"] + 0.5
    o1 = rollout(w, cfg, prompt, small, 2, 3, 3, 0.3, steps, 5.0)
    o2 = rollout(w, cfg, prompt, small2, 2, 3, 3, 0.3, steps, 5.0)
    d0 = float((o1[0] - o2[0]).norm() / o1[0].norm())
    d1 = float((o1[1] - o2[1]).norm() / o1[1].norm())
    check("chunk 1 depends on chunk 0", d0 > 1e-4 and d1 > 1e-6, "d0 %.3g d1 %.3g" % (d0, d1))
    check("rollout outputs finite", all(bool(torch.isfinite(o).all()) for o in outs))

    # the oracle's own float32 run stays far inside the C tolerances (1e-4 forward,
    # 1e-3 rollout), so those tolerances are reachable by a correct f32 engine
    w32 = {k: v.float() for k, v in w.items()}
    prompt32 = prompt_state(w32, cfg, ctx.float())
    DTYPE = torch.float32
    try:
        v32 = forward(w32, cfg, xc.float(), t.float(), prompt32)
        outs32 = rollout(w32, cfg, prompt32, {k: v.float() for k, v in noise.items()},
                         3, 3, 3, 0.3, steps, 5.0)
    finally:
        DTYPE = torch.float64
    rel = float((v32.double() - v0).norm() / v0.norm())
    check("float32 forward within 1e-5 of float64", rel < 1e-5, "rel %.3g" % rel)
    rel = max(float((a.double() - b).norm() / b.norm()) for a, b in zip(outs32, outs))
    check("float32 rollout within 1e-4 of float64", rel < 1e-4, "rel %.3g" % rel)

    # safetensors round trip and strictness
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "a.safetensors")
        a = rng.standard_normal((3, 5)).astype(np.float32)
        st_io.write(p, {"a": a, "b": np.arange(4, dtype=np.float32)}, {"k": "v"})
        back, meta = st_io.read(p)
        check("safetensors round trip", np.array_equal(back["a"], a) and meta == {"k": "v"})
        raw = open(p, "rb").read()
        open(p, "wb").write(raw[:-4])
        try:
            st_io.read(p)
            check("safetensors truncated file rejected", False)
        except st_io.SafetensorsError:
            check("safetensors truncated file rejected", True)

        # hand-built file: BF16, F16 and F64 read back exactly
        import json
        import struct
        data = (struct.pack("<3H", 0x3F80, 0xC020, 0x3E20) + struct.pack("<2H", 0x3C00, 0xC000)
                + struct.pack("<d", math.pi))
        hdr = json.dumps({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                          "h": {"dtype": "F16", "shape": [2], "data_offsets": [6, 10]},
                          "d": {"dtype": "F64", "shape": [1], "data_offsets": [10, 18]}}).encode()
        open(p, "wb").write(struct.pack("<Q", len(hdr)) + hdr + data)
        back, _ = st_io.read(p)
        check("safetensors BF16/F16/F64 read",
              back["b"].tolist() == [1.0, -2.5, 0.15625] and back["h"].tolist() == [1.0, -2.0]
              and back["d"].tolist() == [math.pi])
        hdr = hdr.replace(b"[10, 18]", b"[12, 20]")
        open(p, "wb").write(struct.pack("<Q", len(hdr)) + hdr + data + b"\0\0")
        try:
            st_io.read(p)
            check("safetensors hole in data rejected", False)
        except st_io.SafetensorsError:
            check("safetensors hole in data rejected", True)

    print("selftest: %d failure(s)" % len(failures))
    return 1 if failures else 0


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("make-weights", help="random F32 DiT weights with the spec key names")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--text-dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    p = sub.add_parser("make-inputs", help="random embeds, rollout noise and forward inputs")
    p.add_argument("--weights", required=True)
    p.add_argument("--latent-size", default="16x16", help="latent grid HxW, even")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--context-frames", type=int, default=3)
    p.add_argument("--frame-offset", type=int, default=3)
    p.add_argument("--chunks", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--txt-rows", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-embeds", required=True)
    p.add_argument("--out-noise", required=True)
    p.add_argument("--out-forward", required=True)

    p = sub.add_parser("forward", help="one DiT forward of 'x' at timesteps 't' -> 'v'")
    p.add_argument("--weights", required=True)
    p.add_argument("--embeds", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--with-context", action="store_true",
                   help="recompute K/V of 'context' first and attend to it")
    p.add_argument("--kv-bias", type=float, default=0.3)
    p.add_argument("--frames-per-chunk", type=int, default=0,
                   help="block size of the context pass mask (default: frames of x)")

    p = sub.add_parser("rollout", help="streaming generation -> latents.c{k}")
    p.add_argument("--weights", required=True)
    p.add_argument("--embeds", required=True)
    p.add_argument("--noise", required=True)
    p.add_argument("--chunks", type=int, required=True)
    p.add_argument("--frames-per-chunk", type=int, default=3)
    p.add_argument("--context-frames", type=int, default=3)
    p.add_argument("--kv-bias", type=float, default=0.3)
    p.add_argument("--steps", default="1000,750,500,250")
    p.add_argument("--shift", type=float, default=5.0)
    p.add_argument("--out", required=True)
    p.add_argument("-v", "--verbose", action="store_true")

    sub.add_parser("selftest", help="spec reference values and internal consistency checks")

    args = ap.parse_args(argv)
    if getattr(args, "kv_bias", 1.0) <= 0:
        ap.error("--kv-bias must be > 0 (it is applied as log(kv_bias))")
    torch.set_num_threads(1)
    if args.cmd == "make-weights":
        cmd_make_weights(args)
    elif args.cmd == "make-inputs":
        cmd_make_inputs(args)
    elif args.cmd == "forward":
        cmd_forward(args)
    elif args.cmd == "rollout":
        cmd_rollout(args)
    elif args.cmd == "selftest":
        return cmd_selftest(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
