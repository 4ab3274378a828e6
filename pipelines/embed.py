#!/usr/bin/env python3
"""Run the gst-dit generation pipeline from Python through GObject
introspection (PyGObject's gi.repository.Gst): no extra bindings, the
elements are plain GStreamer elements.

  ditgenerate ! ditdecode ! videoconvert ! x264enc ! mp4mux ! filesink

Properties are set from Python, the prompt and seed can be changed while
the pipeline plays, and the generator's statistics are read back as
ordinary GObject properties.  Debian packages: python3-gi,
gir1.2-gstreamer-1.0, gstreamer1.0-plugins-base/-good/-ugly; the dit
plugin from this repository (GST_PLUGIN_PATH=build/gst when not installed).
"""
import argparse
import sys

try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst
except (ImportError, ValueError) as e:
    sys.exit(f"embed.py: PyGObject with GStreamer is needed "
             f"(Debian: python3-gi gir1.2-gstreamer-1.0): {e}")


def parse_args():
    p = argparse.ArgumentParser(
        description="Generate video with ditgenerate from Python and write "
        "an H.264 MP4.")
    p.add_argument("-o", "--output", default="embed.mp4",
                   help="output MP4 file (default embed.mp4)")
    p.add_argument("-n", "--chunks", type=int, default=4,
                   help="chunks to generate (default 4: 9 + 3x12 frames)")
    p.add_argument("-s", "--size", default="64x64",
                   help="frame size WxH, multiples of 16 (default 64x64)")
    p.add_argument("--model", default=None,
                   help="DiT preset or checkpoint (default tiny)")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--seed", type=int, default=42, help="initial seed")
    p.add_argument("--embeds", default=None,
                   help="prompt embeddings (safetensors) to switch to after "
                   "the first chunk, while playing")
    return p.parse_args()


def main():
    args = parse_args()
    try:
        width, height = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        print(f"embed.py: --size {args.size}: use WxH", file=sys.stderr)
        return 2
    Gst.init(None)
    if Gst.ElementFactory.find("ditgenerate") is None:
        print("embed.py: the dit plugin is not found; set GST_PLUGIN_PATH "
              "to the build's gst/ directory", file=sys.stderr)
        return 1

    pipeline = Gst.Pipeline.new("embed")
    generate = Gst.ElementFactory.make("ditgenerate", "generate")
    decode = Gst.ElementFactory.make("ditdecode", "decode")
    size = Gst.ElementFactory.make("capsfilter", "size")
    convert = Gst.ElementFactory.make("videoconvert", None)
    encode = Gst.ElementFactory.make("x264enc", None)
    mux = Gst.ElementFactory.make("mp4mux", None)
    sink = Gst.ElementFactory.make("filesink", None)
    elements = [generate, decode, size, convert, encode, mux, sink]
    if any(e is None for e in elements):
        print("embed.py: missing GStreamer elements (videoconvert, x264enc, "
              "mp4mux: gstreamer1.0-plugins-base/-good/-ugly)",
              file=sys.stderr)
        return 1

    generate.set_property("num-chunks", args.chunks)
    generate.set_property("seed", args.seed)
    generate.set_property("device", args.device)
    if args.model:
        generate.set_property("model", args.model)
    decode.set_property("device", args.device)
    size.set_property("caps", Gst.Caps.from_string(
        f"video/x-raw,width={width},height={height}"))
    sink.set_property("location", args.output)
    for e in elements:
        pipeline.add(e)
    for a, b in zip(elements, elements[1:]):
        if not a.link(b):
            print(f"embed.py: cannot link {a.get_name()} to {b.get_name()} "
                  f"(size {args.size} must be multiples of 16)",
                  file=sys.stderr)
            return 1

    # Read each chunk's generator stats as it leaves ditgenerate; change
    # the prompt after the first chunk when --embeds is given (a property
    # that may change while PLAYING).
    def on_chunk(pad, info):
        chunks = generate.get_property("chunks")
        print(f"chunk {chunks}: {generate.get_property('chunk-ms'):.0f} ms, "
              f"{generate.get_property('fps'):.1f} fps")
        if args.embeds and chunks == 1:
            generate.set_property("prompt-embeds", args.embeds)
        return Gst.PadProbeReturn.OK

    generate.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER,
                                             on_chunk)

    loop = GLib.MainLoop()
    status = {"code": 0}

    def on_message(bus, msg):
        if msg.type == Gst.MessageType.EOS:
            loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"embed.py: error from {msg.src.get_name()}: "
                  f"{err.message}", file=sys.stderr)
            status["code"] = 1
            loop.quit()
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print("embed.py: the pipeline did not start", file=sys.stderr)
        return 1
    try:
        loop.run()
    except KeyboardInterrupt:
        pipeline.send_event(Gst.Event.new_eos())
    pipeline.set_state(Gst.State.NULL)
    if status["code"] == 0:
        print(f"wrote {args.output}")
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
