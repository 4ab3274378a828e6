#!/usr/bin/python3
"""The trained demo model through the real elements: prompts and video must
mean something.  Each check runs the same pipeline twice, with the demo
model's checkpoints (model/data/demo-dit.safetensors, demo-vae.safetensors,
demo-umt5.safetensors, or the same names in $DIT_DEMO_DIR, passed to the
elements as file paths) and with the seeded random presets (model=tiny
vae-model=tiny text-model=tiny); the demo model must pass the margin and the
random model must fail it, so a check that cannot tell the two apart fails.

The demo weights are not in the tree until they are trained (docs/
demo-model.md): without them every check exits 77 (SKIP) naming the missing
file and the commands that make it, and never passes.  --random CHECK runs
only the random-preset half and prints its figures (exit 0 when the random
model fails the margin, as it must).

  test_demo.py [--random] colour | motion | v2v | smooth | prompt-change | all

  colour         "a red ball ..." against "a blue ball ...": the object
                 pixels' (R - B) differ by >= 120 levels in the right
                 direction, each clip has a compact object
  motion         "moving left" against "moving right": over 3 chunks the
                 objects move >= 12 px the named way, in >= 60% of the
                 frame steps
  v2v            ditencode ! ditdecode on a world clip: PSNR >= 25 dB;
                 ditencode ! ditgenerate strength=0.3 ! ditdecode: the output
                 is closer (MSE < 0.5x) to its input than to another clip
  smooth         10 chunks: mean |frame difference| across chunk boundaries
                 <= 2x the one within chunks, within-chunk <= 15 levels, the
                 object still there in the last chunk
  prompt-change  red -> blue while PLAYING with prompt-transition-chunks=2:
                 red before, blue in the chunk 2 chunks after the transition
                 starts

Frames are read back as 8-bit RGB from appsink; world clips come from
tools/train/world.py, measurements from tools/train/metrics.py (the ones
the trainer evaluates with).  Needs GStreamer's Python bindings (python3-gi)
and torch (world rendering); exits 77 without them.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools", "train"))

try:
    import numpy as np
    import torch
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst  # noqa: F401
except (ImportError, ValueError) as e:
    print("SKIP: %s" % e)
    sys.exit(77)

import elements  # noqa: E402
import metrics  # noqa: E402
import world  # noqa: E402
from elements import RGB, run  # noqa: E402

DEMO_DIR = os.environ.get("DIT_DEMO_DIR") or os.path.join(SRC, "model", "data")
DEMO_FILES = {"model": "demo-dit.safetensors", "vae-model": "demo-vae.safetensors",
              "text-model": "demo-umt5.safetensors"}
# a model set: ditgenerate's properties and the codec's (ditencode, ditdecode)
DEMO = {"gen": " ".join("%s=%s" % (k, os.path.join(DEMO_DIR, f)) for k, f in DEMO_FILES.items()),
        "codec": "vae-model=%s" % os.path.join(DEMO_DIR, DEMO_FILES["vae-model"])}
RANDOM = {"gen": "model=tiny vae-model=tiny text-model=tiny", "codec": "vae-model=tiny"}
FRAMES_CHUNK0, FRAMES_CHUNK = 9, 12

torch.set_num_threads(1)


# --------------------------------------------------------------------------
# pipelines

def missing_demo_files():
    return [os.path.join(DEMO_DIR, f) for f in DEMO_FILES.values()
            if not os.path.isfile(os.path.join(DEMO_DIR, f))]


def t2v(prompt, chunks, models, extra="", on_chunk=None):
    p = 'prompt="%s"' % prompt if prompt else ""
    return run("ditgenerate name=gen num-chunks=%d %s %s %s ! queue ! ditdecode %s ! %s ! "
               "appsink name=out sync=false" % (chunks, p, models["gen"], extra,
                                                models["codec"], RGB), on_chunk=on_chunk)


def world_clip(seed, frames, prompt=None):
    g = torch.Generator().manual_seed(seed)
    scene = world.scene_from_caption(prompt, g) if prompt else world.sample(g, 1)
    return world.render(scene, torch.arange(frames))[0].numpy(), world.caption(scene)


def chunks_of(frames):
    """Split a stream's frames into chunks (9, then 12 each)."""
    out, i = [frames[:FRAMES_CHUNK0]], FRAMES_CHUNK0
    while i < len(frames):
        out.append(frames[i:i + FRAMES_CHUNK])
        i += FRAMES_CHUNK
    return out


# --------------------------------------------------------------------------
# checks: each returns (passed, report) for one model set

def present(frames, background):
    _, frac = metrics.object_colour(frames, background)
    return 0.003 < frac < 0.3, frac


def check_colour(models):
    res = {}
    for name in ("red", "blue"):
        f = t2v("a %s ball moving right on a black background" % name, 3, models)
        rgb, frac = metrics.object_colour(f, "black")
        res[name] = (rgb, frac)
    rb = {k: float(v[0][0] - v[0][2]) for k, v in res.items()}
    ok_present = all(0.003 < v[1] < 0.3 for v in res.values())
    margin = rb["red"] - rb["blue"]
    ok = ok_present and rb["red"] > 0 > rb["blue"] and margin >= 120
    rep = "red prompt: object RGB %s (%.1f%% of pixels), blue prompt: %s (%.1f%%); " \
          "(R-B) red %.0f, blue %.0f, margin %.0f (need >= 120)" % (
              np.round(res["red"][0]).tolist(), 100 * res["red"][1],
              np.round(res["blue"][0]).tolist(), 100 * res["blue"][1],
              rb["red"], rb["blue"], margin)
    return ok, rep


def steps_agree(frames, background, sign):
    """Share of consecutive-frame steps whose horizontal shift has `sign`."""
    m = metrics.object_mask(frames, background).astype(np.float64).sum(1)
    n = agree = 0
    for t in range(1, len(frames)):
        if m[t - 1].sum() and m[t].sum():
            n += 1
            agree += int(np.sign(metrics._shift(m[t - 1], m[t])) == sign)
    return agree / max(n, 1)


def check_motion(models):
    ok, parts = True, []
    for way, sign in (("left", -1), ("right", 1)):
        f = t2v("a white ball moving %s on a black background" % way, 3, models)
        dx, _ = metrics.motion(f, "black")
        agree = steps_agree(f, "black", sign)
        good, frac = present(f, "black")
        ok &= good and sign * dx >= 12 and agree >= 0.6
        parts.append("%s: dx %+d px, %.0f%% of steps %s, object %.1f%%" % (
            way, dx, 100 * agree, way, 100 * frac))
    return ok, "; ".join(parts) + " (need >= 12 px and >= 60%, object 0.3..30%)"


def check_v2v(models):
    clip, cap = world_clip(11, 41)
    other, cap2 = world_clip(12, 41)
    codec = models["codec"]
    rec = run("%s ! ditencode %s ! ditdecode %s ! %s ! appsink name=out sync=false"
              % (elements.APPSRC, codec, codec, RGB), feed=clip)
    n = min(len(rec), len(clip))
    p = metrics.psnr(rec[:n], clip[:n])
    out = run("%s ! ditencode %s ! ditgenerate strength=0.3 %s ! queue ! ditdecode %s ! %s ! "
              "appsink name=out sync=false" % (elements.APPSRC, codec, models["gen"], codec, RGB),
              feed=clip)
    n2 = min(len(out), len(clip))
    mse_in = float(np.mean((out[:n2].astype(float) - clip[:n2]) ** 2))
    mse_other = float(np.mean((out[:n2].astype(float) - other[:n2]) ** 2))
    ok = n >= 33 and p >= 25.0 and n2 >= 21 and mse_in < 0.5 * mse_other
    return ok, ("encode/decode of %d frames ('%s'): PSNR %.1f dB (need >= 25); strength 0.3, "
                "%d frames: MSE to input %.0f, to another clip ('%s') %.0f, ratio %.2f "
                "(need < 0.5)" % (n, cap, p, n2, mse_in, cap2, mse_other,
                                  mse_in / max(mse_other, 1e-9)))


def check_smooth(models):
    f = t2v("a yellow square moving right on a black background", 10, models)
    parts = chunks_of(f)
    d = metrics.frame_differences(f)
    boundary = []
    i = FRAMES_CHUNK0
    while i < len(f):
        boundary.append(i - 1)     # difference between frame i-1 and i
        i += FRAMES_CHUNK
    within = np.delete(d, boundary)
    b, w = float(d[boundary].mean()), float(within.mean())
    good, frac = present(parts[-1], "black")
    ok = len(parts) == 10 and b <= 2 * w and w <= 15.0 and good
    return ok, ("%d chunks, %d frames: mean |diff| across boundaries %.2f, within chunks %.2f, "
                "ratio %.2f (need <= 2, within <= 15); object in the last chunk %.1f%%" % (
                    len(parts), len(f), b, w, b / max(w, 1e-9), 100 * frac))


def check_prompt_change(models):
    weights = []

    def on_chunk(gen, k):
        weights.append(gen.get_property("prompt-weight"))
        if k == 2:
            gen.set_property("prompt", "a blue ball moving right on a black background")
    f = t2v("a red ball moving right on a black background", 8, models,
            "prompt-transition-chunks=2", on_chunk)
    parts = chunks_of(f)
    start = next((k for k, w in enumerate(weights) if w < 0.999), None)
    if start is None or start + 2 >= len(parts):
        return False, "the transition did not start in time (prompt-weight per chunk %s)" % weights
    colour = lambda c: metrics.object_colour(c, "black")[0]
    before, after = colour(parts[start - 1]), colour(parts[start + 2])
    name = lambda rgb: "none" if np.isnan(rgb).any() else metrics.nearest_colour(rgb)
    ok = name(before) == "red" and name(after) == "blue" and \
        float(after[2] - after[0]) >= 60 and float(before[0] - before[2]) >= 60
    return ok, ("transition starts at chunk %d (prompt-weight %s); chunk %d: %s %s, chunk %d: "
                "%s %s (need red, then blue by 2 chunks)" % (
                    start, [round(w, 2) for w in weights], start - 1,
                    name(before), np.round(before).tolist(), start + 2, name(after),
                    np.round(after).tolist()))


CHECKS = {"colour": check_colour, "motion": check_motion, "v2v": check_v2v,
          "smooth": check_smooth, "prompt-change": check_prompt_change}


def main(argv):
    names = argv[1:]
    random_only = bool(names) and names[0] == "--random"
    if random_only:
        names = names[1:]
    names = names or ["all"]
    if names == ["all"]:
        names = list(CHECKS)
    if any(n not in CHECKS for n in names):
        print("usage: test_demo.py [--random] %s | all" % " | ".join(CHECKS), file=sys.stderr)
        return 2
    missing = missing_demo_files()
    if missing and not random_only:
        print("SKIP: %s: no trained demo weights (%s).  Make them on a GPU with\n"
              "  bash tools/train/run-gpu.sh LOGFILE OUTDIR\n"
              "then install them with\n"
              "  sh tools/train/install-weights.sh OUTDIR\n"
              "(docs/demo-model.md).  The random presets' figures alone: "
              "tests/demo/test_demo.py --random %s" % (
                  ", ".join(names), ", ".join(missing), " ".join(names)))
        return 77
    failed = 0
    for name in names:
        t0 = time.time()
        if random_only:
            ok_rand, rep_rand = CHECKS[name](RANDOM)
            print("%s, random tiny:  %s -> %s (must fail)" % (name, rep_rand,
                                                              "passes" if ok_rand else "fails"))
            if ok_rand:
                print("FAIL: %s: the random model passes, so the check tells nothing" % name)
                failed += 1
            print("%s: %.1f s" % (name, time.time() - t0))
            continue
        ok_demo, rep_demo = CHECKS[name](DEMO)
        print("%s, demo model:   %s -> %s" % (name, rep_demo, "PASS" if ok_demo else "FAIL"))
        ok_rand, rep_rand = CHECKS[name](RANDOM)
        print("%s, random tiny:  %s -> %s (must fail)" % (name, rep_rand,
                                                          "passes" if ok_rand else "fails"))
        if not ok_demo:
            print("FAIL: %s: the demo model misses the margin" % name)
            failed += 1
        if ok_rand:
            print("FAIL: %s: the random model passes too, so the check tells nothing" % name)
            failed += 1
        print("%s: %.1f s" % (name, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
