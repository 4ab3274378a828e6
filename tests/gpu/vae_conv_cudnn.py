#!/usr/bin/env python3
"""cuDNN (through PyTorch) on the VAE decoder's heaviest causal convs.

The comparison point for kernels/cuda/vae_conv_mma.cu: the same three
shapes as `DIT_TEST_CONV_BIG=1 test-cuda-vae` (3x3x3, 2 cached + T frames
in, T frames out, spatial padding 1, bf16), run with torch.nn.functional.conv3d
on channels-last-3d bf16 tensors with cudnn.benchmark on (cuDNN picks its
fastest algorithm per shape), timed with CUDA events over 50 launches after
10 warm-up launches.  Prints one JSON line per shape: ms and TFLOP/s
(2 * outputs * Cin * 27 flops).

Needs a CUDA GPU and PyTorch with cuDNN (the GPU hosts' python3); exits 77
without them.
"""

import json
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("SKIP: PyTorch is not installed")
    sys.exit(77)

# name, frames out, height, width, cin, cout (2 cached frames in front)
SHAPES = [
    ("320x576 96->96", 4, 320, 576, 96, 96),
    ("160x288 192->192", 4, 160, 288, 192, 192),
    ("80x144 384->384", 2, 80, 144, 384, 384),
]


def time_conv(t, h, w, cin, cout, iters=50, warmup=10):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(1, cin, t + 2, h, w, device="cuda", generator=g,
                    dtype=torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    wt = (torch.randn(cout, cin, 3, 3, 3, device="cuda", generator=g,
                      dtype=torch.bfloat16) * 0.05)
    wt = wt.contiguous(memory_format=torch.channels_last_3d)
    b = torch.zeros(cout, device="cuda", dtype=torch.bfloat16)
    for _ in range(warmup):
        y = F.conv3d(x, wt, b, padding=(0, 1, 1))
    assert tuple(y.shape) == (1, cout, t, h, w), y.shape
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        F.conv3d(x, wt, b, padding=(0, 1, 1))
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main():
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device")
        return 77
    if not torch.backends.cudnn.is_available():
        print("SKIP: PyTorch has no cuDNN")
        return 77
    torch.backends.cudnn.benchmark = True
    dev = torch.cuda.get_device_name(0)
    for name, t, h, w, cin, cout in SHAPES:
        ms = time_conv(t, h, w, cin, cout)
        flops = 2.0 * t * h * w * cout * cin * 27
        print(json.dumps({"conv": name, "backend": "cudnn",
                          "cudnn_version": torch.backends.cudnn.version(),
                          "torch": torch.__version__, "device": dev,
                          "ms": round(ms, 3),
                          "tflops": round(flops / ms / 1e9, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
