#!/usr/bin/env python3
"""PyTorch's GEMMs at the 14B DiT's linear shapes (M = 2160 tokens of a
3-frame chunk at 576x320): bf16 `x @ w.t()` and FP8 e4m3
`torch._scaled_mm` with a per-tensor scale and with row-wise scales (per
token x per output channel), bf16 out, no bias, no epilogue.  The peer of
dit-fp8-bench's per-shape table (docs/performance.md): what cuBLAS and
CUTLASS reach on the same device.  Median of 30 calls after 5 warm-up
calls, CUDA events; prints one line per figure, then one JSON line.

    python3 tests/gpu/torch_gemm_shapes.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_forward_bench import time_cuda  # noqa: E402

SHAPES = [("qkvo", 2160, 5120, 5120), ("ffn_up", 2160, 13824, 5120),
          ("ffn_down", 2160, 5120, 13824)]


def median_ms(fn, n=30):
    times = sorted(time_cuda(fn, 5, n))
    return times[len(times) // 2]


def main():
    torch.manual_seed(0)
    res = {"gpu": torch.cuda.get_device_name()}
    for name, M, N, K in SHAPES:
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        flop = 2.0 * M * N * K
        x8, w8 = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
        one = torch.ones((), device="cuda")
        rows = torch.ones(M, 1, device="cuda")
        cols = torch.ones(1, N, device="cuda")
        runs = {
            "bf16": lambda: x @ w.t(),
            "fp8_tensor": lambda: torch._scaled_mm(
                x8, w8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
            "fp8_row": lambda: torch._scaled_mm(
                x8, w8.t(), scale_a=rows, scale_b=cols, out_dtype=torch.bfloat16),
        }
        for kind, fn in runs.items():
            try:
                ms = median_ms(fn)
                res["%s_%s" % (name, kind)] = {"ms": ms, "tflops": flop / ms * 1e-9}
                print("%-8s %5d x %5d x %5d %-10s %7.3f ms %6.0f TF/s"
                      % (name, M, N, K, kind, ms, flop / ms * 1e-9))
            except RuntimeError as e:
                res["%s_%s" % (name, kind)] = {"error": str(e)[:200]}
                print("%-8s %-10s unavailable: %s" % (name, kind, str(e)[:120]))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
