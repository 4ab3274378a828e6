#!/usr/bin/env python3
"""Train the demo model (docs/demo-model.md): a small Wan VAE (base 16,
the engine's "demo" VAE shape), the tiny umT5 text encoder and the causal DiT, on clips of the procedural world
(world.py) generated on the fly; writes the three safetensors files the C
engine loads (demo-dit, demo-vae, demo-umt5) and a JSON log of the curves
and evaluations.

  train.py --out DIR [--device cuda|cpu] [--seed N] [--vae-steps N]
           [--dit-steps N] [--time-limit SECONDS] ...

Stage 1, VAE: clips of 1 + 4k frames through the offline (= streaming)
encoder and decoder; L1 + MSE on pixels, the latents kept near zero mean and
unit variance per channel, noise added to the latents before decoding so
the decoder tolerates the DiT's imperfect latents.

Stage 2, DiT + umT5: each sample is one chunk laid out as the engine lays
it out (model/dit_generator.c, model/dit_stream.c with C = F = 3 and the
elements' default anchor=decoded), from a 29-frame clip encoded as a stream
(latents y0..y7):
  chunk 0:   no context; target [y0, y1, y2] at RoPE frames 0..2
  chunk 1:   context [y0, y1, y2] at t = 0, target [y3, y4, y5]
  chunk >=2: context [anchor, y3, y4] at t = 0, where the anchor is frame 8
             (the last frame of y2) encoded alone, target [y5, y6, y7]
The context and the chunk run as ONE pass whose attention bias equals the
engine's KV recompute + cached denoise (block-causal context, log(kv_bias)
on context frames 1..2).  Flow matching: x = (1 - s) x0 + s e, target
v = e - x0, s at the 4 steps of the shifted schedule (t = 1000, 750, 500,
250) or uniform.  Some samples switch scene at the chunk boundary (the
prompt-change case: the objects keep their place, the caption changes),
some have the elements' default prompt rows (no prompt: any scene), and
some have slightly noisy context latents (robustness to generated context).

Every limit is enforced by wall clock as well (--time-limit, split between
the stages), so a slow machine stops early instead of overrunning; the log
says when that happened.  Without a wall-clock stop the result depends
only on --seed and the step counts (and the device's arithmetic).
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import metrics  # noqa: E402
import models  # noqa: E402
import philox  # noqa: E402
import world  # noqa: E402

# Steps left out of the rate that --fit-time measures: the first steps of a
# process pay for kernel selection and allocation (on a GPU the first VAE
# step took 22 s, the next ones 0.1 s), and counting them made the fit
# train a fraction of what the time allowed.
WARMUP_STEPS = 10
CTX = 3          # context latent frames
FR = 3           # latent frames per chunk
# Clip latents per layout: chunk 0 -> y0..y2, chunk 1 -> y0..y5, chunk >= 2
# -> y0..y13, whose end (anchor of y8, context y9 y10, target y11..y13) is
# far enough from the stream start that the VAE's causal convolutions are in
# their steady state, as in a long stream.
LAYOUT_LATENTS = {0: 3, 1: 6, 2: 14}
ANCHOR_LATENT = 8


def latent_first_frame(i):
    return 0 if i == 0 else 4 * i - 3


def layout_frames(layout):
    return latent_first_frame(LAYOUT_LATENTS[layout] - 1) + 4


# --------------------------------------------------------------------------
# captions -> token ids (caption_tokens.json, checked against the C
# tokenizer by tests/demo)

class Tokens:
    def __init__(self, path=os.path.join(HERE, "caption_tokens.json")):
        with open(path) as f:
            d = json.load(f)
        self.words = {w: list(v) for w, v in d["words"].items()}
        self.eos = d["eos"]
        self.cache = {}

    def ids(self, caption):
        if caption not in self.cache:
            self.cache[caption] = [i for w in caption.split() for i in self.words[w]] + [self.eos]
        return self.cache[caption]

    def batch(self, captions, device):
        seqs = [self.ids(c) for c in captions]
        n = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), n, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
        return ids.to(device), torch.tensor([len(s) for s in seqs], device=device)


def captions_of(scene, scene_b=None, switched=None):
    out = []
    for i in range(scene.batch):
        s = scene_b if switched is not None and bool(switched[i]) else scene
        out.append(world.caption(s, i))
    return out


# --------------------------------------------------------------------------
# text rows for the DiT: umT5 rows of the caption, or the default rows

class TextRows:
    def __init__(self, umt5, tokens, device):
        self.umt5, self.tokens = umt5, tokens
        self.default = torch.from_numpy(philox.default_embeds(64)).to(device)
        self.device = device

    def __call__(self, captions, uncond=None):
        """captions [B] -> (rows [B, n, 64], lengths [B]); uncond [B] bool
        samples get the engine's default rows instead."""
        ids, lengths = self.tokens.batch(captions, self.device)
        return self.of_ids(ids, lengths, uncond)

    def of_ids(self, ids, lengths, uncond=None):
        rows = self.umt5(ids, lengths)
        if uncond is None or not bool(uncond.any()):
            return rows, lengths
        nd = self.default.shape[0]
        n = max(rows.shape[1], nd)
        rows = F.pad(rows, (0, 0, 0, n - rows.shape[1]))
        d = F.pad(self.default, (0, 0, 0, n - nd))
        rows = torch.where(uncond[:, None, None], d[None].to(rows.dtype), rows)
        lengths = torch.where(uncond, torch.full_like(lengths, nd), lengths)
        return rows, lengths


# --------------------------------------------------------------------------
# data

def clip_pixels(scene, frames, scene_b=None, switch_frame=None):
    """[B, 3, T, 64, 64] in [-1, 1]."""
    u8 = world.render(scene, frames, scene_b, switch_frame)
    return world.to_unit(u8).permute(0, 2, 1, 3, 4).contiguous()


class LatentPool:
    """Training chunks with their latents, encoded once by the frozen VAE
    and reused (the VAE encode of 29 frames costs more than a DiT step);
    refresh() replaces part of the pool with new clips.

    Per clip: context [16, 3, 8, 8], target [16, 3, 8, 8], layout (0: chunk 0,
    1: chunk 1, 2: chunk >= 2), caption token ids, switched (the caption of
    the target differs from the context's scene)."""

    def __init__(self, g, vae, size, device, tokens, p_layout=(0.25, 0.25, 0.5), p_switch=0.15,
                 encode_batch=64):
        self.g, self.vae, self.size, self.device = g, vae, size, device
        self.tokens, self.p_layout, self.p_switch = tokens, p_layout, p_switch
        self.encode_batch = encode_batch
        self.ctx = torch.zeros(size, 16, CTX, 8, 8, device=device)
        self.tgt = torch.zeros(size, 16, FR, 8, 8, device=device)
        self.layout = torch.zeros(size, dtype=torch.long, device=device)
        self.ids = torch.zeros(size, 64, dtype=torch.long, device=device)
        self.lengths = torch.ones(size, dtype=torch.long, device=device)
        self.switched = torch.zeros(size, dtype=torch.bool, device=device)
        self.next = 0
        self.fill(size)

    def fill(self, n):
        """Replace the n oldest clips (round robin) with fresh ones."""
        done = 0
        while done < n:
            b = min(self.encode_batch, n - done)
            ctx, tgt, layout, caps, sw = self._encode(b)
            ids, lengths = self.tokens.batch(caps, self.device)
            idx = (self.next + torch.arange(b, device=self.device)) % self.size
            self.ctx[idx], self.tgt[idx], self.layout[idx] = ctx, tgt, layout
            self.ids[idx] = 0
            self.ids[idx, :ids.shape[1]] = ids
            self.lengths[idx], self.switched[idx] = lengths, sw
            self.next = int((self.next + b) % self.size)
            done += b

    def _encode(self, batch):
        g, device = self.g, self.device
        layout = torch.multinomial(torch.tensor(self.p_layout, device=device), batch,
                                   replacement=True, generator=g)
        ctx = torch.zeros(batch, 16, CTX, 8, 8, device=device)
        tgt = torch.zeros(batch, 16, FR, 8, 8, device=device)
        switched = torch.zeros(batch, dtype=torch.bool, device=device)
        caps = [None] * batch
        for lay in range(3):
            idx = (layout == lay).nonzero().flatten()
            n = idx.numel()
            if n == 0:
                continue
            nl = LAYOUT_LATENTS[lay]
            scene = world.sample(g, n, device=device)
            sw_on = (torch.rand(n, device=device, generator=g) < self.p_switch) & (lay > 0)
            scene_b = world.sample(g, n, device=device)
            scene_b.nobj = scene.nobj
            first_target = latent_first_frame(nl - FR)
            sw = torch.where(sw_on, torch.full((n,), first_target, device=device),
                             torch.full((n,), 1 << 30, device=device))
            pix = clip_pixels(scene, torch.arange(layout_frames(lay), device=device), scene_b, sw)
            with torch.no_grad():
                y = self.vae.encode(pix).float()                  # [n, 16, nl, 8, 8]
                if lay == 2:
                    f = 4 * ANCHOR_LATENT                          # last frame of that latent
                    first = self.vae.encode(pix[:, :, f:f + 1]).float()
                    c = torch.cat([first, y[:, :, ANCHOR_LATENT + 1:ANCHOR_LATENT + 3]], 2)
                elif lay == 1:
                    c = y[:, :, 0:3]
                else:
                    c = torch.zeros_like(y[:, :, 0:3])
            ctx[idx], tgt[idx], switched[idx] = c, y[:, :, nl - FR:nl], sw_on
            for j, cap in zip(idx.tolist(), captions_of(scene.to("cpu"), scene_b.to("cpu"),
                                                        sw_on.cpu())):
                caps[j] = cap
        return ctx, tgt, layout, caps, switched

    def sample(self, batch):
        i = torch.randint(0, self.size, (batch,), device=self.device, generator=self.g)
        n = int(self.lengths[i].max())
        return self.ctx[i], self.tgt[i], self.layout[i], self.ids[i, :n], self.lengths[i]


class RolloutPool:
    """Streams for the rollout fine-tune: latents y0..y16 of 65-frame world
    clips, the anchor of y8 (frame 32 encoded alone) and the caption ids.
    A rollout sample lets the model generate chunk y11..y13 itself from the
    true context [anchor(y8), y9, y10], then trains the next chunk, whose
    context is built from that generation as the elements build it
    ([re-encoded last decoded frame of the generated y11, generated y12,
    y13]), on the true y14..y16: the model learns to continue its own,
    imperfect context back onto the world's course."""

    LATENTS = 17
    K0 = 8

    def __init__(self, g, vae, size, device, tokens, encode_batch=64):
        self.g, self.device, self.size = g, device, size
        self.y = torch.zeros(size, 16, self.LATENTS, 8, 8, device=device)
        self.anchor = torch.zeros(size, 16, 1, 8, 8, device=device)
        self.ids = torch.zeros(size, 64, dtype=torch.long, device=device)
        self.lengths = torch.ones(size, dtype=torch.long, device=device)
        frames = latent_first_frame(self.LATENTS - 1) + 4
        for b0 in range(0, size, encode_batch):
            n = min(encode_batch, size - b0)
            scene = world.sample(g, n, device=device)
            pix = clip_pixels(scene, torch.arange(frames, device=device))
            with torch.no_grad():
                self.y[b0:b0 + n] = vae.encode(pix).float()
                f = 4 * self.K0
                self.anchor[b0:b0 + n] = vae.encode(pix[:, :, f:f + 1]).float()
            ids, lengths = tokens.batch(captions_of(scene.to("cpu")), device)
            self.ids[b0:b0 + n, :ids.shape[1]] = ids
            self.lengths[b0:b0 + n] = lengths

    def sample(self, batch, dit, vae, text_rows, amp):
        """context [B, 16, 3, 8, 8] from the model's own chunk, true target,
        caption ids and lengths."""
        g, dev = self.g, self.device
        i = torch.randint(0, self.size, (batch,), device=dev, generator=g)
        n = int(self.lengths[i].max())
        ids, lengths = self.ids[i, :n], self.lengths[i]
        y, k0 = self.y[i], self.K0
        sigmas = models.step_sigmas()
        with torch.no_grad(), autocast(dev, amp):
            rows, lt = text_rows.of_ids(ids, lengths)
            text = dit.text_state(rows, lt)
            ctx = torch.cat([self.anchor[i], y[:, :, k0 + 1:k0 + 3]], 2)
            noise = [torch.randn(batch, 16, FR, 8, 8, device=dev, generator=g) for _ in sigmas]
            gen = sample_chunk(dit, text, ctx, noise, sigmas, models.STEPS).float()
            # the elements' anchor: the generated latent's last decoded frame,
            # encoded alone (the decoder runs over the whole stream so far)
            px = vae.decode(torch.cat([y[:, :, :k0 + 3], gen[:, :, :1]], 2))
            anchor = vae.encode(px[:, :, -1:].float()).float()
        ctx2 = torch.cat([anchor, gen[:, :, 1:3]], 2)
        return ctx2, y[:, :, k0 + 6:k0 + 9], ids, lengths


# --------------------------------------------------------------------------
# generation with the engine's chunk rules (for evaluation and the C check)

def sample_chunk(dit, text, ctx, noise, sigmas, steps, first_step=0, init=None, kv_bias=0.3):
    """One chunk: ctx [B, 16, 3, h, w] or None (chunk 0), noise: list of
    [B, 16, 3, h, w] per step, init: latents noised to sigma[first_step]."""
    B, _, _, hh, ww = noise[0].shape
    fs = (hh // 2) * (ww // 2)
    x = noise[first_step] if init is None else (1 - sigmas[first_step]) * init + sigmas[first_step] * noise[first_step]
    x0 = x
    if ctx is None:
        bias, cat_ctx = None, None
    else:
        bias = models.chunk_bias(CTX, FR, fs, kv_bias, True, device=x.device)[None]
        cat_ctx = ctx
    for s in range(first_step, len(steps)):
        t = torch.full((B, FR), float(steps[s]), device=x.device)
        if cat_ctx is None:
            v = dit(x, t, text, None)
        else:
            tt = torch.cat([torch.zeros(B, CTX, device=x.device), t], 1)
            v = dit(torch.cat([cat_ctx, x], 2), tt, text, bias)[:, :, CTX:]
        x0 = x - sigmas[s] * v
        if s + 1 < len(steps):
            x = (1 - sigmas[s + 1]) * x0 + sigmas[s + 1] * noise[s + 1]
    return x0


def generate(dit, vae, text, batch, chunks, g, anchor="decoded", steps=models.STEPS,
             init=None, first_step=0, text_schedule=None, noise=None):
    """Latents [B, 16, 3 * chunks, h, w] of a stream and its pixels
    [B, 3, T, 64, 64].  anchor: 'decoded' (the elements' default: frame 0 of
    the context of chunk k >= 2 is the last decoded frame of latent 3k - 3,
    encoded alone) or 'latent' (dit-generate: the previous latents).
    init: input latents [B, 16, 3 * chunks, h, w] for video-to-video.
    text_schedule: per chunk text state (prompt changes); noise: per chunk,
    per step tensors (else drawn from g)."""
    sigmas = models.step_sigmas(steps)
    dev = next(dit.parameters()).device
    hh = ww = 8
    lat = []
    for k in range(chunks):
        if k == 0:
            ctx = None
        else:
            done = torch.cat(lat, 2)
            n = k * FR
            if n - CTX < CTX or anchor == "latent":
                first = done[:, :, 0:1] if n - CTX < CTX else done[:, :, n - CTX:n - CTX + 1]
            else:
                px = vae.decode(done[:, :, :n - CTX + 1])
                first = vae.encode(px[:, :, -1:])
            ctx = torch.cat([first, done[:, :, n - CTX + 1:n]], 2)
        if noise is not None:
            nz = noise[k]
        else:
            nz = [torch.randn(batch, 16, FR, hh, ww, device=dev, generator=g) for _ in steps]
        tx = text_schedule[k] if text_schedule is not None else text
        ini = None if init is None else init[:, :, k * FR:(k + 1) * FR]
        lat.append(sample_chunk(dit, tx, ctx, nz, sigmas, steps, first_step, ini))
    latents = torch.cat(lat, 2)
    return latents, (vae.decode(latents) if vae is not None else None)


def to_u8(pix):
    """[B, 3, T, H, W] in [-1, 1] -> uint8 [B, T, H, W, 3] as the elements
    write RGB (round to nearest)."""
    x = ((pix.float().clamp(-1, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


# --------------------------------------------------------------------------
# evaluation

EVAL_PROMPTS = [
    "a red ball moving left on a black background",
    "a blue ball moving right on a black background",
    "a green square moving up on a gray background",
    "a yellow ring moving down on a black background",
    "a white ball bouncing on a gradient background",
    "a red square standing still on a gray background",
    "a blue ring moving left on a gradient background",
    "a yellow ball moving right on a gray background",
    "a white square moving down on a black background",
    "a green ring moving right on a gradient background",
    "a red ring moving up on a black background",
    "a blue square moving down on a gray background",
]


def eval_vae(vae, device, seed=12345, n=8, frames=81):
    g = torch.Generator(device=device).manual_seed(seed)
    scene = world.sample(g, n, device=device)
    u8 = world.render(scene, torch.arange(frames, device=device))
    pix = world.to_unit(u8).permute(0, 2, 1, 3, 4)
    with torch.no_grad():
        rec = to_u8(vae.decode(vae.encode(pix)))
        z = vae.encode(pix)
    u = u8.cpu().numpy()
    tail = slice(frames - 20, frames)
    return {"psnr": float(np.mean([metrics.psnr(rec[i], u[i]) for i in range(n)])),
            "psnr_first_9": float(np.mean([metrics.psnr(rec[i, :9], u[i, :9]) for i in range(n)])),
            "psnr_last_20": float(np.mean([metrics.psnr(rec[i, tail], u[i, tail]) for i in range(n)])),
            "frames": frames, "latent_mean": float(z.mean()), "latent_std": float(z.std())}


def eval_long(dit, vae, text_rows, device, chunks, seed=778):
    """Drift: object presence and colour in the last chunk of a long stream
    (the first 6 EVAL_PROMPTS), and the boundary/within frame-difference
    ratio over the stream."""
    g = torch.Generator(device=device).manual_seed(seed)
    prompts = EVAL_PROMPTS[:6]
    with torch.no_grad():
        rows, lengths = text_rows(prompts)
        _, pix = generate(dit, vae, dit.text_state(rows, lengths), len(prompts), chunks, g)
    u8 = to_u8(pix)
    ok = present = 0
    ratios = []
    for i, p in enumerate(prompts):
        (obj,), bg = world.parse_caption(p)
        last = u8[i, -12:]
        rgb, frac = metrics.object_colour(last, world.BACKGROUNDS[bg])
        present += int(0.005 < frac < 0.3)
        ok += int(frac > 0 and metrics.nearest_colour(rgb) == world.COLOURS[obj[1]])
        d = metrics.frame_differences(u8[i])
        b = [8 + 12 * k for k in range(chunks - 1)]
        ratios.append(float(d[b].mean() / max(np.delete(d, b).mean(), 1e-6)))
    return {"long_chunks": chunks, "long_last_colour_acc": ok / len(prompts),
            "long_last_present": present / len(prompts),
            "long_boundary_ratio": float(np.median(ratios))}


def eval_dit(dit, vae, text_rows, device, seed=777, chunks=3, long_chunks=0):
    """Colour, motion and background of generated clips for EVAL_PROMPTS."""
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        rows, lengths = text_rows(EVAL_PROMPTS)
        text = dit.text_state(rows, lengths)
        _, pix = generate(dit, vae, text, len(EVAL_PROMPTS), chunks, g)
    u8 = to_u8(pix)
    colour_ok = motion_ok = present = 0
    moving = 0
    for i, p in enumerate(EVAL_PROMPTS):
        (obj,), bg = world.parse_caption(p)
        bgname = world.BACKGROUNDS[bg]
        rgb, frac = metrics.object_colour(u8[i], bgname)
        present += int(0.005 < frac < 0.3)
        colour_ok += int(frac > 0 and metrics.nearest_colour(rgb) == world.COLOURS[obj[1]])
        mot = world.MOTIONS[obj[2]]
        if mot in ("left", "right", "up", "down"):
            moving += 1
            dx, dy = metrics.motion(u8[i], bgname)
            want = {"left": -dx, "right": dx, "up": -dy, "down": dy}[mot]
            motion_ok += int(want >= 8)
    n = len(EVAL_PROMPTS)
    ev = {"colour_acc": colour_ok / n, "motion_acc": motion_ok / max(moving, 1),
          "object_present": present / n}
    if long_chunks:
        ev.update(eval_long(dit, vae, text_rows, device, long_chunks))
    return ev, u8


# --------------------------------------------------------------------------
# export

def bf16_bits(a):
    """float32 -> bfloat16 bit patterns (round to nearest even), uint16."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def write_safetensors(path, tensors, metadata, dtype="F32"):
    """F32 or BF16 safetensors (header padded to 8 bytes), names sorted."""
    header, off, blobs = {}, 0, []
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        raw = (bf16_bits(a) if dtype == "BF16" else a).tobytes()
        header[k] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


FILES = {"dit": "demo-dit.safetensors", "vae": "demo-vae.safetensors",
         "umt5": "demo-umt5.safetensors"}


def sharpen_text_attention_(dit, gain=2.0):
    """Start the cross-attention where the caption can be heard.  The engine
    pads the prompt to 512 rows, which the DiT sees as one padding key with
    a log(512 - length) bias; with PyTorch's default initialisation that key
    takes 91 % of every query's attention at the start, and the caption the
    rest (measured on the demo shape, 25-row caption).  With the text
    embedding's and the cross keys' biases at zero the padding key is the
    zero vector, and norm_q/norm_k gains of 2 make the caption's scores
    spread: the caption then takes 70 %.  Only the initial values change;
    the architecture is the engine's."""
    with torch.no_grad():
        for lin in (dit.text_embedding[0], dit.text_embedding[2]):
            lin.bias.zero_()
        for b in dit.blocks:
            b.cross_attn.k.bias.zero_()
            b.cross_attn.norm_q.weight.fill_(gain)
            b.cross_attn.norm_k.weight.fill_(gain)


def round_to_bf16_(module):
    """Round a module's weights to bfloat16 values in place (kept in float32),
    so that what trains or evaluates next is exactly what a bf16 file holds."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).float())


def export(out, dit, vae, umt5, meta, dit_dtype="BF16", vae_dtype="BF16"):
    """The three checkpoints: the DiT and the VAE in bfloat16 by default (the
    20 MB budget), umT5 in float32."""
    os.makedirs(out, exist_ok=True)
    m = dict(meta)
    m["format"] = "pt"
    write_safetensors(os.path.join(out, FILES["dit"]), models.state_for_export(dit),
                      dict(m, model="demo DiT %s" % json.dumps(dit.config())), dit_dtype)
    write_safetensors(os.path.join(out, FILES["vae"]), models.state_for_export(vae),
                      dict(m, model="demo WanVAE base %d" % vae.base), vae_dtype)
    write_safetensors(os.path.join(out, FILES["umt5"]), models.state_for_export(umt5),
                      dict(m, model="demo umT5 (tiny)"))


def load_safetensors(path):
    """name -> float32 tensor (F32 or BF16 files)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        if v["dtype"] == "F32":
            a = np.frombuffer(data[b:e], dtype="<f4")
        elif v["dtype"] == "BF16":
            a = (np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("%s: %s has dtype %s (F32 or BF16 expected)" % (path, k, v["dtype"]))
        out[k] = torch.from_numpy(a.reshape(v["shape"]).copy())
    return out


def load_vae(path):
    """A WanVAE of the width its file has (encoder.conv1: [base, 3, 3, 3, 3])."""
    sd = load_safetensors(path)
    vae = models.WanVAE(sd["encoder.conv1.weight"].shape[0])
    vae.load_state_dict(sd, strict=True)
    return vae


def load_models(directory, device="cpu"):
    """The demo model's three modules from a directory of checkpoints."""
    sd = load_safetensors(os.path.join(directory, FILES["dit"]))
    dim = sd["patch_embedding.weight"].shape[0]
    layers = len([k for k in sd if k.endswith(".modulation") and k.startswith("blocks.")])
    dit = models.DiT(dim, sd["blocks.0.ffn.0.weight"].shape[0], layers,
                     sd["text_embedding.0.weight"].shape[1])
    dit.load_state_dict(sd, strict=True)
    vae = load_vae(os.path.join(directory, FILES["vae"]))
    umt5 = models.UMT5()
    umt5.load_state_dict(load_safetensors(os.path.join(directory, FILES["umt5"])), strict=True)
    return dit.to(device).eval(), vae.to(device).eval(), umt5.to(device).eval()


# --------------------------------------------------------------------------
# training

class Clock:
    def __init__(self, limit):
        self.t0 = time.time()
        self.limit = limit

    def elapsed(self):
        return time.time() - self.t0

    def left(self):
        return self.limit - self.elapsed()


def adamw(params, lr, wd, device):
    """AdamW, the fused CUDA implementation where this torch has it."""
    if device.type == "cuda":
        try:
            return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=wd, fused=True)
        except (TypeError, RuntimeError):
            pass
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=wd)


def fit_steps(step, requested, t_start, deadline, log, what, slow_share=0.0, slow_cost=1.0,
              offset=0):
    """After `step` timed steps since t_start: the step count that ends by
    the deadline (never more than requested); a final share of the steps
    may cost slow_cost times as much.  offset: steps done before t_start."""
    rate = step / max(time.time() - t_start, 1e-6)
    budget = 0.97 * rate * max(deadline - time.time(), 0.0)     # in current steps
    # steps s (after `step`) with the last slow_share of all of them slow:
    # (n - step) - slow_share n + slow_cost slow_share n = budget
    fit = int((budget + step) / (1 + slow_share * (slow_cost - 1)))
    step, requested, fit = step + offset, requested + offset, fit + offset
    n = max(step + 1, min(requested, fit))
    log("%s: %.2f steps/s, %d steps fit the time limit; training %d steps (rerun with "
        "--%s-steps %d and without --fit-time to reproduce)" % (what, rate, fit, n, what, n),
        event="%s_fit" % what, rate=rate, steps=n)
    return n


def lr_at(step, steps, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def autocast(device, enabled):
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


class VaeStreams:
    """A batch of world streams fed to the VAE the way the elements feed it:
    frame 0 alone, then 4 frames per call, caches carried from call to call
    (detached: truncated backpropagation through time).  Every stream of the
    batch restarts together after a random number of calls, so training
    sees both stream starts and the steady state of the causal convolutions
    deep into a stream (their receptive field spans tens of frames; clips of
    a few latents alone teach the start-up only)."""

    def __init__(self, g, batch, device, min_calls=4, max_calls=24, crop=0):
        self.g, self.batch, self.device = g, batch, device
        self.min_calls, self.max_calls, self.crop = min_calls, max_calls, crop
        self.call = self.length = 0

    def next(self, crop):
        """(pixels [B, 3, 1 or 4, H, W], encoder cache, decoder cache)."""
        g, dev = self.g, self.device
        if self.call == 0 or self.call >= self.length:
            self.scene = world.sample(g, self.batch, device=dev)
            self.enc, self.dec = {}, {}
            self.call = 0
            self.length = int(torch.randint(self.min_calls, self.max_calls + 1, (1,),
                                            generator=g, device=dev))
            self.crop = crop
            self.off = (torch.randint(0, world.SIZE - crop + 1, (self.batch, 2), generator=g,
                                      device=dev).tolist() if crop else None)
        c = self.call
        frames = torch.arange(latent_first_frame(c), 4 * c + 1, device=dev)
        x = clip_pixels(self.scene, frames)
        if self.crop:
            k = self.crop
            x = torch.stack([x[i, :, :, oy:oy + k, ox:ox + k] for i, (oy, ox) in enumerate(self.off)])
        self.call += 1
        return x, self.enc, self.dec


def train_vae(args, vae, device, log, deadline):
    if args.vae_decoder_only:
        # the latent space stays what a DiT was trained on
        vae.encoder.requires_grad_(False)
        vae.conv1.requires_grad_(False)
    opt = adamw([p for p in vae.parameters() if p.requires_grad], args.vae_lr, 0.0, device)
    g = torch.Generator(device=device).manual_seed(args.seed * 1000 + 1)
    streams = VaeStreams(g, args.vae_batch, device, args.vae_min_calls, args.vae_max_calls)
    t_start = time.time()
    step = 0
    total = args.vae_steps
    done = 0
    t_warm = None
    for step in range(args.vae_steps):
        if step == WARMUP_STEPS:
            t_warm = time.time()
        if args.fit_time and step == WARMUP_STEPS + 30:
            total = fit_steps(30, args.vae_steps - WARMUP_STEPS, t_warm, deadline, log, "vae",
                              offset=WARMUP_STEPS)
        if step >= total:
            break
        if time.time() > deadline:
            log("vae: wall-clock limit reached at step %d of %d" % (step, args.vae_steps),
                event="vae_time_stop", step=step)
            break
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, total, args.vae_lr, 100)
        crop = args.vae_crop if step < args.vae_crop_share * total else 0
        x, enc, dec = streams.next(crop)
        with autocast(device, args.amp):
            with torch.set_grad_enabled(not args.vae_decoder_only):
                z = vae.encode(x, enc)
            zn = z + args.vae_latent_noise * torch.rand(z.shape[0], 1, 1, 1, 1, device=device,
                                                        generator=g) * torch.randn(z.shape, device=device, generator=g)
            r = vae.decode(zn, clamp=False, cache=dec).float()
        z = z.float()
        rec = (r - x).abs().mean() + 2.0 * ((r - x) ** 2).mean()
        zc = z.transpose(0, 1).reshape(16, -1)
        reg = (zc.mean(1) ** 2).mean() + ((zc.std(1) - 1.0) ** 2).mean() if zc.shape[1] > 1 else zc.sum() * 0
        loss = rec + (0.0 if args.vae_decoder_only else args.vae_reg) * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        done = step + 1
        if step % args.log_every == 0 or step == total - 1:
            log("vae step %5d  loss %.4f  rec %.4f  reg %.4f  z std %.2f  %.1f steps/s"
                % (step, float(loss), float(rec), float(reg), float(zc.std()),
                   (step + 1) / (time.time() - t_start)),
                event="vae_step", step=step, loss=float(loss), rec=float(rec), reg=float(reg))
    return done


def train_dit(args, dit, umt5, vae, device, log, deadline):
    params = list(dit.parameters()) + ([] if args.freeze_text else list(umt5.parameters()))
    umt5.requires_grad_(not args.freeze_text)
    opt = adamw(params, args.dit_lr, 0.01, device)
    ema = [p.detach().clone() for p in params]
    tokens = Tokens()
    text_rows = TextRows(umt5, tokens, device)
    g = torch.Generator(device=device).manual_seed(args.seed * 1000 + 2)
    sig4 = torch.tensor(models.step_sigmas(), device=device)
    t4 = torch.tensor(models.STEPS, device=device)
    fs = 16
    bias_ctx = models.chunk_bias(CTX, FR, fs, 0.3, True, device=device)
    bias_none = models.chunk_bias(CTX, FR, fs, 0.3, False, device=device)
    vae.eval()
    t0 = time.time()
    # the pool is encoded in float32 (TF32 convolutions on GPUs), as the
    # engine's f32 VAE would
    pool = LatentPool(g, vae, args.pool, device, tokens, p_switch=args.p_switch,
                      encode_batch=args.encode_batch)
    log("dit: pool of %d chunks encoded in %.1f s" % (args.pool, time.time() - t0),
        event="pool", seconds=time.time() - t0)
    refresh = int(args.refresh * args.pool)
    rpool, rollout_from, rollout_t0 = None, None, None
    t_start = time.time()
    step = 0
    total = args.dit_steps
    done = 0
    t_warm = None
    for step in range(args.dit_steps):
        if step == WARMUP_STEPS:
            t_warm = time.time()
        if args.fit_time and step == WARMUP_STEPS + 50:
            # the rollout steps are slower: fit assuming they cost 3 normal
            # steps (on the H200 beside B1: 12 steps/s plain, 4 with rollout)
            share = args.rollout_share if args.rollout_batch else 0.0
            total = fit_steps(50, args.dit_steps - WARMUP_STEPS, t_warm, deadline, log, "dit",
                              slow_share=share, slow_cost=3.0, offset=WARMUP_STEPS)
        start = args.rollout_from if args.rollout_from >= 0 else (1 - args.rollout_share) * total
        if args.rollout_batch and rollout_from is None and step >= start:
            rollout_from = step
            t1 = time.time()
            try:
                rpool = RolloutPool(g, vae, args.rollout_pool, device, tokens, args.encode_batch)
                log("dit: rollout fine-tune from step %d (--rollout-from %d reproduces it), "
                    "pool of %d streams in %.1f s" % (step, step, args.rollout_pool,
                                                      time.time() - t1), event="rollout", step=step)
            except Exception as e:            # keep the trained model whatever happens
                log("dit: rollout fine-tune disabled: %r" % e, event="rollout_error")
                rpool = None
            rollout_t0 = time.time()
        if args.fit_time and rpool is not None and step == rollout_from + 20:
            total = fit_steps(step - rollout_from, args.dit_steps - rollout_from, rollout_t0,
                              deadline, log, "dit", offset=rollout_from)
        if step >= total:
            break
        if time.time() > deadline:
            log("dit: wall-clock limit reached at step %d of %d" % (step, args.dit_steps),
                event="dit_time_stop", step=step)
            break
        lr = lr_at(step, total, args.dit_lr, 200)
        for pg in opt.param_groups:
            pg["lr"] = lr
        B = args.dit_batch
        if refresh and step and step % args.refresh_every == 0:
            pool.fill(refresh)
        ctx, x0, layout, ids, lengths = pool.sample(B)
        if rpool is not None:
            try:
                rc, rx, rids, rl = rpool.sample(args.rollout_batch, dit, vae, text_rows, args.amp)
                n = max(ids.shape[1], rids.shape[1])
                pad = lambda a: F.pad(a, (0, n - a.shape[1]))
                ctx, x0 = torch.cat([ctx, rc]), torch.cat([x0, rx])
                layout = torch.cat([layout, torch.full_like(layout[:1], 2).expand(len(rl))])
                ids, lengths = torch.cat([pad(ids), pad(rids)]), torch.cat([lengths, rl])
                B = ctx.shape[0]
            except Exception as e:
                log("dit: rollout fine-tune disabled at step %d: %r" % (step, e),
                    event="rollout_error", step=step)
                rpool = None
        uncond = torch.rand(B, device=device, generator=g) < args.p_uncond
        # context robustness: a little noise on some contexts, still at t = 0
        cn = (torch.rand(B, device=device, generator=g) < 0.5).float() * args.ctx_noise \
            * torch.rand(B, device=device, generator=g)
        ctx = ctx + cn.view(-1, 1, 1, 1, 1) * torch.randn(ctx.shape, device=device, generator=g)
        disc = torch.rand(B, device=device, generator=g) < 0.5
        k = torch.randint(0, 4, (B,), device=device, generator=g)
        su = torch.rand(B, device=device, generator=g) * 0.98 + 0.02
        sigma = torch.where(disc, sig4[k], su)
        tval = torch.where(disc, t4[k], su * 1000.0)
        eps = torch.randn(x0.shape, device=device, generator=g)
        xt = (1 - sigma.view(-1, 1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1, 1) * eps
        tt = torch.cat([torch.zeros(B, CTX, device=device), tval[:, None].expand(B, FR)], 1)
        bias = torch.where((layout > 0).view(-1, 1, 1), bias_ctx[None], bias_none[None])
        with autocast(device, args.amp):
            rows, lengths = text_rows.of_ids(ids, lengths, uncond)
            text = dit.text_state(rows, lengths)
            v = dit(torch.cat([ctx, xt], 2), tt, text, bias)[:, :, CTX:]
        loss = ((v.float() - (eps - x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        done = step + 1
        with torch.no_grad():
            d = min(args.ema, (step + 1) / (step + 10))
            torch._foreach_mul_(ema, d)
            torch._foreach_add_(ema, [p.detach() for p in params], alpha=1 - d)
        if step % args.log_every == 0 or step == total - 1:
            log("dit step %5d  loss %.4f  lr %.2e  %.2f steps/s"
                % (step, float(loss), lr, (step + 1) / (time.time() - t_start)),
                event="dit_step", step=step, loss=float(loss))
        if args.eval_every and step and step % args.eval_every == 0:
            ev, _ = eval_dit(dit, vae, text_rows, device)
            log("dit eval step %d: %s" % (step, json.dumps(ev)), event="dit_eval", step=step, **ev)
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    return done, text_rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--out", required=True, help="directory for the safetensors and train-log.json")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--time-limit", type=float, default=420.0,
                    help="wall-clock seconds for everything (stages stop early to keep it)")
    ap.add_argument("--vae-share", type=float, default=0.33,
                    help="share of the time limit the VAE stage may use")
    ap.add_argument("--vae-base", type=int, default=16,
                    help="VAE width (16: the engine's demo shape; 8: the tiny preset)")
    ap.add_argument("--vae-dtype", default="BF16", choices=["BF16", "F32"],
                    help="storage dtype of demo-vae.safetensors (the weights are rounded to it "
                    "before the DiT stage)")
    ap.add_argument("--vae-steps", type=int, default=3000)
    ap.add_argument("--vae-batch", type=int, default=64, help="streams")
    ap.add_argument("--vae-min-calls", type=int, default=4,
                    help="shortest stream (encoder calls: frame 0, then 4 frames each)")
    ap.add_argument("--vae-max-calls", type=int, default=24, help="longest stream")
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--vae-crop", type=int, default=0,
                    help="train on random crops of this size (multiple of 16) for the first "
                    "--vae-crop-share of the steps (CPU recipe)")
    ap.add_argument("--vae-crop-share", type=float, default=0.75)
    ap.add_argument("--vae-reg", type=float, default=0.05)
    ap.add_argument("--vae-decoder-only", action="store_true",
                    help="fine-tune the decoder only (keeps the latent space of --vae-init)")
    ap.add_argument("--vae-latent-noise", type=float, default=0.2)
    ap.add_argument("--vae-init", help="start from this VAE safetensors (skips the stage with --vae-steps 0)")
    ap.add_argument("--dit-steps", type=int, default=6000)
    ap.add_argument("--dit-init", help="start the DiT and umT5 from this directory's checkpoints")
    ap.add_argument("--dit-batch", type=int, default=128)
    ap.add_argument("--dit-lr", type=float, default=5e-4)
    ap.add_argument("--pool", type=int, default=12288, help="chunks in the latent pool")
    ap.add_argument("--refresh", type=float, default=0.02,
                    help="share of the pool replaced every --refresh-every steps")
    ap.add_argument("--refresh-every", type=int, default=200)
    ap.add_argument("--encode-batch", type=int, default=256)
    ap.add_argument("--dit-dim", type=int, default=256)
    ap.add_argument("--dit-ffn", type=int, default=1024)
    ap.add_argument("--dit-layers", type=int, default=4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--text-attn-init", default="sharp", choices=["sharp", "default"],
                    help="initial cross-attention: sharp (the caption takes most of the "
                    "attention at the start; sharpen_text_attention_) or PyTorch's default")
    ap.add_argument("--rollout-share", type=float, default=0.3,
                    help="last share of the DiT steps that add rollout samples")
    ap.add_argument("--rollout-batch", type=int, default=32,
                    help="rollout samples per step in that phase (0: no rollout fine-tune)")
    ap.add_argument("--rollout-pool", type=int, default=1024)
    ap.add_argument("--rollout-from", type=int, default=-1,
                    help="first rollout step (default: the last --rollout-share of the steps)")
    ap.add_argument("--freeze-text", action="store_true",
                    help="keep the umT5 at its random initialisation (the DiT learns to read it)")
    ap.add_argument("--p-switch", type=float, default=0.15)
    ap.add_argument("--p-uncond", type=float, default=0.1)
    ap.add_argument("--ctx-noise", type=float, default=0.1)
    ap.add_argument("--fit-time", action="store_true",
                    help="after a few timed steps, lower the step counts so that each stage "
                    "ends within its share of --time-limit (the learning-rate schedule "
                    "follows the lowered count)")
    ap.add_argument("--no-amp", dest="amp", action="store_false", help="float32 on GPUs too")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--eval-long", type=int, default=8,
                    help="chunks of the drift evaluation at the end (0: none)")
    ap.add_argument("--sheet", help="write a PNG of evaluation clips here")
    ap.add_argument("--dit-dtype", default="BF16", choices=["BF16", "F32"],
                    help="storage dtype of demo-dit.safetensors")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda":
        # TF32: the fp32_precision settings where this torch has them (>= 2.9;
        # the allow_tf32 flags are deprecated there and mixing the two errs)
        if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
            torch.backends.cuda.matmul.fp32_precision = "tf32"
            torch.backends.cudnn.conv.fp32_precision = "tf32"
        else:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
    clock = Clock(args.time_limit)
    os.makedirs(args.out, exist_ok=True)
    events = []

    def log(msg, event=None, **kw):
        line = "[%7.1fs] %s" % (clock.elapsed(), msg)
        print(line, flush=True)
        if event:
            events.append(dict(kw, event=event, t=round(clock.elapsed(), 2)))

    log("device %s, torch %s, seed %d, args %s" % (device, torch.__version__, args.seed,
                                                   json.dumps(vars(args))))
    vae = (load_vae(args.vae_init) if args.vae_init else models.WanVAE(args.vae_base)).to(device)
    vae_done = 0
    if args.vae_steps:
        vae.train()
        vae_done = train_vae(args, vae, device, log, clock.t0 + args.vae_share * args.time_limit)
    if args.vae_dtype == "BF16":
        round_to_bf16_(vae)
    vae.eval()

    dit = models.DiT(args.dit_dim, args.dit_ffn, args.dit_layers, 64).to(device)
    umt5 = models.UMT5().to(device)
    if args.dit_init:
        d, _, u = load_models(args.dit_init, device)
        dit.load_state_dict(d.state_dict())
        umt5.load_state_dict(u.state_dict())
    elif args.text_attn_init == "sharp":
        sharpen_text_attention_(dit)
    dit_done, ev_vae, ev_dit, text_rows = 0, {}, {}, None
    if args.dit_steps:
        reserve = 25.0 if device.type == "cuda" else 60.0     # evaluation + export
        dit_done, text_rows = train_dit(args, dit, umt5, vae, device, log,
                                        clock.t0 + args.time_limit - reserve)
        dit.eval()
        umt5.eval()
    # the weights first: a job stopped during the evaluation keeps them
    meta = {"seed": args.seed, "vae_steps": vae_done, "dit_steps": dit_done,
            "recipe": "tools/train/train.py (docs/demo-model.md)"}
    export(args.out, dit, vae, umt5, meta, args.dit_dtype, args.vae_dtype)
    log("exported to %s" % args.out)

    def write_summary():
        summary = {"args": vars(args), "vae_steps_done": vae_done, "dit_steps_done": dit_done,
                   "vae_eval": ev_vae, "dit_eval": ev_dit,
                   "seconds": round(clock.elapsed(), 1), "events": events}
        with open(os.path.join(args.out, "train-log.json"), "w") as f:
            json.dump(summary, f, indent=1)

    write_summary()
    ev_vae = eval_vae(vae, device)
    log("vae eval: %s" % json.dumps(ev_vae), event="vae_eval", **ev_vae)
    if text_rows is not None:
        ev_dit, u8 = eval_dit(dit, vae, text_rows, device, long_chunks=args.eval_long)
        log("dit eval: %s" % json.dumps(ev_dit), event="dit_eval_final", **ev_dit)
        if args.sheet:
            import pngio
            pngio.write_png(args.sheet, pngio.sheet([list(u8[i, ::3]) for i in range(len(u8))]))
    write_summary()
    log("done: %d VAE steps, %d DiT steps, %.1f s" % (vae_done, dit_done, clock.elapsed()))
    if (args.vae_steps and not vae_done) or (args.dit_steps and not dit_done):
        log("FAIL: a stage ran no steps within the time limit")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
