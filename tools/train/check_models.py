#!/usr/bin/python3
"""The trainable modules (models.py) against the float64 oracles of
tests/reference/ on random weights, in float64: DiT forward with and
without context (recompute + kv-bias as one masked pass), VAE encode and
decode (offline form against the oracle's streaming form), umT5 over a
padded batch.  Exit 0 when every relative L2 error is below 1e-9.

  check_models.py                 (about 10 s on one core)
  check_models.py --device cuda   the same modules in float32 (TF32 off),
                                  float32 with TF32 and bf16 autocast on
                                  that device against the float64 oracle
                                  (1e-4 / 1e-2 / 5e-2): the training
                                  precision computes the function
"""

import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# the oracles: in the source tree, else in reference/ beside a copy of
# tools/train (a GPU packet), else under the working directory
for d in (os.path.join(HERE, "..", "..", "tests", "reference"), os.path.join(HERE, "reference"),
          os.path.join("tests", "reference")):
    if os.path.exists(os.path.join(d, "dit_ref.py")):
        sys.path.insert(0, os.path.abspath(d))
        break

import dit_ref  # noqa: E402
import models  # noqa: E402
import umt5_ref  # noqa: E402
import vae_ref  # noqa: E402

TOL = 1e-9
failures = []


def check(name, a, b):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        print("%-52s FAIL shape %s vs %s" % (name, list(a.shape), list(b.shape)))
        failures.append(name)
        return
    e = float((a - b).norm() / max(float(b.norm()), 1e-300))
    ok = e < TOL
    print("%-52s %s rel_l2 %.2e" % (name, "ok  " if ok else "FAIL", e))
    if not ok:
        failures.append(name)


def randomise(module, g):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("gamma") or "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            else:
                fan = p[0].numel() if p.dim() > 1 else 1
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / math.sqrt(fan))


def dit_checks(g):
    net = models.DiT(256, 512, 2, 64).double()
    randomise(net, g)
    w = {k: v.detach().clone() for k, v in net.state_dict().items()}
    cfg = dit_ref.infer_config(w)
    hh = ww = 8
    fs = (hh // 2) * (ww // 2)
    rows = torch.randn(7, 64, generator=g, dtype=torch.float64)
    prompt = dit_ref.prompt_state(w, cfg, dit_ref.text_embed(w, rows))
    text = net.text_state(torch.cat([rows, torch.zeros(2, 64, dtype=torch.float64)])[None],
                          torch.tensor([7]))
    text = ([(k.double(), v.double()) for k, v in text[0]], text[1].double())
    x = torch.randn(16, 3, hh, ww, generator=g, dtype=torch.float64)
    ctx = torch.randn(16, 3, hh, ww, generator=g, dtype=torch.float64)
    t = torch.tensor([750.0, 750.0, 500.0], dtype=torch.float64)
    with torch.no_grad():
        ref = dit_ref.forward(w, cfg, x, t, prompt, frame_offset=0)
        got = net(x[None], t[None], text, None)[0]
        check("DiT forward, no context", got, ref)
        ref = dit_ref.forward_with_context(w, cfg, x, t, prompt, ctx, 3, 0.3, 3)
        full = torch.cat([ctx, x], 1)[None]
        tt = torch.cat([torch.zeros(3, dtype=torch.float64), t])[None]
        bias = models.chunk_bias(3, 3, fs, 0.3, True).double()[None]
        got = net(full, tt, text, bias)[0][:, 3:]
        check("DiT forward, context + kv-bias 0.3 (one pass)", got, ref)
        # chunk 0 laid out after a masked context gives the chunk-0 forward
        bias0 = models.chunk_bias(3, 3, fs, 0.3, False).double()[None]
        got = net(full, tt, text, bias0)[0][:, 3:]
        ref = dit_ref.forward(w, cfg, x, t, prompt, frame_offset=0)
        check("DiT chunk 0 behind a masked context", got, ref)
        # 512 rows exactly (no padding key)
        rows512 = torch.randn(512, 64, generator=g, dtype=torch.float64)
        p512 = dit_ref.prompt_state(w, cfg, dit_ref.text_embed(w, rows512))
        t512 = net.text_state(rows512[None], torch.tensor([512]))
        ref = dit_ref.forward(w, cfg, x, t, p512)
        check("DiT forward, 512 prompt rows", net(x[None], t[None], t512, None)[0], ref)


def vae_checks(g):
    net = models.WanVAE(8).double()
    randomise(net, g)
    tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
    vae_ref.import_torch()
    ref = vae_ref.WanVAE(vae_ref.Params(tensors), *vae_ref.infer_dims(tensors))
    pix = 2 * torch.rand(1, 3, 9, 16, 32, generator=g, dtype=torch.float64) - 1
    with torch.no_grad():
        check("VAE encode 9 frames (offline vs streaming oracle)", net.encode(pix),
              ref.encode_stream(pix))
        check("VAE encode 1 frame (anchor)", net.encode(pix[:, :, :1]), ref.encode_anchor(pix[:, :, :1]))
        z = torch.randn(1, 16, 3, 2, 4, generator=g, dtype=torch.float64)
        check("VAE decode 3 latents (offline vs streaming oracle)", net.decode(z),
              ref.decode_stream(z)[0])
        # the module's own streaming form (the trainer's truncated-BPTT path)
        pix = 2 * torch.rand(1, 3, 13, 16, 32, generator=g, dtype=torch.float64) - 1
        cache = {}
        zs = torch.cat([net.encode(pix[:, :, :1], cache)] + [
            net.encode(pix[:, :, 1 + 4 * i:5 + 4 * i], cache) for i in range(3)], 2)
        check("VAE encode 13 frames streamed (1, 4, 4, 4)", zs, ref.encode_stream(pix))
        cache = {}
        z = torch.randn(1, 16, 5, 2, 4, generator=g, dtype=torch.float64)
        ps = torch.cat([net.decode(z[:, :, :2], cache=cache), net.decode(z[:, :, 2:], cache=cache)], 2)
        check("VAE decode 5 latents streamed (2 + 3 per call)", ps, ref.decode_stream(z)[0])


def umt5_checks(g):
    net = models.UMT5().double()
    randomise(net, g)
    w = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    ids = [[5, 17, 300, 1], [9, 1, 0, 0]]
    lengths = torch.tensor([4, 2])
    with torch.no_grad():
        got = net(torch.tensor(ids), lengths)
    for b in range(2):
        n = int(lengths[b])
        check("umT5 row %d (%d ids of a padded batch)" % (b, n), got[b, :n],
              umt5_ref.encode(w, ids[b][:n]))
    check("umT5 padded rows are zero", got[1, 2:].abs().sum()[None] + 1.0, torch.ones(1))


def set_tf32(on):
    """TF32 for CUDA matmuls and cuDNN convolutions on or off (cuDNN's is on
    by default), with the fp32_precision settings where this torch has them."""
    mode = "tf32" if on else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def device_checks(device):
    """float32 (TF32 off), float32 with TF32 (as train.py runs the VAE) and
    bf16-autocast forwards on `device` against float64."""
    global TOL
    g = torch.Generator().manual_seed(1)
    net = models.DiT(256, 1024, 4, 64).double()
    randomise(net, g)
    vae = models.WanVAE(8).double()
    randomise(vae, g)
    t5 = models.UMT5().double()
    randomise(t5, g)
    ids = torch.tensor([[5, 17, 300, 1, 0], [9, 33, 7, 12, 1]])
    lengths = torch.tensor([4, 5])
    x = torch.randn(2, 16, 6, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([[0, 0, 0, 750.0, 750, 750], [0, 0, 0, 250, 250, 250]], dtype=torch.float64)
    bias = torch.stack([models.chunk_bias(3, 3, 16, 0.3, True), models.chunk_bias(3, 3, 16, 0.3, False)])
    pix = 2 * torch.rand(2, 3, 9, 64, 64, generator=g, dtype=torch.float64) - 1

    def run(dit, v, u, dev, dt):
        with torch.no_grad():
            rows = u(ids.to(dev), lengths.to(dev))
            out = dit(x.to(dev, dt), t.to(dev), dit.text_state(rows, lengths.to(dev)), bias.to(dev, dt))
            z = v.encode(pix.to(dev, dt))
            return [rows.double().cpu(), out.double().cpu(), z.double().cpu(),
                    v.decode(z).double().cpu()]
    ref = run(net, vae, t5, "cpu", torch.float64)
    names = ["umT5 rows", "DiT forward, context + chunk 0", "VAE encode", "VAE decode"]
    cuda = torch.device(device).type == "cuda"
    passes = [("float32", 1e-4, False, False)]
    if cuda:
        passes.append(("float32 TF32", 1e-2, False, True))
    passes.append(("bf16 autocast", 5e-2, True, True))
    for what, tol, amp, tf32 in passes:
        TOL = tol
        if cuda:
            set_tf32(tf32)
        mods = [m.to(device, torch.float32) for m in (net, vae, t5)]
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            got = run(mods[0], mods[1], mods[2], device, torch.float32)
        for n, a, b in zip(names, got, ref):
            check("%s on %s, %s" % (n, device, what), a, b)
        net, vae, t5 = (m.double().cpu() for m in mods)


def main():
    torch.set_num_threads(1)
    if len(sys.argv) == 3 and sys.argv[1] == "--device":
        device_checks(sys.argv[2])
        print("check_models: %d failure(s)" % len(failures))
        return 1 if failures else 0
    if len(sys.argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    g = torch.Generator().manual_seed(0)
    dit_checks(g)
    vae_checks(g)
    umt5_checks(g)
    print("check_models: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
