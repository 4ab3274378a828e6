#!/bin/sh
# The demo model's trainable PyTorch modules (tools/train/models.py: DiT with
# context and kv-bias, streaming VAE, umT5) against the float64 oracles of
# tests/reference on random weights (tools/train/check_models.py, about 10 s
# on one core).  Needs no trained weights.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
if ! $py -c 'import torch, numpy' 2>/dev/null; then
  echo "SKIP: $py has no torch/numpy (install python3-torch)"
  exit 77
fi
exec $py "$here/../../tools/train/check_models.py"
