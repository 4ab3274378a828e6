"""Run dit pipelines from Python and read their frames back (the demo tests
in tests/demo use this).  Needs python3-gi."""

import time

import numpy as np
import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

import world  # noqa: E402

RGB = "video/x-raw,format=RGB,width=64,height=64"
APPSRC = 'appsrc name=in format=time caps="%s,framerate=%d/1"' % (RGB, world.FPS)

Gst.init(None)


def run(desc, feed=None, on_chunk=None, timeout=120):
    """Run a pipeline ending in `appsink name=out`; return its RGB frames
    uint8 [T, 64, 64, 3].  feed: frames to push into `appsrc name=in`;
    on_chunk(element, index): called from ditgenerate's (name=gen) src pad
    for every chunk it pushes."""
    pipe = Gst.parse_launch(desc)
    sink = pipe.get_by_name("out")
    if on_chunk:
        gen = pipe.get_by_name("gen")
        count = [0]

        def probe(pad, info):
            on_chunk(gen, count[0])
            count[0] += 1
            return Gst.PadProbeReturn.OK
        gen.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipe.set_state(Gst.State.PLAYING)
    if feed is not None:
        src = pipe.get_by_name("in")
        for i, f in enumerate(feed):
            buf = Gst.Buffer.new_wrapped(np.ascontiguousarray(f).tobytes())
            buf.pts = i * Gst.SECOND // world.FPS
            buf.duration = Gst.SECOND // world.FPS
            src.emit("push-buffer", buf)
        src.emit("end-of-stream")
    frames, bus, t0 = [], pipe.get_bus(), time.time()
    try:
        while True:
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg:
                err, dbg = msg.parse_error()
                raise RuntimeError("pipeline error: %s (%s)" % (err.message, dbg))
            sample = sink.emit("try-pull-sample", Gst.SECOND // 10)
            if sample is None:
                if sink.get_property("eos"):
                    break
                if time.time() - t0 > timeout:
                    raise RuntimeError("pipeline timed out after %d s" % timeout)
                continue
            buf = sample.get_buffer()
            ok, m = buf.map(Gst.MapFlags.READ)
            frames.append(np.frombuffer(m.data, np.uint8).reshape(64, 64, 3).copy())
            buf.unmap(m)
    finally:
        pipe.set_state(Gst.State.NULL)
    return np.stack(frames) if frames else np.zeros((0, 64, 64, 3), np.uint8)
