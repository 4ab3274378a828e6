#ifndef __GST_DIT_ENCODE_H__
#define __GST_DIT_ENCODE_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_DIT_ENCODE (gst_dit_encode_get_type ())
G_DECLARE_FINAL_TYPE (GstDitEncode, gst_dit_encode, GST, DIT_ENCODE,
    GstElement);

GST_ELEMENT_REGISTER_DECLARE (ditencode);

G_END_DECLS
#endif /* __GST_DIT_ENCODE_H__ */
