"""PNG writing with zlib only (no imaging library needed): 8-bit RGB images
and contact sheets of frames."""

import struct
import zlib

import numpy as np


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xffffffff)


def write_png(path, rgb):
    """rgb: uint8 array [H, W, 3]."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, c = rgb.shape
    if c != 3:
        raise ValueError("write_png: expected [H, W, 3], got %s" % (rgb.shape,))
    raw = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def sheet(rows, scale=2, gap=2):
    """rows: list of lists of uint8 [H, W, 3] frames -> one uint8 image, each
    frame scaled by `scale` (nearest), `gap` white pixels between frames."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    H = len(rows) * (h * scale + gap) + gap
    W = ncol * (w * scale + gap) + gap
    out = np.full((H, W, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, f in enumerate(r):
            y = gap + i * (h * scale + gap)
            x = gap + j * (w * scale + gap)
            out[y:y + h * scale, x:x + w * scale] = np.repeat(np.repeat(f, scale, 0), scale, 1)
    return out
