/* ditencode / ditdecode with CUDA memory (suite gpu), against the same
 * elements in system memory on the same CUDA backend:
 *  1. videotestsrc ! cudaupload ! ditencode ! ditdecode ! cudadownload
 *     gives the frames of the pipeline without cudaupload/cudadownload,
 *     within 1 code value (the two input paths convert bytes to floats on
 *     the device and on the host; both read the same bytes);
 *  2. ditdecode forced to video/x-raw(memory:CUDAMemory),format=NV12, then
 *     cudadownload, gives exactly the bytes of system-memory NV12 output
 *     (the tensor -> bytes conversion is bit-exact between the backends);
 *  3. ditdecode, cudaupload and cudadownload answer "gst.cuda.context"
 *     queries with the session's context, and its CUcontext is the device's
 *     primary context (retained here independently through libcuda);
 *  4. ditencode ! ditgenerate ! ditdecode negotiate latents in device
 *     memory (memory:DitDevice) on both links and give exactly the frames
 *     of the same pipeline with system-memory latents forced by capsfilters;
 *  5. ditgenerate hands a peer that takes anything (appsink) system memory,
 *     and device latents forced to appsink are read there through a map
 *     (the download) with exactly the bytes of the system-memory chunks;
 *  6. latents stay on the device: ditgenerate's host-copies for each chunk
 *     (read when the chunk leaves) is 0 in process; on a one-rank CUDA mesh
 *     sharing the GPU with Stage 0 (the world comm then runs on the CPU
 *     comm, which carries host memory) it is 1 for chunk 0 (x0 up) and 2
 *     after (the context down, x0 up); the anchor path and the output add
 *     none.  The mesh half needs $GST_DIT_WORKER.
 * Tiny VAE, 64x64 frames.  Exit 77 without a CUDA device, without nvcodec's
 * cudaupload, or in a build without the CUDA backend and gstreamer-cuda. */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <stdio.h>
#include <stdlib.h>

#include "dit_backend.h"
#include "../common/cuda_skip.h"

#ifdef DIT_HAVE_GST_CUDA
#include <dlfcn.h>
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudaloader.h>

#include "dit_check_presets.h"

#define SRC "videotestsrc num-buffers=21 pattern=ball ! " \
  "video/x-raw,format=RGBA,width=64,height=64,framerate=16/1"
#define FRAMES 21

/* Samples of appsink "s"; with `pads`, the features of the caps each
 * named pad ("element.pad") negotiated, as strings, into `features`. */
static GPtrArray *
run_frames_full (const gchar * desc, const gchar * const *pads,
    gchar ** features)
{
  GError *err = NULL;
  GstElement *p = gst_parse_launch (desc, &err);
  GstElement *s;
  GstBus *bus;
  GstMessage *m;
  GPtrArray *frames =
      g_ptr_array_new_with_free_func ((GDestroyNotify) gst_sample_unref);

  fail_unless (p != NULL && err == NULL, "%s: %s", desc,
      err ? err->message : "no pipeline");
  s = gst_bin_get_by_name (GST_BIN (p), "s");
  bus = gst_element_get_bus (p);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE, "%s: state change failed", desc);
  for (;;) {
    GstSample *smp = NULL;
    g_signal_emit_by_name (s, "pull-sample", &smp);
    if (!smp)
      break;
    g_ptr_array_add (frames, smp);
  }
  for (guint i = 0; pads && pads[i]; i++) {
    gchar **parts = g_strsplit (pads[i], ".", 2);
    GstElement *e = gst_bin_get_by_name (GST_BIN (p), parts[0]);
    GstPad *pad = e ? gst_element_get_static_pad (e, parts[1]) : NULL;
    GstCaps *caps = pad ? gst_pad_get_current_caps (pad) : NULL;
    fail_unless (caps != NULL, "%s: no caps on %s", desc, pads[i]);
    features[i] = gst_caps_features_to_string (gst_caps_get_features (caps,
            0));
    gst_caps_unref (caps);
    gst_object_unref (pad);
    gst_object_unref (e);
    g_strfreev (parts);
  }
  m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (m) {
    GError *e = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error (m, &e, &dbg);
    ck_abort_msg ("%s: %s (%s)", desc, e->message, dbg ? dbg : "");
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (s);
  gst_object_unref (p);
  return frames;
}

static GPtrArray *
run_frames (const gchar * desc)
{
  return run_frames_full (desc, NULL, NULL);
}

/* Byte-wise comparison of the visible rows of every plane. */
static void
compare_frames (GPtrArray * a, GPtrArray * b, gint limit, const gchar * what)
{
  gint max_diff = 0;
  gsize differ = 0;

  fail_unless_equals_int (a->len, FRAMES);
  fail_unless_equals_int (b->len, FRAMES);
  for (guint i = 0; i < a->len; i++) {
    GstVideoInfo ia, ib;
    GstVideoFrame fa, fb;
    fail_unless (gst_video_info_from_caps (&ia,
            gst_sample_get_caps (g_ptr_array_index (a, i))));
    fail_unless (gst_video_info_from_caps (&ib,
            gst_sample_get_caps (g_ptr_array_index (b, i))));
    fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&ia),
        GST_VIDEO_INFO_FORMAT (&ib));
    fail_unless (gst_video_frame_map (&fa, &ia,
            gst_sample_get_buffer (g_ptr_array_index (a, i)), GST_MAP_READ));
    fail_unless (gst_video_frame_map (&fb, &ib,
            gst_sample_get_buffer (g_ptr_array_index (b, i)), GST_MAP_READ));
    for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES (&fa); p++) {
      gint comp[GST_VIDEO_MAX_COMPONENTS];
      gint rows, row_bytes;
      gst_video_format_info_component (fa.info.finfo, p, comp);
      rows = GST_VIDEO_FRAME_COMP_HEIGHT (&fa, comp[0]);
      row_bytes = GST_VIDEO_FRAME_COMP_WIDTH (&fa, comp[0])
          * GST_VIDEO_FRAME_COMP_PSTRIDE (&fa, comp[0]);
      for (gint y = 0; y < rows; y++) {
        const guint8 *ra = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fa, p)
            + y * GST_VIDEO_FRAME_PLANE_STRIDE (&fa, p);
        const guint8 *rb = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fb, p)
            + y * GST_VIDEO_FRAME_PLANE_STRIDE (&fb, p);
        for (gint x = 0; x < row_bytes; x++) {
          gint d = ABS ((gint) ra[x] - (gint) rb[x]);
          max_diff = MAX (max_diff, d);
          differ += d != 0;
        }
      }
    }
    gst_video_frame_unmap (&fa);
    gst_video_frame_unmap (&fb);
  }
  g_print ("%s: %u frames, max |diff| %d code values (limit %d), %"
      G_GSIZE_FORMAT " bytes differ  %s\n", what, a->len, max_diff, limit,
      differ, max_diff <= limit ? "ok" : "FAIL");
  fail_unless (max_diff <= limit, "%s: max |diff| %d > %d", what, max_diff,
      limit);
}

/* The frames of a pipeline through system memory against those of the
 * same pipeline through CUDA memory (compare_frames). */
static void
compare_runs (const gchar * sys_desc, const gchar * cuda_desc, gint limit,
    const gchar * what)
{
  GPtrArray *sys = run_frames (sys_desc);
  GPtrArray *cuda = run_frames (cuda_desc);

  compare_frames (sys, cuda, limit, what);
  g_ptr_array_unref (sys);
  g_ptr_array_unref (cuda);
}

GST_START_TEST (test_upload_download_frames)
{
  compare_runs (SRC " ! ditencode device=cuda:0 ! "
      "ditdecode device=cuda:0 ! video/x-raw,format=RGBA ! "
      "appsink name=s sync=false",
      SRC " ! cudaupload ! "
      "video/x-raw(memory:CUDAMemory) ! ditencode device=cuda:0 ! "
      "ditdecode device=cuda:0 ! video/x-raw(memory:CUDAMemory),format=RGBA ! "
      "cudadownload ! video/x-raw,format=RGBA ! appsink name=s sync=false",
      1, "check 1 cudaupload/cudadownload vs system memory (RGBA)");
}

GST_END_TEST;

GST_START_TEST (test_cuda_nv12_output)
{
  compare_runs (SRC " ! ditencode device=cuda:0 ! "
      "ditdecode device=cuda:0 ! video/x-raw,format=NV12 ! "
      "appsink name=s sync=false",
      SRC " ! ditencode device=cuda:0 ! "
      "ditdecode device=cuda:0 ! video/x-raw(memory:CUDAMemory),format=NV12 ! "
      "cudadownload ! video/x-raw,format=NV12 ! appsink name=s sync=false",
      0, "check 2 CUDAMemory NV12 + cudadownload vs system NV12");
}

GST_END_TEST;

#define V2V(caps) SRC " ! ditencode device=cuda:0 name=e ! " caps \
  "ditgenerate device=cuda:0 strength=0.6 name=g ! " caps \
  "ditdecode device=cuda:0 ! video/x-raw,format=RGBA ! " \
  "appsink name=s sync=false"

GST_START_TEST (test_device_latents)
{
  const gchar *const pads[] = { "e.src", "g.src", NULL };
  gchar *dev_f[2], *sys_f[2];
  GPtrArray *dev = run_frames_full (V2V (""), pads, dev_f);
  GPtrArray *sys = run_frames_full (V2V ("video/x-dit-latent ! "), pads,
      sys_f);

  g_print ("check 4 latent memory: ditencode -> %s, ditgenerate -> %s "
      "(forced system: %s, %s)\n", dev_f[0], dev_f[1], sys_f[0], sys_f[1]);
  for (gint i = 0; i < 2; i++) {
    fail_unless (g_str_equal (dev_f[i], "memory:DitDevice"), "link %d: %s",
        i, dev_f[i]);
    fail_unless (g_str_equal (sys_f[i], "memory:SystemMemory"), "link %d: %s",
        i, sys_f[i]);
    g_free (dev_f[i]);
    g_free (sys_f[i]);
  }
  compare_frames (sys, dev, 0,
      "check 4 device latents between the elements vs system latents");
  g_ptr_array_unref (sys);
  g_ptr_array_unref (dev);
}

GST_END_TEST;

/* The chunks appsink got: bytes through a read map, and whether each was
 * device memory. */
static GByteArray *
chunk_bytes (GPtrArray * samples, gint * device_chunks)
{
  GByteArray *all = g_byte_array_new ();

  *device_chunks = 0;
  for (guint i = 0; i < samples->len; i++) {
    GstBuffer *b = gst_sample_get_buffer (g_ptr_array_index (samples, i));
    GstMapInfo map;
    *device_chunks += gst_memory_is_type (gst_buffer_peek_memory (b, 0),
        "DitDeviceMemory");
    fail_unless (gst_buffer_map (b, &map, GST_MAP_READ));
    g_byte_array_append (all, map.data, map.size);
    gst_buffer_unmap (b, &map);
  }
  return all;
}

GST_START_TEST (test_device_latents_to_host)
{
  GPtrArray *sys = run_frames ("ditgenerate device=cuda:0 num-chunks=3 ! "
      "appsink name=s sync=false");
  GPtrArray *dev = run_frames ("ditgenerate device=cuda:0 num-chunks=3 ! "
      "video/x-dit-latent(memory:DitDevice) ! appsink name=s sync=false");
  gint sys_dev, dev_dev;
  GByteArray *a = chunk_bytes (sys, &sys_dev), *b = chunk_bytes (dev, &dev_dev);
  gsize differ = 0;

  fail_unless_equals_int (sys->len, 3);
  fail_unless_equals_int (dev->len, 3);
  fail_unless_equals_int (a->len, b->len);
  for (guint i = 0; i < a->len; i++)
    differ += a->data[i] != b->data[i];
  g_print ("check 5 appsink (takes anything): %d of 3 chunks in device "
      "memory; forced device memory: %d of 3, read through a map, %"
      G_GSIZE_FORMAT " of %u bytes differ from the system chunks  %s\n",
      sys_dev, dev_dev, differ, a->len,
      sys_dev == 0 && dev_dev == 3 && differ == 0 ? "ok" : "FAIL");
  fail_unless_equals_int (sys_dev, 0);
  fail_unless_equals_int (dev_dev, 3);
  fail_unless (differ == 0, "%" G_GSIZE_FORMAT " bytes differ", differ);
  g_byte_array_unref (a);
  g_byte_array_unref (b);
  g_ptr_array_unref (sys);
  g_ptr_array_unref (dev);
}

GST_END_TEST;

static GstPadProbeReturn
record_copies (GstPad * pad, GstPadProbeInfo * info, gpointer user)
{
  GArray *copies = user;
  GstElement *el = GST_ELEMENT (gst_pad_get_parent (pad));
  guint n = 0;

  g_object_get (el, "host-copies", &n, NULL);
  g_array_append_val (copies, n);
  gst_object_unref (el);
  return GST_PAD_PROBE_OK;
}

/* host-copies of each chunk ditgenerate "g" of `desc` pushed. */
static GArray *
run_copies (const gchar * desc)
{
  GError *err = NULL;
  GstElement *p = gst_parse_launch (desc, &err), *g;
  GArray *copies = g_array_new (FALSE, FALSE, sizeof (guint));
  GstBus *bus;
  GstMessage *m;
  GstPad *pad;

  fail_unless (p != NULL && err == NULL, "%s: %s", desc,
      err ? err->message : "no pipeline");
  g = gst_bin_get_by_name (GST_BIN (p), "g");
  pad = gst_element_get_static_pad (g, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, record_copies, copies,
      NULL);
  gst_object_unref (pad);
  bus = gst_element_get_bus (p);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE, "%s: state change failed", desc);
  m = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS, "%s: no EOS",
      desc);
  gst_message_unref (m);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (g);
  gst_object_unref (p);
  return copies;
}

#define COPIES_TAIL "! video/x-dit-latent(memory:DitDevice) ! queue ! " \
  "ditdecode device=cuda:0 ! fakesink sync=false"

GST_START_TEST (test_host_copies)
{
  GArray *local = run_copies ("ditgenerate name=g device=cuda:0 num-chunks=4 "
      COPIES_TAIL);
  const gchar *worker = g_getenv ("GST_DIT_WORKER");

  fail_unless_equals_int (local->len, 4);
  for (guint i = 0; i < local->len; i++) {
    g_print ("check 6 in process, chunk %u: %u host copies\n", i,
        g_array_index (local, guint, i));
    fail_unless_equals_int (g_array_index (local, guint, i), 0);
  }
  g_array_unref (local);
  if (!worker || !*worker) {
    g_print ("check 6 mesh: skipped (GST_DIT_WORKER not set)\n");
    return;
  }
  GArray *mesh = run_copies ("ditgenerate name=g device=cuda:0 num-chunks=4 "
      "mesh-devices=0 mesh-backend=cuda " COPIES_TAIL);
  fail_unless_equals_int (mesh->len, 4);
  for (guint i = 0; i < mesh->len; i++) {
    g_print ("check 6 one-rank mesh on the same GPU (CPU-comm data plane), "
        "chunk %u: %u host copies\n", i, g_array_index (mesh, guint, i));
    fail_unless_equals_int (g_array_index (mesh, guint, i), i == 0 ? 1 : 2);
  }
  g_array_unref (mesh);
}

GST_END_TEST;

/* The GstCudaContext a pad's CONTEXT query gives (transfer full) or NULL. */
static GstCudaContext *
query_cuda_context (GstPad * pad)
{
  GstQuery *q = gst_query_new_context (GST_CUDA_CONTEXT_TYPE);
  GstCudaContext *cc = NULL;

  if (gst_pad_query (pad, q)) {
    GstContext *ctx = NULL;
    gst_query_parse_context (q, &ctx);
    if (ctx)
      gst_structure_get (gst_context_get_structure (ctx),
          GST_CUDA_CONTEXT_TYPE, GST_TYPE_CUDA_CONTEXT, &cc, NULL);
  }
  gst_query_unref (q);
  return cc;
}

/* The session's own context, through its "dit.session" GstContext. */
static GstCudaContext *
session_cuda_context (GstPad * pad)
{
  GstQuery *q = gst_query_new_context ("dit.session");
  GstCudaContext *cc = NULL;

  if (gst_pad_query (pad, q)) {
    GstContext *ctx = NULL;
    const GValue *v;
    gst_query_parse_context (q, &ctx);
    v = ctx ? gst_structure_get_value (gst_context_get_structure (ctx),
        "dit-session") : NULL;
    if (v && g_value_get_object (v))
      g_object_get (g_value_get_object (v), "cuda-context", &cc, NULL);
  }
  gst_query_unref (q);
  return cc;
}

static gpointer
primary_context (void)
{
  typedef CUresult (*retain_fn) (CUcontext *, CUdevice);
  typedef CUresult (*release_fn) (CUdevice);
  void *lib = dlopen ("libcuda.so.1", RTLD_LAZY);
  retain_fn retain;
  release_fn release;
  CUcontext ctx = NULL;

  fail_unless (lib != NULL);
  *(void **) (&retain) = dlsym (lib, "cuDevicePrimaryCtxRetain");
  *(void **) (&release) = dlsym (lib, "cuDevicePrimaryCtxRelease_v2");
  fail_unless (retain && release);
  fail_unless (retain (&ctx, 0) == CUDA_SUCCESS);
  release (0);
  return ctx;
}

GST_START_TEST (test_shared_context)
{
  GstElement *p = gst_parse_launch ("videotestsrc num-buffers=9 ! "
      "video/x-raw,format=NV12,width=64,height=64,framerate=16/1 ! "
      "cudaupload name=up ! video/x-raw(memory:CUDAMemory) ! "
      "ditencode device=cuda:0 ! ditdecode name=dec device=cuda:0 ! "
      "video/x-raw(memory:CUDAMemory) ! cudadownload name=down ! "
      "fakesink", NULL);
  GstElement *up = gst_bin_get_by_name (GST_BIN (p), "up");
  GstElement *dec = gst_bin_get_by_name (GST_BIN (p), "dec");
  GstElement *down = gst_bin_get_by_name (GST_BIN (p), "down");
  GstPad *up_src = gst_element_get_static_pad (up, "src");
  GstPad *dec_src = gst_element_get_static_pad (dec, "src");
  GstPad *down_sink = gst_element_get_static_pad (down, "sink");
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *m;
  GstCudaContext *c_dec, *c_down, *c_up, *c_session;
  gpointer primary;

  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  m = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS,
      "the pipeline did not reach EOS");
  gst_message_unref (m);

  c_dec = query_cuda_context (dec_src);
  c_down = query_cuda_context (down_sink);
  c_up = query_cuda_context (up_src);
  c_session = session_cuda_context (dec_src);
  primary = primary_context ();
  fail_unless (c_dec && c_down && c_up && c_session);
  g_print ("check 3 shared context: primary %p, session %p, ditdecode %p, "
      "cudadownload %p, cudaupload %p  %s\n", primary,
      gst_cuda_context_get_handle (c_session),
      gst_cuda_context_get_handle (c_dec), gst_cuda_context_get_handle (c_down),
      gst_cuda_context_get_handle (c_up),
      gst_cuda_context_get_handle (c_session) == primary
      && gst_cuda_context_get_handle (c_dec) == primary
      && gst_cuda_context_get_handle (c_down) == primary
      && gst_cuda_context_get_handle (c_up) == primary ? "ok" : "FAIL");
  fail_unless (gst_cuda_context_get_handle (c_session) == primary,
      "the session does not wrap the primary context");
  fail_unless (c_dec == c_session, "ditdecode answers with another object");
  fail_unless (gst_cuda_context_get_handle (c_down) == primary,
      "cudadownload runs in another CUDA context");
  fail_unless (gst_cuda_context_get_handle (c_up) == primary,
      "cudaupload runs in another CUDA context");

  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (c_dec);
  gst_object_unref (c_down);
  gst_object_unref (c_up);
  gst_object_unref (c_session);
  gst_object_unref (up_src);
  gst_object_unref (dec_src);
  gst_object_unref (down_sink);
  gst_object_unref (up);
  gst_object_unref (dec);
  gst_object_unref (down);
  gst_object_unref (bus);
  gst_object_unref (p);
}

GST_END_TEST;

static Suite *
cuda_elements_suite (void)
{
  Suite *s = suite_create ("cuda-elements");
  TCase *tc = tcase_create ("cuda");

  dit_check_use_presets (NULL);
  tcase_set_timeout (tc, 240);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_upload_download_frames);
  tcase_add_test (tc, test_cuda_nv12_output);
  tcase_add_test (tc, test_shared_context);
  tcase_add_test (tc, test_device_latents);
  tcase_add_test (tc, test_device_latents_to_host);
  tcase_add_test (tc, test_host_copies);
  return s;
}
#endif

int
main (int argc, char **argv)
{
#ifdef DIT_HAVE_GST_CUDA
  GstElementFactory *f;

  gst_check_init (&argc, &argv);
  dit_backend_destroy (cuda_backend_or_skip ());
  f = gst_element_factory_find ("cudaupload");
  if (!f) {
    printf ("SKIP: nvcodec's cudaupload is not available\n");
    return 77;
  }
  gst_object_unref (f);
  /* CUDA does not survive a fork. */
  g_setenv ("CK_FORK", "no", TRUE);
  return gst_check_run_suite (cuda_elements_suite (), "cuda-elements",
      __FILE__);
#else
  (void) argc;
  (void) argv;
  printf ("SKIP: built without the CUDA backend or gstreamer-cuda\n");
  return 77;
#endif
}
