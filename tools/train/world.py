#!/usr/bin/python3
"""The demo model's procedural video world: coloured shapes moving over a
background, 64x64 pixels at 16 fps, with a caption from a fixed grammar.

A scene has 1 or 2 objects and a background:
  shapes       ball, square, ring
  colours      red, green, blue, yellow, white
  motions      left, right, up, down (straight, wrapping around the frame
               edges: the world is a torus), bouncing (diagonal, reflected
               at the edges), still
  backgrounds  black, gray, gradient (a fixed dark blue-to-plum diagonal)
Caption grammar (one object, or two joined by "and"):
  "a {colour} {shape} {motion} on a {background} background"
  motion: "moving left" | "moving right" | "moving up" | "moving down" |
          "bouncing" | "standing still"
e.g. "a red ball moving left on a black background".

Everything is a pure function of the scene parameters and the frame index:
positions are closed-form (x0 + v f, wrapped or folded), shapes are drawn
with a one-pixel anti-aliased edge, and frames are rounded to 8-bit RGB,
which is what the elements get from a video source.  The VAE sees pixels
as 2 * byte / 255 - 1, exactly as kernels/cpu/pixels.c converts RGB.
Scenes are drawn from a seed (torch.Generator), so a seed names a clip;
rendering runs batched on any torch device (the trainer renders on the GPU).

A scene can switch to a second scene at a frame (the prompt-change case):
the objects keep their positions, their colour, shape and motion change.

Command line:
  world.py clip --seed S [--prompt TEXT] [--frames N] [--start F] -o OUT.rgb
      raw RGB frames (64x64x3 bytes each, 16 fps); prints the caption
  world.py caption --seed S            the caption of scene S
  world.py captions                    every one-object caption
"""

import argparse
import math
import sys

import torch

SIZE = 64
FPS = 16
SHAPES = ("ball", "square", "ring")
COLOURS = ("red", "green", "blue", "yellow", "white")
MOTIONS = ("left", "right", "up", "down", "bouncing", "still")
BACKGROUNDS = ("black", "gray", "gradient")
MOTION_WORDS = {"left": "moving left", "right": "moving right", "up": "moving up",
                "down": "moving down", "bouncing": "bouncing", "still": "standing still"}

# 8-bit RGB of each colour and background
COLOUR_RGB = {
    "red": (230, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 50),
    "white": (240, 240, 240),
}
BACKGROUND_RGB = {"black": (0, 0, 0), "gray": (110, 110, 110)}
GRADIENT_RGB = ((20, 30, 110), (110, 25, 70))   # top-left -> bottom-right

SPEED = (1.0, 1.6)       # pixels per frame, straight motion
BOUNCE_SPEED = (0.8, 1.4)  # per axis, bouncing
RADIUS = (7.0, 10.0)     # ball/ring radius, half the square's side


class Scene:
    """A batch of B scenes; every field is a tensor with batch dim B.
    Objects: [B, 2] (slot 1 unused when nobj == 1), positions [B, 2, 2] (x, y)."""

    FIELDS = ("nobj", "shape", "colour", "motion", "background", "pos", "vel", "radius")

    def __init__(self, **kw):
        for k in self.FIELDS:
            setattr(self, k, kw[k])

    @property
    def batch(self):
        return self.nobj.shape[0]

    def to(self, device):
        return Scene(**{k: getattr(self, k).to(device) for k in self.FIELDS})

    def index(self, i):
        return Scene(**{k: getattr(self, k)[i:i + 1] for k in self.FIELDS})


def _uniform(g, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=g, device=g.device)


def sample(g, batch, two_objects=0.3, device=None):
    """B random scenes from generator g (on g's device)."""
    dev = g.device
    nobj = 1 + (torch.rand(batch, generator=g, device=dev) < two_objects).long()
    shape = torch.randint(0, len(SHAPES), (batch, 2), generator=g, device=dev)
    colour = torch.randint(0, len(COLOURS), (batch, 2), generator=g, device=dev)
    motion = torch.randint(0, len(MOTIONS), (batch, 2), generator=g, device=dev)
    background = torch.randint(0, len(BACKGROUNDS), (batch,), generator=g, device=dev)
    radius = _uniform(g, (batch, 2), *RADIUS)
    pos = _uniform(g, (batch, 2, 2), 0.0, 1.0)
    # inside the frame for every motion (bouncing and still must be)
    pos = radius[..., None] + pos * (SIZE - 2 * radius[..., None])
    vel = _motion_velocity(g, motion)
    s = Scene(nobj=nobj, shape=shape, colour=colour, motion=motion,
              background=background, pos=pos, vel=vel, radius=radius)
    return s.to(device) if device is not None else s


def _motion_velocity(g, motion):
    dev = motion.device
    b = motion.shape
    speed = _uniform(g, b, *SPEED)
    bx = _uniform(g, b, *BOUNCE_SPEED) * (2 * (torch.rand(b, generator=g, device=dev) < 0.5) - 1)
    by = _uniform(g, b, *BOUNCE_SPEED) * (2 * (torch.rand(b, generator=g, device=dev) < 0.5) - 1)
    z = torch.zeros(b, device=dev)
    vx = torch.where(motion == 0, -speed, torch.where(motion == 1, speed, z))
    vy = torch.where(motion == 2, -speed, torch.where(motion == 3, speed, z))
    vx = torch.where(motion == 4, bx, vx)
    vy = torch.where(motion == 4, by, vy)
    return torch.stack([vx, vy], -1)


def positions(scene, frames):
    """Object centres [B, T, 2, 2] at frame indices `frames` [T] (float)."""
    f = frames.to(scene.pos.dtype).view(1, -1, 1, 1)
    raw = scene.pos[:, None] + scene.vel[:, None] * f           # [B, T, 2, 2]
    r = scene.radius[:, None, :, None]
    span = SIZE - 2 * r
    u = torch.remainder(raw - r, 2 * span)
    folded = r + torch.where(u < span, u, 2 * span - u)
    bouncing = (scene.motion == 4)[:, None, :, None]
    return torch.where(bouncing, folded, torch.remainder(raw, SIZE))


def _background(scene, device):
    yy, xx = torch.meshgrid(torch.arange(SIZE, device=device, dtype=torch.float32),
                            torch.arange(SIZE, device=device, dtype=torch.float32),
                            indexing="ij")
    w = ((xx + yy) / (2 * (SIZE - 1)))[..., None]
    a = torch.tensor(GRADIENT_RGB[0], device=device, dtype=torch.float32)
    b = torch.tensor(GRADIENT_RGB[1], device=device, dtype=torch.float32)
    grad = (1 - w) * a + w * b                                    # [H, W, 3]
    flat = torch.stack([torch.tensor(BACKGROUND_RGB["black"], dtype=torch.float32),
                        torch.tensor(BACKGROUND_RGB["gray"], dtype=torch.float32)]).to(device)
    table = torch.cat([flat[:, None, None, :].expand(2, SIZE, SIZE, 3), grad[None]], 0)
    return table[scene.background]                                # [B, H, W, 3]


def _coverage(shape, d_x, d_y, radius):
    """Anti-aliased coverage in [0, 1] of each shape kind; d_x/d_y toroidal
    offsets from the centre, radius broadcastable."""
    dist = torch.sqrt(d_x * d_x + d_y * d_y)
    ball = (radius - dist + 0.5).clamp(0, 1)
    cheb = torch.maximum(d_x.abs(), d_y.abs())
    square = (0.85 * radius - cheb + 0.5).clamp(0, 1)
    width = (0.4 * radius).clamp(min=3.0)
    ring = (torch.minimum(radius - dist, dist - (radius - width)) + 0.5).clamp(0, 1)
    return torch.where(shape == 0, ball, torch.where(shape == 1, square, ring))


def render(scene, frames, scene_b=None, switch_frame=None):
    """8-bit RGB frames [B, T, H, W, 3] (uint8) of the scenes at frame indices
    `frames` [T].  With scene_b and switch_frame [B] (long), frames >=
    switch_frame show scene_b's attributes at the positions of a continuous
    path: scene_b's motion continues from where scene's objects are."""
    dev = scene.pos.device
    frames = frames.to(dev)
    T = frames.shape[0]
    pos = positions(scene, frames)                                # [B, T, 2, 2]
    bg = _background(scene, dev)[:, None].expand(-1, T, -1, -1, -1)
    shape = scene.shape[:, None, :].expand(-1, T, -1)
    colour = scene.colour[:, None, :].expand(-1, T, -1)
    radius = scene.radius[:, None, :].expand(-1, T, -1)
    if scene_b is not None:
        after = frames[None, :] >= switch_frame[:, None]          # [B, T]
        cont = continue_scene(scene, scene_b, switch_frame)
        pos = torch.where(after[..., None, None], positions(cont, frames), pos)
        bg = torch.where(after[..., None, None, None],
                         _background(scene_b, dev)[:, None].expand(-1, T, -1, -1, -1), bg)
        shape = torch.where(after[..., None], scene_b.shape[:, None, :].expand(-1, T, -1), shape)
        colour = torch.where(after[..., None], scene_b.colour[:, None, :].expand(-1, T, -1), colour)
        radius = torch.where(after[..., None], cont.radius[:, None, :].expand(-1, T, -1), radius)
    ax = torch.arange(SIZE, device=dev, dtype=torch.float32)
    rgb = torch.tensor([COLOUR_RGB[c] for c in COLOURS], device=dev, dtype=torch.float32)
    img = bg.clone()
    for o in range(2):
        present = (scene.nobj > o).view(-1, 1, 1, 1, 1).float()
        cx = pos[:, :, o, 0].view(-1, T, 1, 1)
        cy = pos[:, :, o, 1].view(-1, T, 1, 1)
        # toroidal offsets: an object leaving one edge enters at the other
        d_x = torch.remainder(ax.view(1, 1, 1, SIZE) - cx + SIZE / 2, SIZE) - SIZE / 2
        d_y = torch.remainder(ax.view(1, 1, SIZE, 1) - cy + SIZE / 2, SIZE) - SIZE / 2
        cov = _coverage(shape[:, :, o].view(-1, T, 1, 1), d_x, d_y,
                        radius[:, :, o].view(-1, T, 1, 1))[..., None] * present
        col = rgb[colour[:, :, o]].view(-1, T, 1, 1, 3)
        img = img * (1 - cov) + col * cov
    return img.round().clamp(0, 255).to(torch.uint8)


def continue_scene(a, b, switch_frame):
    """Scene b moved so that its objects start, at switch_frame, where a's
    objects are then (same object count as a).  Radius keeps a's size class
    (b's radius) but bouncing bounds are b's."""
    f = switch_frame.to(a.pos.dtype)
    pa = _positions_at(a, f)                                      # [B, 2, 2]
    rb = b.radius
    # keep bouncing objects inside b's bounds
    pa = torch.where((b.motion == 4)[..., None],
                     torch.maximum(torch.minimum(pa, SIZE - rb[..., None]), rb[..., None]), pa)
    pos0 = pa - b.vel * f[:, None, None]
    return Scene(nobj=a.nobj, shape=b.shape, colour=b.colour, motion=b.motion,
                 background=b.background, pos=pos0, vel=b.vel, radius=rb)


def _positions_at(scene, f):
    """Centres [B, 2, 2] at a per-scene frame index f [B]."""
    raw = scene.pos + scene.vel * f[:, None, None]
    r = scene.radius[..., None]
    span = SIZE - 2 * r
    u = torch.remainder(raw - r, 2 * span)
    folded = r + torch.where(u < span, u, 2 * span - u)
    return torch.where((scene.motion == 4)[..., None], folded, torch.remainder(raw, SIZE))


def to_unit(frames_u8):
    """uint8 [.., H, W, 3] -> float pixels [.., 3, H, W] in [-1, 1] (2 b / 255 - 1,
    kernels/cpu/pixels.c for RGB)."""
    x = frames_u8.float() * (2.0 / 255.0) - 1.0
    return x.movedim(-1, -3)


# --------------------------------------------------------------------------
# captions

def object_phrase(shape, colour, motion):
    return "a %s %s %s" % (COLOURS[colour], SHAPES[shape], MOTION_WORDS[MOTIONS[motion]])


def caption(scene, i=0):
    parts = [object_phrase(int(scene.shape[i, o]), int(scene.colour[i, o]), int(scene.motion[i, o]))
             for o in range(int(scene.nobj[i]))]
    return "%s on a %s background" % (" and ".join(parts), BACKGROUNDS[int(scene.background[i])])


def parse_caption(text):
    """Caption -> (objects [(shape, colour, motion)], background) indices;
    ValueError naming the part that is not in the grammar."""
    t = " ".join(text.strip().lower().split())
    if " on a " not in t or not t.endswith(" background"):
        raise ValueError("caption %r must end with 'on a <background> background'" % text)
    head, bg = t.rsplit(" on a ", 1)
    bg = bg[:-len(" background")]
    if bg not in BACKGROUNDS:
        raise ValueError("background %r is not one of %s" % (bg, ", ".join(BACKGROUNDS)))
    objs = []
    for part in head.split(" and "):
        w = part.split()
        if len(w) < 4 or w[0] != "a":
            raise ValueError("object %r must read 'a <colour> <shape> <motion>'" % part)
        colour, shape, motion_words = w[1], w[2], " ".join(w[3:])
        motion = [m for m, words in MOTION_WORDS.items() if words == motion_words]
        if colour not in COLOURS or shape not in SHAPES or not motion:
            raise ValueError("object %r: colour in %s, shape in %s, motion in %s"
                             % (part, COLOURS, SHAPES, list(MOTION_WORDS.values())))
        objs.append((SHAPES.index(shape), COLOURS.index(colour), MOTIONS.index(motion[0])))
    if not 1 <= len(objs) <= 2:
        raise ValueError("caption %r has %d objects; the world has 1 or 2" % (text, len(objs)))
    return objs, BACKGROUNDS.index(bg)


def scene_from_caption(text, g):
    """A scene with the caption's attributes; positions, speeds and sizes
    from g."""
    objs, bg = parse_caption(text)
    s = sample(g, 1, two_objects=0.0)
    s.nobj[0] = len(objs)
    for o, (shape, colour, motion) in enumerate(objs):
        s.shape[0, o], s.colour[0, o], s.motion[0, o] = shape, colour, motion
    s.background[0] = bg
    s.vel = _motion_velocity(g, s.motion)
    return s


def all_one_object_captions():
    out = []
    for b in range(len(BACKGROUNDS)):
        for c in range(len(COLOURS)):
            for s in range(len(SHAPES)):
                for m in range(len(MOTIONS)):
                    out.append("%s on a %s background" % (object_phrase(s, c, m), BACKGROUNDS[b]))
    return out


def vocabulary():
    """Every word a caption can contain."""
    words = {"a", "and", "on", "background", "moving", "standing"}
    words.update(SHAPES, COLOURS, BACKGROUNDS, ("left", "right", "up", "down", "bouncing", "still"))
    return sorted(words)


# --------------------------------------------------------------------------
# CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("clip", help="write a clip as raw RGB frames, print its caption")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", help="a caption of the grammar (default: a random scene)")
    p.add_argument("--frames", type=int, default=41)
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("-o", "--output", required=True)
    p = sub.add_parser("caption", help="print the caption of a seed's scene")
    p.add_argument("--seed", type=int, default=0)
    sub.add_parser("captions", help="print every one-object caption")
    args = ap.parse_args(argv)
    if args.cmd == "captions":
        print("\n".join(all_one_object_captions()))
        return 0
    g = torch.Generator().manual_seed(args.seed)
    try:
        scene = scene_from_caption(args.prompt, g) if getattr(args, "prompt", None) else sample(g, 1)
    except ValueError as e:
        print("world.py: %s" % e, file=sys.stderr)
        return 2
    if args.cmd == "caption":
        print(caption(scene))
        return 0
    if args.frames < 1:
        ap.error("--frames must be >= 1")
    frames = render(scene, torch.arange(args.start, args.start + args.frames))[0]
    with open(args.output, "wb") as f:
        f.write(frames.numpy().tobytes())
    print(caption(scene))
    return 0


if __name__ == "__main__":
    sys.exit(main())
