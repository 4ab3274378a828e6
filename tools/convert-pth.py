#!/usr/bin/python3
"""Convert a torch .pth/.pt checkpoint to safetensors, keeping the key names.

gst-dit reads only safetensors; the Wan2.1 VAE (Wan2.1_VAE.pth), the umT5
encoder (models_t5_umt5-xxl-enc-bf16.pth), Self-Forcing's generator
(self_forcing_dmd.pt) and the TAEHV tiny autoencoders (taew2_1.pth,
lightx2v's lighttaew2_1.pth) ship as torch pickles, so they are converted
once with this script (docs/converting-checkpoints.md).

TAEHV state dicts (keys encoder.17.* and decoder.22.*) get two extras:
a TGrow weight with more rows than the Wan 2.1 decoder uses (time
upscale (False, True, True)) is cut to its last rows, as taehv.py's
patch_tgrow_layers does when it loads one; and the metadata records the
latent space the decoder takes ("latents": "raw" for LightTAE, whose
decoder takes Wan's un-normalised latents, else "normalised"), from
--latents or, by default, from the input's file name (lighttae*).

Accepted inputs: a plain state dict (name -> tensor), or a dict holding one
under 'generator_ema', 'generator', 'state_dict' or 'model' (spec §3.5); pick
one explicitly with --key.  The file is written by hand (8-byte little-endian
header length, JSON header padded with spaces to a multiple of 8, raw
little-endian data) so no extra package is needed.  Tensors are converted and
written one at a time and dropped from the loaded dict afterwards, so peak
memory is the loaded checkpoint plus one converted tensor.
"""

import argparse
import importlib.util
import json
import os
import struct
import sys

CONTAINER_KEYS = ("generator_ema", "generator", "state_dict", "model")
TAEHV_GROW = ((7, 1), (13, 2), (19, 2))   # decoder TGrow index, time stride
CHUNK_BYTES = 64 << 20


class ConvertError(Exception):
  pass


def dtype_table(torch):
  return {
      torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
      torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
      torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
  }


def pick_state_dict(torch, obj, key, path):
  if not isinstance(obj, dict):
    raise ConvertError("%s: top-level object is a %s, not a dict" % (path, type(obj).__name__))
  if key:
    if key not in obj:
      raise ConvertError("%s: no entry '%s' (top-level keys: %s)"
                         % (path, key, ", ".join(sorted(map(str, obj))[:10])))
    sd = obj[key]
    chosen = key
  elif obj and all(torch.is_tensor(v) for v in obj.values()):
    return obj, None
  else:
    chosen = next((k for k in CONTAINER_KEYS if k in obj and isinstance(obj[k], dict)), None)
    if chosen is None:
      raise ConvertError("%s: neither a state dict nor a dict with %s"
                         % (path, "/".join(CONTAINER_KEYS)))
    sd = obj[chosen]
  if not isinstance(sd, dict):
    raise ConvertError("%s: entry '%s' is a %s, not a state dict" % (path, chosen, type(sd).__name__))
  return sd, chosen


def is_taehv(sd):
  return "encoder.17.weight" in sd and "decoder.22.weight" in sd


def patch_taehv(sd, path):
  """Cut oversized TGrow weights to their last rows (taehv.py's
  patch_tgrow_layers).  Returns the names cut."""
  cut = []
  for index, stride in TAEHV_GROW:
    k = "decoder.%d.conv.weight" % index
    t = sd.get(k)
    if t is None or t.dim() != 4:
      raise ConvertError("%s: TAEHV state dict without a 4-D %s" % (path, k))
    rows = t.shape[1] * stride
    if t.shape[0] > rows:
      sd[k] = t[-rows:]
      cut.append("%s [%d -> %d rows]" % (k, t.shape[0], rows))
    elif t.shape[0] < rows:
      raise ConvertError("%s: %s has %d rows, the Wan 2.1 decoder needs %d"
                         % (path, k, t.shape[0], rows))
  return cut


def target_dtype(torch, t, mode):
  if mode == "keep" or not t.is_floating_point():
    return t.dtype
  return torch.float32 if mode == "f32" else torch.bfloat16


def write_tensor_bytes(torch, f, t):
  """Write t's raw little-endian bytes in chunks of at most CHUNK_BYTES."""
  t = t.contiguous().reshape(-1)
  if t.dtype == torch.bfloat16:
    t = t.view(torch.int16)        # numpy has no bfloat16; the bits are the data
  elif t.dtype == torch.bool:
    t = t.to(torch.uint8)
  per = max(1, CHUNK_BYTES // max(1, t.element_size()))
  for start in range(0, t.numel(), per):
    f.write(memoryview(t[start:start + per].numpy()).cast("B"))


def convert(args):
  import torch
  if sys.byteorder != "little":
    raise ConvertError("big-endian hosts are not supported")
  names = dtype_table(torch)
  try:
    # weights_only refuses pickled code objects; checkpoints that also pickle
    # training objects need --full-pickle (only for files you trust).
    obj = torch.load(args.input, map_location="cpu", weights_only=not args.full_pickle)
  except Exception as e:  # torch raises many types for a bad file
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    hint = "" if args.full_pickle else " (if the file is trusted and holds more than tensors, retry with --full-pickle)"
    raise ConvertError("%s: cannot load: %s%s" % (args.input, msg, hint))
  sd, chosen = pick_state_dict(torch, obj, args.key, args.input)
  if chosen and not args.key:
    print("convert-pth: using the '%s' entry" % chosen, file=sys.stderr)
  if sd is not obj:
    obj = None                      # keep only the chosen state dict alive
  metadata = {"format": "pt", "source": os.path.basename(args.input)}
  if is_taehv(sd):
    for note in patch_taehv(sd, args.input):
      print("convert-pth: TAEHV: kept the last-timestep rows of %s" % note, file=sys.stderr)
    latents = args.latents or ("raw" if "lighttae" in os.path.basename(args.input).lower()
                               else "normalised")
    metadata.update({"kind": "taehv", "latents": latents})
    print("convert-pth: TAEHV checkpoint; its decoder takes %s latents" % latents,
          file=sys.stderr)
  elif args.latents:
    raise ConvertError("%s: --latents applies to TAEHV checkpoints only" % args.input)

  plan = []                         # (out name, in name, dtype, shape)
  seen = set()
  skipped = 0
  for name, t in sd.items():
    if not torch.is_tensor(t):
      skipped += 1
      continue
    out = name
    if args.strip_prefix and out.startswith(args.strip_prefix):
      out = out[len(args.strip_prefix):]
    if out in seen:
      raise ConvertError("%s: two tensors map to '%s' after stripping '%s'"
                         % (args.input, out, args.strip_prefix))
    seen.add(out)
    dt = target_dtype(torch, t, args.dtype)
    if dt not in names:
      raise ConvertError("%s: tensor '%s' has unsupported dtype %s" % (args.input, name, t.dtype))
    plan.append((out, name, dt, list(t.shape)))
  if not plan:
    raise ConvertError("%s: no tensors found" % args.input)
  if skipped:
    print("convert-pth: skipped %d non-tensor entries" % skipped, file=sys.stderr)

  header = {"__metadata__": metadata}
  pos = 0
  for out, _, dt, shape in plan:
    n = 1
    for d in shape:
      n *= d
    size = n * torch.tensor([], dtype=dt).element_size()
    header[out] = {"dtype": names[dt], "shape": shape, "data_offsets": [pos, pos + size]}
    pos += size
  hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
  hbytes += b" " * ((8 - len(hbytes) % 8) % 8)

  tmp = args.output + ".part"
  try:
    with open(tmp, "wb") as f:
      f.write(struct.pack("<Q", len(hbytes)))
      f.write(hbytes)
      for out, name, dt, _ in plan:
        t = sd.pop(name)            # drop the loaded copy once written
        write_tensor_bytes(torch, f, t.to(dt) if t.dtype != dt else t)
        del t
    os.replace(tmp, args.output)
  except OSError as e:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise ConvertError("%s: %s" % (args.output, e.strerror or e))
  print("convert-pth: wrote %d tensors, %.1f MB to %s"
        % (len(plan), (8 + len(hbytes) + pos) / 1e6, args.output), file=sys.stderr)
  return 0


def main(argv=None):
  ap = argparse.ArgumentParser(
      description="Convert a torch .pth/.pt checkpoint (state dict, or a dict with "
                  "generator_ema/generator/state_dict/model) to safetensors, same key names.")
  ap.add_argument("input", help=".pth/.pt file")
  ap.add_argument("output", help="safetensors file to write")
  ap.add_argument("--key", help="take the state dict from this top-level entry "
                  "(default: the first of %s present)" % ", ".join(CONTAINER_KEYS))
  ap.add_argument("--strip-prefix", default="", metavar="PREFIX",
                  help="remove PREFIX from key names that start with it (e.g. 'model.')")
  ap.add_argument("--full-pickle", action="store_true",
                  help="unpickle arbitrary objects (runs code from the file: trusted files only)")
  ap.add_argument("--dtype", choices=("keep", "f32", "bf16"), default="keep",
                  help="floating-point dtype to write (integer tensors are kept)")
  ap.add_argument("--latents", choices=("raw", "normalised"),
                  help="TAEHV only: the latents its decoder takes (default: raw when "
                  "the input's name starts like lighttae, else normalised)")
  args = ap.parse_args(argv)
  if importlib.util.find_spec("torch") is None:
    print("convert-pth: python3 has no torch (install python3-torch)", file=sys.stderr)
    return 1
  try:
    return convert(args)
  except ConvertError as e:
    print("convert-pth: %s" % e, file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
