"""What a clip of the demo world shows, measured on 8-bit RGB frames
[T, H, W, 3] (numpy, uint8): where the objects are, their colour, how they
move.  The trainer's evaluation and the element tests (tests/demo/) use the
same functions, so "the prompt steers colour" means the same thing in both.

Object pixels are the pixels far (L1 distance > 100 of 765) from the known
background of the scene; the world's colours are all at least 160 away from
every background colour.
"""

import numpy as np

import world

OBJECT_DISTANCE = 100


def background_image(name):
    """The background [H, W, 3] float of a background name."""
    import torch
    s = world.sample(torch.Generator().manual_seed(0), 1)
    s.background[0] = world.BACKGROUNDS.index(name)
    return world._background(s, "cpu")[0].numpy()


def object_mask(frames, background):
    """bool [T, H, W]: pixels that are not background."""
    bg = background_image(background)
    d = np.abs(frames.astype(np.float32) - bg[None]).sum(-1)
    return d > OBJECT_DISTANCE


def object_colour(frames, background):
    """Mean RGB [3] of the object pixels of a clip (NaN when there are none)
    and the fraction of pixels that are object pixels."""
    m = object_mask(frames, background)
    if not m.any():
        return np.full(3, np.nan), 0.0
    return frames[m].astype(np.float64).mean(0), float(m.mean())


def nearest_colour(rgb):
    """Name of the world colour nearest to an RGB triple."""
    names = list(world.COLOUR_RGB)
    d = [np.abs(np.asarray(world.COLOUR_RGB[n]) - rgb).sum() for n in names]
    return names[int(np.argmin(d))]


def _shift(a, b, max_shift=8):
    """Circular shift s in [-max_shift, max_shift] maximising sum a[i] b[i+s]
    (how far profile a moved to become b)."""
    best, arg = -np.inf, 0
    for s in range(-max_shift, max_shift + 1):
        v = float((a * np.roll(b, -s)).sum())
        if v > best:
            best, arg = v, s
    return arg


def motion(frames, background):
    """Total (dx, dy) in pixels the objects moved over the clip: sum over
    consecutive frames of the circular shift that best aligns the column
    (row) profiles of the object mask.  Wrapping at the frame edge (the world
    is a torus) does not break it."""
    m = object_mask(frames, background).astype(np.float64)
    cols = m.sum(1)          # [T, W]
    rows = m.sum(2)          # [T, H]
    dx = dy = 0
    for t in range(1, m.shape[0]):
        if cols[t - 1].sum() > 0 and cols[t].sum() > 0:
            dx += _shift(cols[t - 1], cols[t])
            dy += _shift(rows[t - 1], rows[t])
    return dx, dy


def psnr(a, b):
    """PSNR in dB of two uint8 arrays."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def frame_differences(frames):
    """Mean absolute difference (0..255) between consecutive frames [T-1]."""
    f = frames.astype(np.float64)
    return np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3))
