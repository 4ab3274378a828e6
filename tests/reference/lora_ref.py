#!/usr/bin/python3
"""Float64 PyTorch reference of LoRA application to the Wan2.1 DiT.

Written from the LoRA definition, sharing no code with the engine: a LoRA
changes a linear weight W [out, in] into

    W' = W + sum_i strength_i * alpha_i / rank_i * B_i @ A_i

with A = the "down" factor [rank, in] (lora_down / lora_A), B = the "up"
factor [out, rank] (lora_up / lora_B) and alpha = rank when the file has no
".alpha".  Full-tensor deltas ".diff" (added to <module>.weight, or to
<module> itself for a parameter without ".weight") and ".diff_b" (added to
<module>.bias) are scaled by the strength alone.

Key layouts read here, each written out below rather than derived from the
engine's code:
  kohya / musubi   lora_unet_<module with "." as "_">.lora_down.weight, ...
  PEFT             [diffusion_model.]<module>.lora_A.weight / lora_B.weight
                   (or .lora_down / .lora_up), .alpha
  Diffusers        [transformer.]blocks.N.attn1.to_q.lora_A.weight, ... with
                   the Diffusers module names of the table DIFFUSERS below

Subcommands:
  make-lora --weights W --layout kohya|peft|peft-downup|diffusers --rank R
            --seed S [--alpha A] --out F
      a LoRA on layers of every kind (projections, residual branches, FFN
      up and down, the prompt's K/V, the text and time embeddings, the
      head), F32, in the given layout
  merge --weights W --lora F[:S] [--lora F[:S] ...] --out M
      W with the LoRAs merged in float64, written F32 under the model's
      names
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

# Wan module -> Diffusers module (inside "blocks.N." for the block ones)
DIFFUSERS_BLOCK = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v", "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0",
    "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2", "norm3": "norm2",
}
DIFFUSERS_TOP = {
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.head": "proj_out",
}

TARGETS = [
    "blocks.0.self_attn.q", "blocks.0.self_attn.k", "blocks.1.self_attn.o",
    "blocks.0.cross_attn.v", "blocks.1.cross_attn.o", "blocks.0.ffn.0",
    "blocks.1.ffn.2", "text_embedding.2", "time_embedding.0", "head.head",
]

SUFFIXES = {
    "kohya": ("lora_down.weight", "lora_up.weight"),
    "peft": ("lora_A.weight", "lora_B.weight"),
    "peft-downup": ("lora_down.weight", "lora_up.weight"),
    "diffusers": ("lora_A.weight", "lora_B.weight"),
}


def to_diffusers(module):
    if module in DIFFUSERS_TOP:
        return DIFFUSERS_TOP[module]
    parts = module.split(".", 2)
    return "blocks.%s.%s" % (parts[1], DIFFUSERS_BLOCK[parts[2]])


def key_prefix(module, layout):
    if layout == "kohya":
        return "lora_unet_" + module.replace(".", "_")
    if layout == "peft":
        return "diffusion_model." + module
    if layout == "peft-downup":
        return module
    return "transformer." + to_diffusers(module)


def load(path):
    arrays, _ = st_io.read(path)
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}


def cmd_make_lora(args):
    w = load(args.weights)
    rng = np.random.default_rng(args.seed)
    down_s, up_s = SUFFIXES[args.layout]
    out = {}
    for module in TARGETS:
        o, i = w[module + ".weight"].shape
        a = rng.standard_normal((args.rank, i)) / math.sqrt(i)
        b = 0.5 * rng.standard_normal((o, args.rank)) / math.sqrt(args.rank)
        p = key_prefix(module, args.layout)
        out[p + "." + down_s] = a
        out[p + "." + up_s] = b
        if args.alpha:
            out[p + ".alpha"] = np.array(args.alpha)
    st_io.write(args.out, out)


def module_of(key, weights):
    """(module, part) of a LoRA key; module in the model's names."""
    for suffix, part in ((".lora_down.weight", "down"), (".lora_A.weight", "down"),
                         (".lora_up.weight", "up"), (".lora_B.weight", "up"),
                         (".alpha", "alpha"), (".diff_b", "diff_b"), (".diff", "diff")):
        if key.endswith(suffix):
            raw = key[:-len(suffix)]
            break
    else:
        raise SystemExit("not a LoRA key: %s" % key)
    modules = {k[:-len(".weight")] for k in weights if k.endswith(".weight")}
    modules |= set(weights)
    if raw.startswith("lora_unet_"):
        by_kohya = {m.replace(".", "_"): m for m in modules}
        return by_kohya[raw[len("lora_unet_"):]], part
    for prefix in ("diffusion_model.", "transformer."):
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
    if raw in modules:
        return raw, part
    back = {v: k for k, v in DIFFUSERS_TOP.items()}
    if raw in back:
        return back[raw], part
    blk, n, rest = raw.split(".", 2)
    inner = {v: k for k, v in DIFFUSERS_BLOCK.items()}
    return "%s.%s.%s" % (blk, n, inner[rest]), part


def cmd_merge(args):
    w = load(args.weights)
    for item in args.lora:
        path, strength = item, 1.0
        if ":" in item:
            path, s = item.rsplit(":", 1)
            strength = float(s)
        lora = load(path)
        parts = {}
        for key, t in lora.items():
            module, part = module_of(key, w)
            parts.setdefault(module, {})[part] = t
        for module, p in parts.items():
            if "down" in p:
                a, b = p["down"], p["up"]
                rank = a.shape[0]
                alpha = float(p["alpha"].reshape(-1)[0]) if "alpha" in p else rank
                w[module + ".weight"] = w[module + ".weight"] + strength * alpha / rank * (b @ a)
            if "diff" in p:
                name = module + ".weight" if module + ".weight" in w else module
                w[name] = w[name] + strength * p["diff"]
            if "diff_b" in p:
                w[module + ".bias"] = w[module + ".bias"] + strength * p["diff_b"]
    st_io.write(args.out, {k: v.numpy() for k, v in w.items()})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-lora", help="a seeded LoRA in one layout")
    p.add_argument("--weights", required=True)
    p.add_argument("--layout", choices=sorted(SUFFIXES), required=True)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=0.0, help="0: no alpha key")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p = sub.add_parser("merge", help="W + strength * alpha / rank * B A, float64")
    p.add_argument("--weights", required=True)
    p.add_argument("--lora", action="append", required=True, help="FILE[:STRENGTH]")
    p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "make-lora":
        cmd_make_lora(args)
    else:
        cmd_merge(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
