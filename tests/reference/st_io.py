"""Minimal, strict safetensors reader/writer using only numpy and struct.

The reference scripts must not depend on the C loader they test, nor on the
`safetensors` Python package (not available in CI), so the format is handled
here directly:

    8-byte little-endian header length N, N bytes of JSON
    {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
    then the raw little-endian data region.

Reading accepts F32, F64, F16 and BF16 (BF16 is widened to float32 exactly) and
rejects anything that is not well formed: unknown dtypes, offsets that do not
match the shape, overlapping or out-of-range ranges, holes in the data region,
duplicate keys, non-string metadata.  Writing produces F32 only, with the header
padded by spaces to a multiple of 8 bytes as the reference implementation does.
"""

import json
import struct

import numpy as np

_READ_DTYPES = {
        "F32": (np.dtype("<f4"), 4),
        "F64": (np.dtype("<f8"), 8),
        "F16": (np.dtype("<f2"), 2),
        "BF16": (np.dtype("<u2"), 2),
}

_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    pass


def _reject_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise SafetensorsError("duplicate key %r in header" % k)
        out[k] = v
    return out


def read_header(path):
    """Return (header dict without __metadata__, metadata dict, data start)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError("%s: file shorter than the 8-byte header length" % path)
        (n,) = struct.unpack("<Q", raw)
        if n == 0 or n > _MAX_HEADER:
            raise SafetensorsError("%s: implausible header length %d" % (path, n))
        hbytes = f.read(n)
        if len(hbytes) != n:
            raise SafetensorsError("%s: truncated header (%d of %d bytes)" % (path, len(hbytes), n))
    try:
        header = json.loads(hbytes.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError("%s: header is not valid JSON: %s" % (path, e))
    if not isinstance(header, dict):
        raise SafetensorsError("%s: header is not a JSON object" % path)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise SafetensorsError("%s: __metadata__ must map strings to strings" % path)
    return header, meta, 8 + n


def read(path):
    """Read every tensor.  Returns (dict name -> numpy array, metadata dict).

    F32/F64/F16 arrays keep their dtype; BF16 becomes float32 (exact)."""
    header, meta, start = read_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    spans = []
    out = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError("%s: tensor %r: malformed entry %r" % (path, name, info))
        dtype = info["dtype"]
        if dtype not in _READ_DTYPES:
            raise SafetensorsError("%s: tensor %r: unsupported dtype %r" % (path, name, dtype))
        shape = info["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError("%s: tensor %r: bad shape %r" % (path, name, shape))
        offs = info["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)):
            raise SafetensorsError("%s: tensor %r: bad data_offsets %r" % (path, name, offs))
        begin, end = offs
        npdt, size = _READ_DTYPES[dtype]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if begin < 0 or end < begin or end > len(data):
            raise SafetensorsError("%s: tensor %r: data_offsets %r outside the %d-byte data region"
                                   % (path, name, offs, len(data)))
        if end - begin != count * size:
            raise SafetensorsError("%s: tensor %r: %d bytes for shape %r of %s (expected %d)"
                                   % (path, name, end - begin, shape, dtype, count * size))
        spans.append((begin, end, name))
        arr = np.frombuffer(data, dtype=npdt, count=count, offset=begin).reshape(shape)
        if dtype == "BF16":
            arr = (arr.astype(np.uint32).reshape(-1) << 16).view(np.float32).reshape(shape)
        else:
            arr = arr.astype(npdt.newbyteorder("="), copy=True)
        out[name] = arr
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise SafetensorsError("%s: tensor %r starts at %d, expected %d (hole or overlap)"
                                   % (path, name, begin, pos))
        pos = end
    if pos != len(data):
        raise SafetensorsError("%s: %d trailing bytes after the last tensor"
                               % (path, len(data) - pos))
    return out, meta


def write(path, tensors, metadata=None):
    """Write a dict name -> array as F32 safetensors, in the given key order."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError("metadata must map strings to strings: %r=%r" % (k, v))
        header["__metadata__"] = dict(metadata)
    blobs = []
    pos = 0
    for name, arr in tensors.items():
        a = np.ascontiguousarray(np.asarray(arr), dtype="<f4")
        if not np.all(np.isfinite(a)):
            raise SafetensorsError("tensor %r has non-finite values" % name)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)
