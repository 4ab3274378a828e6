#!/usr/bin/python3
"""The quality of exported demo checkpoints, measured from the files: loads
DIR's demo-dit/-vae/-umt5.safetensors strictly (train.load_models: every key
and shape, the DiT's bfloat16 as stored) and runs the trainer's own
evaluation on them (train.eval_vae, train.eval_dit: streaming VAE PSNR on
world clips; colour, motion and presence of the objects generated for the
evaluation prompts; drift over a long stream).  The numbers are the ones
train-log.json reports for the model in memory, now for what was written.

  eval_weights.py DIR [--device cpu|cuda] [--long N] [--json FILE]
                      [--sheet PNG] [--min-psnr DB] [--min-colour ACC]

Exit 0 when the files load and the thresholds hold (defaults 0: only load
and run), 1 otherwise (the message names the file or the metric), 2 usage.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import train  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("dir", help="directory with the three demo-*.safetensors")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--long", type=int, default=8, help="chunks of the drift stream (0: none)")
    ap.add_argument("--json", help="also write the metrics here")
    ap.add_argument("--sheet", help="write the evaluation clips here (PNG: one row per prompt, "
                    "every third frame)")
    ap.add_argument("--min-psnr", type=float, default=0.0, help="VAE streaming PSNR floor (dB)")
    ap.add_argument("--min-colour", type=float, default=0.0, help="colour accuracy floor (0..1)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    for f in train.FILES.values():
        p = os.path.join(args.dir, f)
        if not os.path.isfile(p):
            print("eval_weights: %s: no such file" % p)
            return 1
    torch.manual_seed(0)
    dit, vae, umt5 = train.load_models(args.dir, device)
    text_rows = train.TextRows(umt5, train.Tokens(), device)
    ev = {"vae": train.eval_vae(vae, device)}
    ev["dit"], u8 = train.eval_dit(dit, vae, text_rows, device, long_chunks=args.long)
    if args.sheet:
        import pngio
        pngio.write_png(args.sheet, pngio.sheet([list(u8[i, ::3]) for i in range(len(u8))]))
    print("eval_weights: %s" % json.dumps(ev))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(ev, f, indent=1)
    bad = []
    if ev["vae"]["psnr"] < args.min_psnr:
        bad.append("VAE PSNR %.2f dB < %.2f" % (ev["vae"]["psnr"], args.min_psnr))
    if ev["dit"]["colour_acc"] < args.min_colour:
        bad.append("colour accuracy %.2f < %.2f" % (ev["dit"]["colour_acc"], args.min_colour))
    for b in bad:
        print("eval_weights: FAIL: %s" % b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
