"""Draw the README's pictures of the demo model through the real elements.

    /usr/bin/python3 tools/train/readme_pngs.py [--out docs] [--scale 3] [--model demo]

needs the built plugin on GST_PLUGIN_PATH_1_0 and the demo weights where
the elements look for `demo` (DIT_DEMO_DIR, then model/data); `--model
tiny` draws the seeded random presets instead.  Writes

  demo-default.png  three frames (0, 16, 32) of `ditgenerate ! ditdecode`
                    with no prompt: a random scene of the world;
  demo-prompt.png   one row per prompt, every fourth frame of 3 chunks;
  demo-v2v.png      a world clip (top) and `ditencode ! ditgenerate
                    strength=0.3 ! ditdecode` of it (bottom), every fourth
                    frame.

The frames are 64x64, drawn `--scale` times larger (nearest neighbour).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import elements  # noqa: E402
import pngio  # noqa: E402
import world  # noqa: E402
from elements import RGB, run  # noqa: E402

PROMPTS = ["a red ball moving left on a black background",
           "a blue square moving right on a gray background",
           "a yellow ring moving up on a gradient background"]


def models(name):
    """ditgenerate's model properties and the codec's, for a model set."""
    return ("model=%s vae-model=%s text-model=%s" % (name, name, name),
            "vae-model=%s" % name)


def generate(m, chunks, prompt=None):
    gen, codec = m
    p = 'prompt="%s"' % prompt if prompt else ""
    return run("ditgenerate num-chunks=%d %s %s ! queue ! ditdecode %s ! %s ! "
               "appsink name=out sync=false" % (chunks, p, gen, codec, RGB))


def video_to_video(m, clip, strength):
    gen, codec = m
    return run("%s ! ditencode %s ! ditgenerate strength=%g %s ! queue ! ditdecode %s ! %s ! "
               "appsink name=out sync=false" % (elements.APPSRC, codec, strength, gen, codec,
                                                RGB), feed=clip)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "docs"),
                    help="directory for the PNGs (default: docs)")
    ap.add_argument("--scale", type=int, default=3, help="pixel size (default 3)")
    ap.add_argument("--model", default="demo",
                    help="model set: demo (default) or tiny (the seeded random presets)")
    a = ap.parse_args(argv)
    m = models(a.model)

    def save(name, rows):
        path = os.path.join(a.out, name)
        pngio.write_png(path, pngio.sheet(rows, scale=a.scale))
        print("readme_pngs: wrote %s" % path)

    frames = generate(m, 3)
    save("demo-default.png", [[frames[i] for i in (0, 16, 32) if i < len(frames)]])

    save("demo-prompt.png", [list(generate(m, 3, p)[::4]) for p in PROMPTS])

    g = torch.Generator().manual_seed(11)
    clip = world.render(world.sample(g, 1), torch.arange(33))[0].numpy()
    out = video_to_video(m, clip, 0.3)
    n = min(len(out), len(clip))
    save("demo-v2v.png", [list(clip[:n:4]), list(out[:n:4])])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
