#!/usr/bin/python3
"""Inputs and PyTorch outputs for checking that exported demo weights mean
in the C engine what they meant in training (tests/reference/
test_demo_export.sh runs the C tools on the same inputs and compares).

  check_export.py --weights DIR --out DIR

Loads the three checkpoints of DIR with train.load_models (the modules the
trainer trained, float64 here) and writes into --out:
  ids.txt                 token ids of a caption (caption_tokens.json)
  text_t.safetensors      'embeds': umT5 rows of those ids
  noise.safetensors       noise.c{k}.s{j} [16, 3, 8, 8], 3 chunks x 4 steps
  lat_t.safetensors       latents.c{k}: the rollout of dit-generate's rules
                          (context = the previous latents, kv-bias 0.3,
                          steps 1000/750/500/250, shift 5) on those embeds
  pix.safetensors         'pixels' [3, 33, 64, 64]: a world clip
  enc_t.safetensors       'latents' [16, 9, 8, 8]: its streaming encode
  dec_t.safetensors       'pixels': the decode of enc_t's latents
  anchor_pix.safetensors  'pixels' [3, 1, 64, 64]: frame 8 of the clip
  anchor_t.safetensors    'latents' [16, 1, 8, 8]: its anchor encode
  captions.txt            every one-object caption, and the ids the trainer
  caption_ids.txt         uses for each (compared with dit-text tokenize)
"""

import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import train  # noqa: E402
import world  # noqa: E402

CAPTION = "a red ball moving left on a black background"


def save(path, tensors):
    train.write_safetensors(path, {k: v.detach().float().cpu().numpy() for k, v in tensors.items()}, {})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="directory of demo-*.safetensors")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)
    dit, vae, umt5 = (m.double() for m in train.load_models(args.weights))
    tokens = train.Tokens()
    g = torch.Generator().manual_seed(args.seed)

    caps = world.all_one_object_captions()
    with open(out("captions.txt"), "w") as f:
        f.write("\n".join(caps) + "\n")
    with open(out("caption_ids.txt"), "w") as f:
        f.write("\n".join(" ".join(map(str, tokens.ids(c))) for c in caps) + "\n")

    with torch.no_grad():
        ids = tokens.ids(CAPTION)
        with open(out("ids.txt"), "w") as f:
            f.write(",".join(map(str, ids)) + "\n")
        rows = umt5(torch.tensor([ids]), torch.tensor([len(ids)]))[0]
        save(out("text_t.safetensors"), {"embeds": rows})

        noise = [[torch.randn(1, 16, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(4)]
                 for _ in range(3)]
        save(out("noise.safetensors"), {"noise.c%d.s%d" % (k, j): noise[k][j][0]
                                         for k in range(3) for j in range(4)})
        text = dit.text_state(rows[None], torch.tensor([len(ids)]))
        lat, _ = train.generate(dit, None, text, 1, 3, None, anchor="latent", noise=noise)
        save(out("lat_t.safetensors"), {"latents.c%d" % k: lat[0, :, 3 * k:3 * k + 3] for k in range(3)})

        scene = world.sample(torch.Generator().manual_seed(args.seed + 1), 1)
        u8 = world.render(scene, torch.arange(33))
        pix = world.to_unit(u8).permute(0, 2, 1, 3, 4).double()             # [1, 3, 33, 64, 64]
        save(out("pix.safetensors"), {"pixels": pix[0]})
        z = vae.encode(pix)
        save(out("enc_t.safetensors"), {"latents": z[0]})
        save(out("dec_t.safetensors"), {"pixels": vae.decode(z)[0]})
        save(out("anchor_pix.safetensors"), {"pixels": pix[0, :, 8:9]})
        save(out("anchor_t.safetensors"), {"latents": vae.encode(pix[:, :, 8:9])[0]})
    print("check_export: wrote inputs and PyTorch outputs to %s (caption %r)" % (args.out, CAPTION))
    return 0


if __name__ == "__main__":
    sys.exit(main())
