/* The dit plugin: registers ditencode, ditgenerate and ditdecode. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstditdecode.h"
#include "gstditencode.h"
#include "gstditgenerate.h"

#define PACKAGE "gst-dit"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (ditencode, plugin);
  ret |= GST_ELEMENT_REGISTER (ditgenerate, plugin);
  ret |= GST_ELEMENT_REGISTER (ditdecode, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, dit,
    "Real-time causal video diffusion (Wan2.1 DiT) elements",
    plugin_init, "0.1.0", "LGPL", "gst-dit", "https://github.com/gst-dit")
