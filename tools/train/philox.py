"""Philox4x32-10 normals exactly as kernels/dit_philox.h makes them (numpy,
vectorised): element i of stream s under seed k.  The trainer uses it for
the elements' default prompt rows (dit_stream_default_embeds), so that the
demo model learns what "no prompt" means in the engine."""

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
MASK = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    c = [np.asarray(v, np.uint32).copy() for v in (c0, c1, c2, c3)]
    k0 = np.uint32(k0)
    k1 = np.uint32(k1)
    with np.errstate(over="ignore"):
        for _ in range(10):
            p0 = M0 * c[0].astype(np.uint64)
            p1 = M1 * c[2].astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & MASK).astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & MASK).astype(np.uint32)
            c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
            k0 = np.uint32(k0 + W0)
            k1 = np.uint32(k1 + W1)
    return c


def normals(seed, stream, n):
    """Elements 0..n-1 of the normal stream, float32."""
    pairs = (n + 1) // 2
    p = np.arange(pairs, dtype=np.uint64)
    o = philox4x32_10((p & MASK).astype(np.uint32), (p >> np.uint64(32)).astype(np.uint32),
                      np.full(pairs, stream & 0xFFFFFFFF, np.uint32),
                      np.full(pairs, stream >> 32, np.uint32),
                      seed & 0xFFFFFFFF, seed >> 32)
    u1 = (o[0].astype(np.float64) + 1.0) * 2.3283064365386963e-10
    u2 = o[1].astype(np.float64) * 2.3283064365386963e-10
    r = np.sqrt(-2.0 * np.log(u1))
    a = 6.283185307179586 * u2
    z = np.stack([(r * np.cos(a)).astype(np.float32), (r * np.sin(a)).astype(np.float32)], 1)
    return z.reshape(-1)[:n]


DEFAULT_PROMPT_ROWS = 16
DEFAULT_PROMPT_STREAM = 0x70726F6D7074   # "prompt"


def default_embeds(dim, rows=DEFAULT_PROMPT_ROWS):
    """The engine's prompt rows when no prompt is given: 0.1 * normals of
    stream "prompt" under seed 0 (model/dit_stream.c)."""
    z = normals(0, DEFAULT_PROMPT_STREAM, rows * dim)
    return (np.float32(0.1) * z).reshape(rows, dim)
