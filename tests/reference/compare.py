#!/usr/bin/python3
"""Compare two safetensors files tensor by tensor.

  compare.py A.safetensors B.safetensors --tol T [--key K ...]

B is the reference.  For every tensor present in both files (or only the keys
given with --key) prints "key rel_l2=... max_abs=...", where
rel_l2 = ||a - b||_2 / ||b||_2 computed in float64.  Exits 1 when a listed key
is missing from either file, when shapes differ, when a value is not finite or
when any rel_l2 exceeds T; exits 0 otherwise.  Without --key, keys present in
only one file are reported and also fail, so a tool that silently drops an
output cannot pass.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="file under test")
    ap.add_argument("b", help="reference file")
    ap.add_argument("--tol", type=float, required=True, help="largest accepted rel_l2")
    ap.add_argument("--key", action="append", default=[], help="compare only these keys")
    args = ap.parse_args(argv)

    try:
        a, _ = st_io.read(args.a)
        b, _ = st_io.read(args.b)
    except (OSError, st_io.SafetensorsError) as e:
        print("compare: %s" % e)
        return 1

    bad = False
    if args.key:
        keys = args.key
    else:
        keys = sorted(set(a) & set(b))
        for k in sorted(set(a) ^ set(b)):
            print("%s missing in %s" % (k, args.b if k in a else args.a))
            bad = True
        if not keys:
            print("compare: no common tensors")
            return 1
    for k in keys:
        if k not in a or k not in b:
            print("%s missing in %s" % (k, args.a if k not in a else args.b))
            bad = True
            continue
        x = np.asarray(a[k], dtype=np.float64)
        y = np.asarray(b[k], dtype=np.float64)
        if x.shape != y.shape:
            print("%s shape %s vs reference %s" % (k, list(x.shape), list(y.shape)))
            bad = True
            continue
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            print("%s has non-finite values" % k)
            bad = True
            continue
        diff = x - y
        ref = np.linalg.norm(y)
        err = np.linalg.norm(diff)
        rel = err / ref if ref > 0 else (0.0 if err == 0 else float("inf"))
        max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
        over = rel > args.tol
        print("%s rel_l2=%.3e max_abs=%.3e%s" % (k, rel, max_abs, "  FAIL" if over else ""))
        bad = bad or over
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
