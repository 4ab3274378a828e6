#ifndef __GST_DIT_DECODE_H__
#define __GST_DIT_DECODE_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_DIT_DECODE (gst_dit_decode_get_type ())
G_DECLARE_FINAL_TYPE (GstDitDecode, gst_dit_decode, GST, DIT_DECODE,
    GstElement);

GST_ELEMENT_REGISTER_DECLARE (ditdecode);

G_END_DECLS
#endif /* __GST_DIT_DECODE_H__ */
