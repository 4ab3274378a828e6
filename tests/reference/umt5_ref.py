#!/usr/bin/python3
"""Independent float64 PyTorch reference of the umT5 encoder (spec §6).

  umt5_ref.py encode WEIGHTS.safetensors --ids 5,17,1 -o REF.safetensors
  umt5_ref.py selftest

Written from the spec, not from the C code: token embedding, per layer
x += Wo·Attn(RMS(x)·g1) with scores q·kᵀ + B_l[bucket(j − i), h] (no 1/√d),
x += Wfc2·(Wfc1·y ⊙ GELU_tanh(Wgate·y)) with y = RMS(x)·g2, final RMS·g.
The bucket follows Wan's T5RelativeEmbedding (float32 log, truncation);
weights use the spec §6.5 key names and are read with st_io (no C code).
Writes 'embeds' [n, d_model] (float32 of the float64 result).
selftest checks the bucket against the spec §6.4 table.
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


def rel_bucket(rel, num_buckets=32, max_dist=128):
    """Wan T5RelativeEmbedding._relative_position_bucket, bidirectional."""
    num_buckets //= 2
    buckets = (rel > 0).long() * num_buckets
    rel = torch.abs(rel)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(rel.float() / max_exact)
                         / math.log(max_dist / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(rel < max_exact, rel, large)


def rms(x, g, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * g


def gelu_tanh(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def encode(w, ids):
    d = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in w.items()}
    layers = 0
    while f"blocks.{layers}.norm1.weight" in d:
        layers += 1
    emb = d["token_embedding.weight"]
    heads = d["blocks.0.pos_embedding.embedding.weight"].shape[1]
    nb = d["blocks.0.pos_embedding.embedding.weight"].shape[0]
    n = len(ids)
    x = emb[torch.tensor(ids, dtype=torch.long)]
    pos = torch.arange(n)
    rel = pos[None, :] - pos[:, None]          # key j minus query i
    bucket = rel_bucket(rel, nb, 128)          # [n, n]
    for l in range(layers):
        p = f"blocks.{l}."
        y = rms(x, d[p + "norm1.weight"])
        q = y @ d[p + "attn.q.weight"].T
        k = y @ d[p + "attn.k.weight"].T
        v = y @ d[p + "attn.v.weight"].T
        hd = q.shape[1] // heads
        q = q.view(n, heads, hd).transpose(0, 1)
        k = k.view(n, heads, hd).transpose(0, 1)
        v = v.view(n, heads, hd).transpose(0, 1)
        bias = d[p + "pos_embedding.embedding.weight"][bucket]   # [n, n, heads]
        s = q @ k.transpose(1, 2) + bias.permute(2, 0, 1)
        a = torch.softmax(s, dim=-1) @ v                          # [heads, n, hd]
        a = a.transpose(0, 1).reshape(n, heads * hd)
        x = x + a @ d[p + "attn.o.weight"].T
        y = rms(x, d[p + "norm2.weight"])
        h = (y @ d[p + "ffn.fc1.weight"].T) * gelu_tanh(y @ d[p + "ffn.gate.0.weight"].T)
        x = x + h @ d[p + "ffn.fc2.weight"].T
    return rms(x, d["norm.weight"])


def selftest():
    spec = {}
    for a in range(0, 8):
        spec[a] = a
    for lo, hi, b in [(8, 11, 8), (12, 15, 9), (16, 22, 10), (23, 31, 11),
                      (32, 45, 12), (46, 63, 13), (64, 90, 14), (91, 600, 15)]:
        for a in range(lo, hi + 1):
            spec[a] = b
    rel = torch.arange(-600, 601)
    got = rel_bucket(rel)
    for r, g in zip(rel.tolist(), got.tolist()):
        want = (16 if r > 0 else 0) + spec[abs(r)]
        if g != want:
            print(f"bucket({r}) = {g}, spec says {want}")
            return 1
    print("selftest ok: bucket table matches spec §6.4 for rel in [-600, 600]")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=["encode", "selftest"])
    ap.add_argument("weights", nargs="?")
    ap.add_argument("--ids")
    ap.add_argument("-o", "--output")
    a = ap.parse_args(argv)
    if a.cmd == "selftest":
        return selftest()
    if not a.weights or not a.ids or not a.output:
        ap.error("encode needs WEIGHTS, --ids and -o")
    ids = [int(t) for t in a.ids.split(",")]
    w, _ = st_io.read(a.weights)
    out = encode(w, ids)
    st_io.write(a.output, {"embeds": out.numpy().astype(np.float32)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
