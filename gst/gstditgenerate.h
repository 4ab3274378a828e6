#ifndef __GST_DIT_GENERATE_H__
#define __GST_DIT_GENERATE_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_DIT_GENERATE (gst_dit_generate_get_type ())
G_DECLARE_FINAL_TYPE (GstDitGenerate, gst_dit_generate, GST, DIT_GENERATE,
    GstElement);

GST_ELEMENT_REGISTER_DECLARE (ditgenerate);

G_END_DECLS
#endif /* __GST_DIT_GENERATE_H__ */
