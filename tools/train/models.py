"""Trainable PyTorch modules that compute exactly what the C engine computes.

The math follows the float64 oracles in tests/reference/ (dit_ref.py,
vae_ref.py, umt5_ref.py, written from docs/reference/wan2.1-spec.md), which
the C code matches to ~1e-6; here it is batched, differentiable and runs in
float32 (bf16 autocast on GPUs).  Parameter names and shapes are the
checkpoint's (spec §3.2, §5.7, §6.5), so state_dict() is the file the C
loaders read.  tools/train/check_export.py and tests/reference/
test_demo_export.sh compare these modules with the C engine on exported
weights.

  DiT    causal Wan2.1 DiT (spec §2, §4): per-frame timesteps, RoPE with a
         frame offset, an additive attention bias over the token sequence
         (block-causal context, kv-bias), the 512 zero-padded text rows.
         The padded rows all equal text_embedding(0); attention over them is
         computed as ONE key with logit bias log(count), which is the same
         softmax.
  WanVAE the streaming WanVAE (spec §5) in its offline form (one pass over
         1 + 4k frames), which the reference proves equal to the engine's
         streaming form (frame 0 alone, then 4-frame chunks).
  UMT5   the umT5 encoder (spec §6) over a padded batch; padded keys are
         masked, so each real row equals the C encoder's unpadded result.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

HEAD_DIM = 128
FREQ_DIM = 256
TEXT_LEN = 512
LATENT_CH = 16
EPS = 1e-6


# --------------------------------------------------------------------------
# scheduler (spec §4.6): sigma of a step value = nearest entry of the
# float32 shifted table, unwarped

def shifted_table(shift=5.0, n=1000):
    sig = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float32)[:-1]
    sig = shift * sig / (1 + (shift - 1) * sig)
    return sig, sig * n


def sigma_of(t, shift=5.0):
    sig, ts = shifted_table(shift)
    return float(sig[int(torch.argmin((ts - float(t)).abs()))])


STEPS = (1000.0, 750.0, 500.0, 250.0)


def step_sigmas(steps=STEPS, shift=5.0):
    return [sigma_of(s, shift) for s in steps]


# --------------------------------------------------------------------------
# DiT

def up(x):
    """Residual-stream precision: float32, or float64 when the module runs
    in float64 (the comparison with the oracles)."""
    return x if x.dtype == torch.float64 else x.float()


def sinusoid(t):
    """t [...] -> [..., 256], cos half first, computed in float64."""
    half = FREQ_DIM // 2
    omega = torch.pow(torch.tensor(10000.0, dtype=torch.float64, device=t.device),
                      -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    arg = t.to(torch.float64)[..., None] * omega
    return torch.cat([torch.cos(arg), torch.sin(arg)], -1)


def rope_tables(frames, hp, wp, device, frame_offset=0):
    """cos/sin [L, 64] for tokens (f, h, w) of a frames x hp x wp grid;
    22 temporal, 21 height, 21 width pairs (spec §2.6), float64 angles."""
    d = HEAD_DIM
    dim_t, dim_s = d - 4 * (d // 6), 2 * (d // 6)
    base = torch.tensor(10000.0, dtype=torch.float64)
    om_t = torch.pow(base, -torch.arange(0, dim_t, 2, dtype=torch.float64) / dim_t)
    om_s = torch.pow(base, -torch.arange(0, dim_s, 2, dtype=torch.float64) / dim_s)
    f = torch.arange(frames, dtype=torch.float64) + frame_offset
    h = torch.arange(hp, dtype=torch.float64)
    w = torch.arange(wp, dtype=torch.float64)
    nt, ns = len(om_t), len(om_s)
    at = (f[:, None] * om_t)[:, None, None, :].expand(frames, hp, wp, nt)
    ah = (h[:, None] * om_s)[None, :, None, :].expand(frames, hp, wp, ns)
    aw = (w[:, None] * om_s)[None, None, :, :].expand(frames, hp, wp, ns)
    ang = torch.cat([at, ah, aw], -1).reshape(frames * hp * wp, nt + 2 * ns)
    return torch.cos(ang).to(device), torch.sin(ang).to(device)


def apply_rope(x, cos, sin):
    """x [B, L, H, 128]; pairs (2i, 2i+1) rotated by the angle of pair i."""
    xp = up(x).reshape(*x.shape[:-1], HEAD_DIM // 2, 2)
    a, b = xp[..., 0], xp[..., 1]
    c, s = cos[None, :, None, :].to(xp.dtype), sin[None, :, None, :].to(xp.dtype)
    return torch.stack([a * c - b * s, a * s + b * c], -1).reshape(x.shape).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = up(x)
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def layer_norm(x, eps=EPS):
    return F.layer_norm(up(x), (x.shape[-1],), eps=eps)


def attention(q, k, v, bias):
    """q [B, Lq, H, d], k/v [B, Lk, H, d], bias additive [B or 1, Lq, Lk]
    (or None); scale 1/sqrt(d)."""
    dt = torch.bfloat16 if q.is_cuda and torch.is_autocast_enabled() else q.dtype
    q, k, v = q.to(dt).transpose(1, 2), k.to(dt).transpose(1, 2), v.to(dt).transpose(1, 2)
    mask = None if bias is None else bias[:, None].to(q.dtype)
    if hasattr(F, "scaled_dot_product_attention"):
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if mask is not None:
            s = s + mask
        o = torch.softmax(up(s), -1).to(v.dtype) @ v
    return o.transpose(1, 2).reshape(o.shape[0], o.shape[2], -1)


class SelfAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim), RMSNorm(dim)
        self.heads = dim // HEAD_DIM


class CrossAttention(SelfAttention):
    pass


class Block(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)
        self.self_attn = SelfAttention(dim)
        self.norm3 = nn.LayerNorm(dim, eps=EPS)
        self.cross_attn = CrossAttention(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(approximate="tanh"),
                                 nn.Linear(ffn, dim))

    def forward(self, x, e0, fs, rope, bias, ctx_k, ctx_v, ctx_bias):
        """x [B, L, D] f32; e0 [B, F, 6, D]; ctx_k/ctx_v [B, N, H, d]."""
        B, L, D = x.shape
        H = D // HEAD_DIM
        m = up(self.modulation) + up(e0)                         # [B, F, 6, D]
        m = m[:, :, None].expand(-1, -1, fs, -1, -1).reshape(B, L, 6, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = m.unbind(2)
        a = self.self_attn
        h = layer_norm(x) * (1 + scale_msa) + shift_msa
        q = apply_rope(a.norm_q(a.q(h)).view(B, L, H, HEAD_DIM), *rope)
        k = apply_rope(a.norm_k(a.k(h)).view(B, L, H, HEAD_DIM), *rope)
        v = a.v(h).view(B, L, H, HEAD_DIM)
        x = x + gate_msa * up(a.o(attention(q, k, v, bias)))
        c = self.cross_attn
        y = self.norm3(x)
        q = c.norm_q(c.q(y)).view(B, L, H, HEAD_DIM)
        x = x + up(c.o(attention(q, ctx_k, ctx_v, ctx_bias)))
        h = layer_norm(x) * (1 + scale_mlp) + shift_mlp
        return x + gate_mlp * up(self.ffn(h))


class Head(nn.Module):
    def __init__(self, dim, out):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)
        self.head = nn.Linear(dim, out)


class DiT(nn.Module):
    def __init__(self, dim=256, ffn=512, layers=2, text_dim=64):
        super().__init__()
        self.dim, self.ffn_dim, self.num_layers, self.text_dim = dim, ffn, layers, text_dim
        self.patch_embedding = nn.Conv3d(LATENT_CH, dim, (1, 2, 2), stride=(1, 2, 2))
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(FREQ_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList(Block(dim, ffn) for _ in range(layers))
        self.head = Head(dim, 4 * LATENT_CH)

    def config(self):
        return {"dim": self.dim, "ffn": self.ffn_dim, "layers": self.num_layers,
                "text_dim": self.text_dim}

    def text_state(self, rows, lengths):
        """Prompt rows [B, n, text_dim] (zero beyond each length) -> per-layer
        cross K/V over [the n rows, one padding key] and the additive bias
        [B, 1, n+1] that makes that key count for 512 - length rows."""
        B, n, _ = rows.shape
        if n > TEXT_LEN:
            raise ValueError("prompt has %d rows; at most %d" % (n, TEXT_LEN))
        rows = torch.cat([rows, rows.new_zeros(B, 1, rows.shape[2])], 1)
        ctx = self.text_embedding(rows)                                      # [B, n+1, D]
        idx = torch.arange(n + 1, device=rows.device)[None]
        lengths = lengths.to(rows.device)[:, None]
        neg = torch.full((), -math.inf, device=rows.device)
        pad = torch.log((TEXT_LEN - lengths).clamp(min=1).double()).to(up(ctx).dtype)
        bias = torch.where(idx < lengths, torch.zeros((), device=rows.device), neg)
        bias = torch.where(idx == n, torch.where(lengths < TEXT_LEN, pad, neg), bias)
        H = self.dim // HEAD_DIM
        kv = []
        for b in self.blocks:
            c = b.cross_attn
            kv.append((c.norm_k(c.k(ctx)).view(B, n + 1, H, HEAD_DIM),
                       c.v(ctx).view(B, n + 1, H, HEAD_DIM)))
        return kv, bias[:, None, :].to(up(ctx).dtype)

    def forward(self, x, t, text, bias, frame_offset=0):
        """x [B, 16, F, h, w] latents, t [B, F] timesteps per frame, text =
        text_state(...), bias: additive self-attention bias [B or 1, L, L] or
        None.  Returns v [B, 16, F, h, w] (float32)."""
        B, _, Fr, hh, ww = x.shape
        hp, wp = hh // 2, ww // 2
        fs = hp * wp
        wdt = self.patch_embedding.weight.dtype
        tok = up(self.patch_embedding(x.to(wdt)).flatten(2).transpose(1, 2))  # [B, L, D]
        e = self.time_embedding(sinusoid(t).to(wdt))                         # [B, F, D]
        e0 = self.time_projection(e).view(B, Fr, 6, self.dim)
        rope = rope_tables(Fr, hp, wp, x.device, frame_offset)
        kv, ctx_bias = text
        for blk, (ck, cv) in zip(self.blocks, kv):
            tok = blk(tok, e0, fs, rope, bias, ck, cv, ctx_bias)
        mh = up(self.head.modulation) + up(e)[:, :, None, :]          # [B, F, 2, D]
        mh = mh[:, :, None].expand(-1, -1, fs, -1, -1).reshape(B, Fr * fs, 2, self.dim)
        y = up(self.head.head(layer_norm(tok) * (1 + mh[:, :, 1]) + mh[:, :, 0]))
        y = y.view(B, Fr, hp, wp, 2, 2, LATENT_CH).permute(0, 6, 1, 2, 4, 3, 5)
        return y.reshape(B, LATENT_CH, Fr, hh, ww)


def chunk_bias(context_frames, frames, fs, kv_bias=0.3, with_context=True, device=None):
    """Self-attention bias [L, L] of one pass over [context, chunk] that equals
    the engine's recompute + cached denoise (dit_ref.py selftest): context
    queries see the context (one block of F frames when C <= F), chunk
    queries see everything, log(kv_bias) on context frames 1..C-1.  Without
    context, chunk queries see only the chunk (chunk 0)."""
    C, Fr = context_frames, frames
    L = (C + Fr) * fs
    bias = torch.zeros(L, L, device=device)
    cl = C * fs
    bias[:cl, cl:] = -math.inf
    if with_context:
        if kv_bias != 1.0 and C > 1:
            bias[cl:, fs:cl] = math.log(kv_bias)
    else:
        bias[cl:, :cl] = -math.inf
    return bias


# --------------------------------------------------------------------------
# VAE (spec §5), offline form

LATENT_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENT_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


CACHE_T = 2


class CausalConv3d(nn.Conv3d):
    """Conv3d with zero padding 2*pt frames in front, ph/pw both sides.
    With a cache dict (streaming), up to CACHE_T previous input frames are
    prepended and the front padding shrinks by their number, which equals
    the offline conv over the whole sequence (spec §5.6); cached frames are
    detached (training by truncated backpropagation through time)."""

    def __init__(self, cin, cout, k, pad):
        super().__init__(cin, cout, k, padding=0)
        self.pt = pad[0]
        self.pads = (pad[2], pad[2], pad[1], pad[1], 2 * pad[0], 0)

    def run(self, x, past=None, stride=None):
        front = self.pads[4]
        if past is not None and front > 0:
            x = torch.cat([past.to(x.dtype), x], 2)
            front -= past.shape[2]
        x = F.pad(x, self.pads[:4] + (front, 0))
        if stride is None:
            return super().forward(x)
        return F.conv3d(x, self.weight, self.bias, stride=stride)

    def forward(self, x, cache=None):
        if cache is None or self.pt == 0:
            return self.run(x)
        old = cache.get(self)
        new = x[:, :, -CACHE_T:]
        if new.shape[2] < CACHE_T and old is not None:
            new = torch.cat([old[:, :, -1:].to(new.dtype), new], 2)
        out = self.run(x, old)
        cache[self] = new.detach()
        return out


class Seq(nn.Sequential):
    """nn.Sequential (same child names) that hands a streaming cache to the
    children that take one."""

    def forward(self, x, cache=None):
        for m in self:
            x = m(x, cache) if isinstance(m, (CausalConv3d, ResidualBlock, AttentionBlock,
                                               Resample)) else m(x)
        return x


class VaeRMS(nn.Module):
    def __init__(self, c, images=False):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones((c, 1, 1) if images else (c, 1, 1, 1)))
        self.c = c

    def forward(self, x):
        g = self.gamma.reshape((self.c,) + (1,) * (x.dim() - 2))
        return F.normalize(x, dim=1, eps=1e-12) * math.sqrt(self.c) * g


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.residual = Seq(
            VaeRMS(cin), nn.SiLU(), CausalConv3d(cin, cout, (3, 3, 3), (1, 1, 1)),
            VaeRMS(cout), nn.SiLU(), nn.Identity(), CausalConv3d(cout, cout, (3, 3, 3), (1, 1, 1)))
        self.shortcut = CausalConv3d(cin, cout, (1, 1, 1), (0, 0, 0)) if cin != cout else None

    def forward(self, x, cache=None):
        h = x if self.shortcut is None else self.shortcut(x)
        return self.residual(x, cache) + h


class AttentionBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = VaeRMS(c, images=True)
        self.to_qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x, cache=None):
        b, c, t, h, w = x.shape
        f = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(f)).reshape(b * t, 3 * c, h * w)
        q, k, v = (qkv[:, i * c:(i + 1) * c].transpose(1, 2) for i in range(3))
        a = torch.softmax(up(q @ k.transpose(1, 2)) / math.sqrt(c), -1).to(v.dtype) @ v
        o = self.proj(a.transpose(1, 2).reshape(b * t, c, h, w))
        return x + o.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


class Resample(nn.Module):
    def __init__(self, c, mode):
        super().__init__()
        self.mode = mode
        if mode.startswith("down"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(c, c, 3, stride=2))
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(c, c, (3, 1, 1), (0, 0, 0))
        else:
            self.resample = nn.Sequential(nn.Identity(), nn.Conv2d(c, c // 2, 3, padding=1))
            if mode == "upsample3d":
                self.time_conv = CausalConv3d(c, 2 * c, (3, 1, 1), (1, 0, 0))

    def _frames(self, x, fn):
        b, c, t, h, w = x.shape
        y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)

    @staticmethod
    def _interleave(y):
        """[b, 2C, t, h, w] -> [b, C, 2t, h, w]: channels [0, C) are frame
        2t, [C, 2C) frame 2t + 1."""
        b, c2, t, h, w = y.shape
        y = y.reshape(b, 2, c2 // 2, t, h, w)
        return torch.stack((y[:, 0], y[:, 1]), 3).reshape(b, c2 // 2, 2 * t, h, w)

    def forward(self, x, cache=None):
        if self.mode.startswith("down"):
            x = self._frames(x, self.resample)
            if self.mode != "downsample3d":
                return x
            if cache is None:
                # offline: frame 0 passes, the stride-2 window slides over the rest
                if x.shape[2] > 1:
                    x = torch.cat([x[:, :, :1], self.time_conv.run(x, stride=(2, 1, 1))], 2)
                return x
            old = cache.get(self)
            cache[self] = x[:, :, -1:].detach()
            if old is None:           # first chunk: frame 0 passes through
                return x
            return self.time_conv.run(torch.cat([old.to(x.dtype), x], 2), stride=(2, 1, 1))
        if self.mode == "upsample3d":
            if cache is None:
                # offline: frame 0 undoubled, later frames see latent 0 as zeros
                if x.shape[2] > 1:
                    xz = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:]], 2)
                    y = self._interleave(self.time_conv.run(xz))[:, :, 2:]
                    x = torch.cat([x[:, :, :1], y], 2)
            else:
                old = cache.get(self)
                if old is None:        # latent 0: no time conv; zeros stand for it
                    cache[self] = "Rep"
                else:
                    past = None if isinstance(old, str) else old
                    new = x[:, :, -CACHE_T:]
                    if new.shape[2] < CACHE_T:
                        head = torch.zeros_like(new) if past is None else past[:, :, -1:].to(new.dtype)
                        new = torch.cat([head, new], 2)
                    y = self.time_conv.run(x, past)
                    cache[self] = new.detach()
                    x = self._interleave(y)
        up2 = lambda f: self.resample(F.interpolate(f, scale_factor=2.0, mode="nearest"))
        return self._frames(x, up2)


class Encoder(nn.Module):
    def __init__(self, base, mult, z):
        super().__init__()
        dims = [base * m for m in [1] + mult]
        self.conv1 = CausalConv3d(3, dims[0], (3, 3, 3), (1, 1, 1))
        layers = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(2):
                layers.append(ResidualBlock(cin, cout))
                cin = cout
            if i != len(mult) - 1:
                layers.append(Resample(cout, "downsample3d" if i > 0 else "downsample2d"))
        self.downsamples = Seq(*layers)
        c = dims[-1]
        self.middle = Seq(ResidualBlock(c, c), AttentionBlock(c), ResidualBlock(c, c))
        self.head = Seq(VaeRMS(c), nn.SiLU(), CausalConv3d(c, 2 * z, (3, 3, 3), (1, 1, 1)))

    def forward(self, x, cache=None):
        x = self.conv1(x, cache)
        return self.head(self.middle(self.downsamples(x, cache), cache), cache)


class Decoder(nn.Module):
    def __init__(self, base, mult, z):
        super().__init__()
        dims = [base * m for m in [mult[-1]] + mult[::-1]]
        c = dims[0]
        self.conv1 = CausalConv3d(z, c, (3, 3, 3), (1, 1, 1))
        self.middle = Seq(ResidualBlock(c, c), AttentionBlock(c), ResidualBlock(c, c))
        layers = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if i in (1, 2, 3):
                cin //= 2
            for _ in range(3):
                layers.append(ResidualBlock(cin, cout))
                cin = cout
            if i != len(mult) - 1:
                layers.append(Resample(cout, "upsample3d" if i < 2 else "upsample2d"))
        self.upsamples = Seq(*layers)
        self.head = Seq(VaeRMS(dims[-1]), nn.SiLU(),
                        CausalConv3d(dims[-1], 3, (3, 3, 3), (1, 1, 1)))

    def forward(self, x, cache=None):
        x = self.conv1(x, cache)
        return self.head(self.upsamples(self.middle(x, cache), cache), cache)


class WanVAE(nn.Module):
    """encode/decode: offline passes over a whole clip; with `cache` (a dict
    kept by the caller, {} for a new stream) they stream like the engine:
    encode takes frame 0 alone, then 4 frames per call; decode one latent
    per call (or several)."""

    def __init__(self, base=8, mult=(1, 2, 4, 4), z=16):
        super().__init__()
        self.base, self.z = base, z
        self.encoder = Encoder(base, list(mult), z)
        self.conv1 = CausalConv3d(2 * z, 2 * z, (1, 1, 1), (0, 0, 0))
        self.conv2 = CausalConv3d(z, z, (1, 1, 1), (0, 0, 0))
        self.decoder = Decoder(base, list(mult), z)
        self.register_buffer("mean", torch.tensor(LATENT_MEAN, dtype=torch.float64).view(1, z, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(LATENT_STD, dtype=torch.float64).view(1, z, 1, 1, 1), persistent=False)

    def encode(self, pixels, cache=None):
        """pixels [B, 3, 1+4k, H, W] in [-1, 1] -> normalised latents
        [B, 16, 1+k, H/8, W/8] (a stream: frame 0 alone, then groups of 4)."""
        mu = up(self.conv1(self.encoder(pixels, cache))[:, :self.z])
        return (mu - self.mean.to(mu.dtype)) / self.std.to(mu.dtype)

    def decode(self, z, clamp=True, cache=None):
        """latents [B, 16, F, h, w] -> pixels [B, 3, 1+4(F-1), 8h, 8w]
        (streaming: 1 frame for latent 0, 4 for every later one)."""
        x = self.conv2(z * self.std.to(z.dtype) + self.mean.to(z.dtype))
        if cache is None:
            x = self.decoder(x)
        else:
            x = torch.cat([self.decoder(x[:, :, i:i + 1], cache) for i in range(x.shape[2])], 2)
        return x.clamp(-1, 1) if clamp else x


# --------------------------------------------------------------------------
# umT5 (spec §6)

def t5_bucket(rel, num_buckets=32, max_dist=128):
    nb = num_buckets // 2
    buckets = (rel > 0).long() * nb
    a = rel.abs()
    max_exact = nb // 2
    large = max_exact + (torch.log(a.float() / max_exact) / math.log(max_dist / max_exact)
                         * (nb - max_exact)).long()
    large = torch.clamp(large, max=nb - 1)
    return buckets + torch.where(a < max_exact, a, large)


class T5RMS(nn.Module):
    def __init__(self, dim, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = up(x)
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)) * self.weight


class T5Attn(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))


class T5Gate(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, ffn, bias=False), nn.GELU(approximate="tanh"))
        self.fc1 = nn.Linear(dim, ffn, bias=False)
        self.fc2 = nn.Linear(ffn, dim, bias=False)


class T5PosEmb(nn.Module):
    def __init__(self, buckets, heads):
        super().__init__()
        self.embedding = nn.Embedding(buckets, heads)


class T5Block(nn.Module):
    def __init__(self, dim, heads, ffn, buckets):
        super().__init__()
        self.norm1 = T5RMS(dim)
        self.attn = T5Attn(dim)
        self.norm2 = T5RMS(dim)
        self.ffn = T5Gate(dim, ffn)
        self.pos_embedding = T5PosEmb(buckets, heads)
        self.heads = heads


class UMT5(nn.Module):
    def __init__(self, vocab=640, dim=64, heads=4, ffn=128, layers=2, buckets=32):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.token_embedding = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(T5Block(dim, heads, ffn, buckets) for _ in range(layers))
        self.norm = T5RMS(dim)

    def forward(self, ids, lengths):
        """ids [B, n] (padded with 0), lengths [B] -> rows [B, n, dim], rows
        beyond each length set to zero (the DiT's padding)."""
        B, n = ids.shape
        x = up(self.token_embedding(ids))
        pos = torch.arange(n, device=ids.device)
        bucket = t5_bucket(pos[None, :] - pos[:, None])                     # [n, n]
        valid = pos[None, :] < lengths.to(ids.device)[:, None]              # [B, n]
        keymask = torch.where(valid, 0.0, -math.inf)[:, None, None, :]      # [B, 1, 1, n]
        hd = self.dim // self.heads
        for blk in self.blocks:
            y = blk.norm1(x)
            q = blk.attn.q(y).view(B, n, self.heads, hd).transpose(1, 2)
            k = blk.attn.k(y).view(B, n, self.heads, hd).transpose(1, 2)
            v = blk.attn.v(y).view(B, n, self.heads, hd).transpose(1, 2)
            bias = blk.pos_embedding.embedding(bucket).permute(2, 0, 1)[None]  # [1, H, n, n]
            s = up(q @ k.transpose(-1, -2)) + up(bias) + keymask
            a = torch.softmax(s, -1).to(v.dtype) @ v
            x = x + up(blk.attn.o(a.transpose(1, 2).reshape(B, n, self.dim)))
            y = blk.norm2(x)
            x = x + up(blk.ffn.fc2(blk.ffn.fc1(y) * blk.ffn.gate(y)))
        return self.norm(x) * valid[..., None]


# --------------------------------------------------------------------------
# export

def state_for_export(module):
    """name -> float32 numpy array, checkpoint names (no buffers)."""
    return {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}
