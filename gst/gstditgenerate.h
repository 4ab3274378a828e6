#ifndef __GST_DIT_GENERATE_H__
#define __GST_DIT_GENERATE_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_DIT_GENERATE (gst_dit_generate_get_type ())
G_DECLARE_FINAL_TYPE (GstDitGenerate, gst_dit_generate, GST, DIT_GENERATE,
    GstElement);

#define GST_TYPE_DIT_ANCHOR_MODE (gst_dit_anchor_mode_get_type ())
GType gst_dit_anchor_mode_get_type (void);

/* Which decoder makes the anchor path's frame (the re-encode is always the
 * full VAE's). */
typedef enum
{
  GST_DIT_ANCHOR_DECODER_FULL = 0,
  GST_DIT_ANCHOR_DECODER_TINY = 1,
} GstDitAnchorDecoder;

GST_ELEMENT_REGISTER_DECLARE (ditgenerate);

G_END_DECLS
#endif /* __GST_DIT_GENERATE_H__ */
