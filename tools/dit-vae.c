/* dit-vae — run the streaming WanVAE from the command line.
 *
 *   dit-vae encode --input in.y4m -o lat.safetensors     (tiny VAE, seed 0)
 *   dit-vae encode --vae vae.safetensors --input in.raw --size 576x320 \
 *       --format i420 -o lat.safetensors
 *   dit-vae decode --vae vae.safetensors --input lat.safetensors -o out.y4m
 *   dit-vae decode --input latents.safetensors -o - | ffmpeg -i - out.mp4
 *   dit-vae encode-tensor|decode-tensor|anchor-tensor --vae W --input IN -o OUT
 *
 * encode streams like the GStreamer element: frame 0 alone, then chunks of
 * 4 frames, one latent per chunk.  A trailing partial chunk (1-3 frames)
 * cannot form a latent; it is reported on stderr and dropped.  Input: y4m
 * with 4:2:0 chroma (C420, C420jpeg, C420mpeg2, C420paldv, or no C tag),
 * or raw frames (rgb, i420, nv12) with --size WxH.  YUV is BT.601 limited
 * range.  Output: 'latents' [16, F, H/8, W/8] F32 with metadata width and
 * height.
 *
 * decode reads dit-generate's chunks latents.c0 .. latents.c<K-1> in order
 * (or encode's 'latents'), streams them one latent at a time through the
 * decoder (1 frame for latent 0, 4 for each later one) and writes a 4:2:0
 * y4m (C420jpeg) at --fps (default 16), to stdout with -o -.  There is no
 * MP4 writer here: pipe the y4m into ffmpeg (or gst-launch-1.0 fdsrc !
 * y4mdec ! ...).
 *
 * The *-tensor modes are the harness of the reference tests
 * (tests/reference/vae_ref.py): encode-tensor reads 'pixels' [3, T, H, W]
 * (T = 1 + 4k) and writes 'latents'; decode-tensor reads 'latents' and
 * writes 'pixels', one latent per decoder call; anchor-tensor encodes the
 * single frame of 'pixels' [3, 1, H, W] with a fresh cache.
 *
 * --vae takes a checkpoint (spec §5.7 key names; the config is detected
 * from its shapes) or a preset name (tiny, the default, or wan) for seeded
 * synthetic weights (`dit-weights make --kind vae` writes them as a
 * checkpoint).
 *
 * --decoder MODEL decodes with a TAEHV tiny decoder instead (a preset:
 * taew2_1, lighttaew2_1, taehv-tiny, or a checkpoint converted by
 * tools/convert-pth.py), --encoder MODEL encodes with a TAEHV encoder; the
 * frame counts are the full VAE's (model/dit_taehv.h).
 *
 *   dit-vae compare --vae W --decoder T --input clip.y4m|lat.safetensors
 *
 * decodes the same latents (a clip is first encoded with the full VAE)
 * with both decoders and prints the PSNR between them per latent and
 * overall (and of each against the clip).  Only meaningful with real
 * weights for both: with synthetic weights the two decoders are unrelated
 * random networks.
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_backend.h"
#include "dit_loader.h"
#include "dit_stream.h"
#include "dit_taehv.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "safetensors.h"

#define EXIT_USAGE 2

typedef struct opts {
  const char *cmd;
  const char *vae;
  const char *decoder;       /* TAEHV decoder instead of the VAE's */
  const char *encoder;       /* TAEHV encoder instead of the VAE's */
  const char *input;
  const char *output;
  const char *format;
  const char *device;
  int width, height;
  int fps;
  uint64_t seed;
} opts;

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: dit-vae COMMAND [options]\n"
      "\n"
      "commands:\n"
      "  encode         video (y4m or raw) -> latent safetensors, streaming\n"
      "  decode         latents -> y4m, one latent at a time: dit-generate's\n"
      "                 chunks latents.c0, latents.c1, ... in order, or the\n"
      "                 'latents' of encode; -o - writes to stdout, e.g.\n"
      "                 dit-vae decode --input l.safetensors -o - | ffmpeg -i - out.mp4\n"
      "  encode-tensor  'pixels' [3,T,H,W] safetensors -> 'latents'\n"
      "  decode-tensor  'latents' safetensors -> 'pixels'\n"
      "  anchor-tensor  'pixels' [3,1,H,W] -> 'latents' [16,1,h,w], fresh cache\n"
      "  compare        PSNR between the full VAE's and --decoder's decoding of\n"
      "                 a clip (y4m/raw, encoded by the full VAE) or latents\n"
      "\n"
      "options:\n"
      "  --vae PATH|tiny|wan   checkpoint or synthetic preset (default "
      DIT_DEFAULT_VAE ")\n"
      "  --decoder MODEL       decode with a TAEHV tiny decoder: taew2_1,\n"
      "                        lighttaew2_1, taehv-tiny or a checkpoint\n"
      "  --encoder MODEL       encode with a TAEHV encoder (same models)\n"
      "  --seed N              seed of synthetic weights (default 0)\n"
      "  --input FILE          input file\n"
      "  -o, --output FILE     output file (decode: - = stdout)\n"
      "  --size WxH            raw input frame size (multiples of 16)\n"
      "  --format rgb|i420|nv12  raw input pixel format (default i420)\n"
      "  --fps N               y4m output frame rate (default 16)\n"
      "  --device cpu          backend (default cpu)\n"
      "  -h, --help            this text\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int
fail (const char *what)
{
  fprintf (stderr, "dit-vae: %s: %s\n", what, dit_last_error ());
  return 1;
}

/* ---------------------------------------------------------------------------
 * weights */

static dit_status
make_vae (const opts *o, dit_backend *be, int width, int height, dit_vae **v)
{
  dit_vae_config cfg;
  dit_weights *w = NULL;
  DIT_TRY (dit_load_vae (o->vae, o->seed, DIT_F32, be, &cfg, &w));
  dit_status st = dit_vae_create (&cfg, w, width, height, DIT_F32, be, v);
  dit_weights_free (w);   /* the VAE keeps its own reordered copy */
  return st;
}

static dit_status
make_taehv (const char *model, uint64_t seed, unsigned parts, dit_backend *be,
    int width, int height, dit_taehv **t)
{
  dit_taehv_config cfg;
  dit_weights *w = NULL;
  DIT_TRY (dit_load_taehv (model, seed, DIT_F32, be, &cfg, &w));
  dit_status st = dit_taehv_create (&cfg, w, width, height, DIT_F32, parts, be, t);
  dit_weights_free (w);
  return st;
}

/* The decoder or encoder of a run: the full VAE's or a TAEHV. */
typedef struct codec {
  dit_vae *vae;
  dit_taehv *tae;
} codec;

static dit_status
codec_open (const opts *o, int decoder, dit_backend *be, int width, int height,
    codec *c)
{
  const char *tiny = decoder ? o->decoder : o->encoder;
  memset (c, 0, sizeof *c);
  if (tiny)
    return make_taehv (tiny, o->seed, decoder ? DIT_TAEHV_DECODER
        : DIT_TAEHV_ENCODER, be, width, height, &c->tae);
  return make_vae (o, be, width, height, &c->vae);
}

static void
codec_close (codec *c)
{
  dit_vae_free (c->vae);
  dit_taehv_free (c->tae);
}

static int64_t
codec_decode_frames (const codec *c, int64_t n)
{
  return c->tae ? dit_taehv_decode_frames (c->tae, n) : dit_vae_decode_frames (c->vae, n);
}

static dit_status
codec_decode (codec *c, const dit_tensor *lat, dit_tensor *px)
{
  return c->tae ? dit_taehv_decode (c->tae, lat, px) : dit_vae_decode (c->vae, lat, px);
}

static int
codec_encode_frames (const codec *c)
{
  return c->tae ? dit_taehv_encode_frames (c->tae) : dit_vae_encode_frames (c->vae);
}

/* One group -> *n latents (the TAEHV encoder's come one group late). */
static dit_status
codec_encode (codec *c, const dit_tensor *px, dit_tensor *lat, int *n)
{
  if (c->tae)
    return dit_taehv_encode (c->tae, px, lat, n);
  *n = 1;
  return dit_vae_encode (c->vae, px, lat);
}

static dit_status
codec_encode_flush (codec *c, dit_tensor *lat, int *n)
{
  *n = 0;
  return c->tae ? dit_taehv_encode_flush (c->tae, lat, n) : DIT_OK;
}

/* ---------------------------------------------------------------------------
 * safetensors helpers */

/* Read tensor `name` as host f32 (4-D); shape in shape[4]. */
static dit_status
read_tensor4 (const char *path, const char *name, int64_t shape[4], float **data,
    int *width, int *height)
{
  dit_safetensors *st = NULL;
  DIT_TRY (dit_safetensors_open (path, &st));
  const dit_st_tensor *t = dit_safetensors_find (st, name);
  dit_dtype dt;
  dit_status s = DIT_OK;
  if (!t)
    s = dit_error (DIT_ERR_FORMAT, "%s: no tensor '%s'", path, name);
  else if (t->ndim != 4)
    s = dit_error (DIT_ERR_FORMAT, "%s: '%s' has %d dims, expected 4", path, name, t->ndim);
  else if (!dit_st_dtype_to_dit (t->dtype, &dt))
    s = dit_error (DIT_ERR_FORMAT, "%s: '%s' has dtype %s (F32/BF16/F16 expected)",
        path, name, dit_st_dtype_name (t->dtype));
  if (s == DIT_OK) {
    size_t n = 1;
    for (int i = 0; i < 4; i++) {
      shape[i] = t->shape[i];
      n *= (size_t) t->shape[i];
    }
    *data = malloc (n * sizeof (float) + 1);
    if (!*data)
      s = dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
    else
      dit_convert (*data, DIT_F32, t->data, dt, n);
    const char *mw = dit_safetensors_metadata (st, "width");
    const char *mh = dit_safetensors_metadata (st, "height");
    if (width)
      *width = mw ? atoi (mw) : 0;
    if (height)
      *height = mh ? atoi (mh) : 0;
  }
  dit_safetensors_close (st);
  return s;
}

static dit_status
write_tensor4 (const char *path, const char *name, const int64_t shape[4],
    const float *data, int width, int height)
{
  char ws[32], hs[32];
  snprintf (ws, sizeof ws, "%d", width);
  snprintf (hs, sizeof hs, "%d", height);
  const char *meta[] = { "width", ws, "height", hs, NULL };
  dit_st_write_tensor t = { name, DIT_F32, 4, shape, data };
  return dit_safetensors_write (path, &t, 1, meta);
}

static dit_tensor
cf_view (float *data, int64_t c, int64_t t, int64_t h, int64_t w)
{
  int64_t s[4] = { c, t, h, w };
  return dit_tensor_make (data, DIT_F32, DIT_DEVICE_CPU, 4, s);
}

static dit_tensor
cf_frames (const dit_tensor *t, int64_t f0, int64_t n)
{
  dit_tensor s = *t;
  s.data = (float *) t->data + f0 * t->stride[1];
  s.shape[1] = n;
  return s;
}

/* ---------------------------------------------------------------------------
 * video input/output */

typedef struct video_in {
  FILE *f;
  int y4m;
  int width, height;
  dit_pixel_format format;
  size_t frame_bytes;
  uint8_t *buf;
} video_in;

static int
video_open (video_in *vi, const opts *o)
{
  memset (vi, 0, sizeof *vi);
  vi->f = fopen (o->input, "rb");
  if (!vi->f) {
    fprintf (stderr, "dit-vae: cannot open %s\n", o->input);
    return 1;
  }
  char line[512];
  int c = fgetc (vi->f);
  ungetc (c, vi->f);
  if (c == 'Y') {
    if (!fgets (line, sizeof line, vi->f) || strncmp (line, "YUV4MPEG2", 9) != 0) {
      fprintf (stderr, "dit-vae: %s: not a y4m file\n", o->input);
      return 1;
    }
    vi->y4m = 1;
    vi->format = DIT_PIXEL_I420;
    for (char *tok = strtok (line + 9, " \n"); tok; tok = strtok (NULL, " \n")) {
      if (tok[0] == 'W')
        vi->width = atoi (tok + 1);
      else if (tok[0] == 'H')
        vi->height = atoi (tok + 1);
      else if (tok[0] == 'C' && strncmp (tok, "C420", 4) != 0) {
        fprintf (stderr, "dit-vae: %s: y4m colorspace %s not supported (4:2:0 "
            "only)\n", o->input, tok);
        return 1;
      }
    }
  } else {
    if (!o->width) {
      fprintf (stderr, "dit-vae: %s: raw input needs --size WxH\n", o->input);
      return EXIT_USAGE;
    }
    int fmt = dit_pixel_format_from_name (o->format ? o->format : "i420");
    if (fmt != DIT_PIXEL_RGB && fmt != DIT_PIXEL_I420 && fmt != DIT_PIXEL_NV12) {
      fprintf (stderr, "dit-vae: --format %s: use rgb, i420 or nv12\n", o->format);
      return EXIT_USAGE;
    }
    vi->format = (dit_pixel_format) fmt;
    vi->width = o->width;
    vi->height = o->height;
  }
  if (vi->width <= 0 || vi->height <= 0) {
    fprintf (stderr, "dit-vae: %s: no frame size\n", o->input);
    return 1;
  }
  vi->frame_bytes = vi->format == DIT_PIXEL_RGB ? (size_t) vi->width * vi->height * 3
      : (size_t) vi->width * vi->height * 3 / 2;
  vi->buf = malloc (vi->frame_bytes);
  return vi->buf ? 0 : 1;
}

/* 1: a frame was read into tensor t [3, H, W]; 0: end of input; -1 error. */
static int
video_read (video_in *vi, dit_backend *be, dit_tensor *t)
{
  char line[256];
  if (vi->y4m) {
    if (!fgets (line, sizeof line, vi->f))
      return 0;
    if (strncmp (line, "FRAME", 5) != 0) {
      fprintf (stderr, "dit-vae: y4m: expected FRAME\n");
      return -1;
    }
  }
  size_t got = fread (vi->buf, 1, vi->frame_bytes, vi->f);
  if (got == 0 && !vi->y4m)
    return 0;
  if (got != vi->frame_bytes) {
    fprintf (stderr, "dit-vae: truncated frame (%zu of %zu bytes)\n", got, vi->frame_bytes);
    return -1;
  }
  dit_vae_pixels_params p = { .format = vi->format, .width = vi->width,
      .height = vi->height, .tensor = t };
  const size_t ys = (size_t) vi->width * vi->height;
  p.plane[0] = vi->buf;
  if (vi->format == DIT_PIXEL_RGB) {
    p.stride[0] = (int64_t) vi->width * 3;
  } else {
    p.stride[0] = vi->width;
    p.plane[1] = vi->buf + ys;
    p.stride[1] = vi->format == DIT_PIXEL_NV12 ? vi->width : vi->width / 2;
    p.plane[2] = vi->buf + ys + ys / 4;
    p.stride[2] = vi->width / 2;
  }
  if (dit_pixels_to_tensor (be, &p) != DIT_OK) {
    fail ("pixel conversion");
    return -1;
  }
  return 1;
}

static dit_tensor
frame_of (const dit_tensor *px, int64_t t)
{
  dit_tensor f = *px;
  f.data = (float *) px->data + t * px->stride[1];
  f.ndim = 3;
  f.shape[1] = px->shape[2];
  f.shape[2] = px->shape[3];
  f.stride[1] = px->stride[2];
  f.stride[2] = 1;
  return f;
}

static int
cmd_encode (const opts *o, dit_backend *be)
{
  video_in vi;
  int rc = video_open (&vi, o);
  if (rc)
    return rc;
  const int W = vi.width, H = vi.height, h = H / 8, w = W / 8;
  codec v;
  if (codec_open (o, 0, be, W, H, &v) != DIT_OK)
    return fail (o->encoder ? "encoder" : "vae");
  float *px = malloc (sizeof (float) * 3 * 4 * (size_t) H * W);
  float *lat = malloc (sizeof (float) * 16 * (size_t) h * w);
  float *all = NULL;
  int64_t F = 0, pending = 0, total = 0;
  dit_tensor pxt = cf_view (px, 3, 4, H, W);
  dit_tensor latt = cf_view (lat, 16, 1, h, w);
  rc = 0;
  for (int eos = 0; !eos;) {
    dit_tensor fr = frame_of (&pxt, pending);
    int r = video_read (&vi, be, &fr), n = 0;
    if (r < 0) {
      rc = 1;
      break;
    }
    if (r == 0) {
      eos = 1;
      if (codec_encode_flush (&v, &latt, &n) != DIT_OK) {
        rc = fail ("encode");
        break;
      }
    } else {
      total++;
      pending++;
      if (pending < codec_encode_frames (&v))
        continue;
      dit_tensor chunk = cf_frames (&pxt, 0, pending);
      if (codec_encode (&v, &chunk, &latt, &n) != DIT_OK) {
        rc = fail ("encode");
        break;
      }
      pending = 0;
    }
    if (n == 0)
      continue;
    float *na = realloc (all, sizeof (float) * 16 * (size_t) h * w * (size_t) (F + 1));
    if (!na) {
      rc = 1;
      break;
    }
    all = na;
    memcpy (all + (size_t) F * 16 * h * w, lat, sizeof (float) * 16 * h * w);
    F++;
  }
  if (rc == 0 && pending)
    fprintf (stderr, "dit-vae: dropping %lld trailing frame(s): a latent needs "
        "4 frames after frame 0\n", (long long) pending);
  if (rc == 0 && F == 0) {
    fprintf (stderr, "dit-vae: %s: no frames\n", o->input);
    rc = 1;
  }
  if (rc == 0) {
    /* per-latent [16, h, w] blocks -> [16, F, h, w] */
    float *out = malloc (sizeof (float) * 16 * (size_t) F * h * w);
    for (int64_t f = 0; f < F; f++)
      for (int c = 0; c < 16; c++)
        memcpy (out + ((size_t) c * F + f) * h * w, all + ((size_t) f * 16 + c) * h * w,
            sizeof (float) * h * w);
    int64_t shape[4] = { 16, F, h, w };
    if (write_tensor4 (o->output, "latents", shape, out, W, H) != DIT_OK)
      rc = fail (o->output);
    else
      fprintf (stderr, "dit-vae: %lld frames -> %lld latents [16, %lld, %d, %d]\n",
          (long long) total, (long long) F, (long long) F, h, w);
    free (out);
  }
  codec_close (&v);
  free (px);
  free (lat);
  free (all);
  free (vi.buf);
  fclose (vi.f);
  return rc;
}

static int
cmd_decode (const opts *o, dit_backend *be)
{
  int64_t shape[4];
  float *lat = NULL;
  /* dit-generate's chunks in order, or dit-vae encode's one tensor */
  if (dit_stream_load_latents (o->input, &lat, shape) != DIT_OK)
    return fail ("input");
  const int W = (int) shape[3] * 8, H = (int) shape[2] * 8;
  codec v;
  if (codec_open (o, 1, be, W, H, &v) != DIT_OK) {
    free (lat);
    return fail (o->decoder ? "decoder" : "vae");
  }
  const int to_stdout = strcmp (o->output, "-") == 0;
  FILE *f = to_stdout ? stdout : fopen (o->output, "wb");
  if (!f) {
    fprintf (stderr, "dit-vae: cannot write %s\n", o->output);
    codec_close (&v);
    free (lat);
    return 1;
  }
  fprintf (f, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C420jpeg\n", W, H, o->fps);
  float *px = malloc (sizeof (float) * 3 * 4 * (size_t) W * H);
  uint8_t *yuv = malloc ((size_t) W * H * 3 / 2);
  dit_tensor latt = cf_view (lat, 16, shape[1], shape[2], shape[3]);
  int rc = 0;
  int64_t frames = 0;
  for (int64_t i = 0; i < shape[1] && rc == 0; i++) {
    const int64_t n = codec_decode_frames (&v, 1);
    dit_tensor l = cf_frames (&latt, i, 1);
    dit_tensor p = cf_view (px, 3, n, H, W);
    if (codec_decode (&v, &l, &p) != DIT_OK) {
      rc = fail ("decode");
      break;
    }
    for (int64_t t = 0; t < n; t++) {
      dit_tensor fr = frame_of (&p, t);
      dit_vae_pixels_params pp = { .format = DIT_PIXEL_I420, .width = W,
          .height = H, .tensor = &fr };
      pp.plane[0] = yuv;
      pp.stride[0] = W;
      pp.plane[1] = yuv + (size_t) W * H;
      pp.stride[1] = W / 2;
      pp.plane[2] = yuv + (size_t) W * H * 5 / 4;
      pp.stride[2] = W / 2;
      if (dit_tensor_to_pixels (be, &pp) != DIT_OK) {
        rc = fail ("pixel conversion");
        break;
      }
      fputs ("FRAME\n", f);
      fwrite (yuv, 1, (size_t) W * H * 3 / 2, f);
      frames++;
    }
  }
  if ((to_stdout ? fflush (f) : fclose (f)) != 0) {
    fprintf (stderr, "dit-vae: writing %s failed\n", o->output);
    rc = 1;
  }
  if (rc == 0)
    fprintf (stderr, "dit-vae: %lld latents -> %lld frames %dx%d\n",
        (long long) shape[1], (long long) frames, W, H);
  codec_close (&v);
  free (px);
  free (yuv);
  free (lat);
  return rc;
}

static int
cmd_tensor (const opts *o, dit_backend *be)
{
  const int enc = strcmp (o->cmd, "decode-tensor") != 0;
  const int anchor = strcmp (o->cmd, "anchor-tensor") == 0;
  int64_t s[4];
  float *in = NULL;
  if (read_tensor4 (o->input, enc ? "pixels" : "latents", s, &in, NULL, NULL) != DIT_OK)
    return fail ("input");
  const int64_t H = enc ? s[2] : s[2] * 8, W = enc ? s[3] : s[3] * 8;
  if (anchor && o->encoder) {
    fprintf (stderr, "dit-vae: anchor-tensor runs the full VAE (no --encoder)\n");
    free (in);
    return EXIT_USAGE;
  }
  codec v;
  if (codec_open (o, !enc, be, (int) W, (int) H, &v) != DIT_OK) {
    free (in);
    return fail ((enc ? o->encoder : o->decoder) ? "taehv" : "vae");
  }
  dit_tensor ti = cf_view (in, s[0], s[1], s[2], s[3]);
  int64_t os[4];
  float *out = NULL;
  dit_status st;
  if (enc) {
    const int64_t F = s[1] >= 1 ? 1 + (s[1] - 1) / 4 : 0;
    os[0] = 16; os[1] = F; os[2] = H / 8; os[3] = W / 8;
    out = calloc ((size_t) (os[0] * os[1] * os[2] * os[3]) + 1, sizeof (float));
    dit_tensor to = cf_view (out, os[0], os[1], os[2], os[3]);
    if (v.tae)
      st = dit_taehv_encode_offline (v.tae, &ti, &to);
    else
      st = anchor ? dit_vae_encode_anchor (v.vae, &ti, &to)
          : dit_vae_encode_offline (v.vae, &ti, &to);
  } else {
    os[0] = 3; os[1] = codec_decode_frames (&v, s[1]); os[2] = H; os[3] = W;
    out = calloc ((size_t) (os[0] * os[1] * os[2] * os[3]) + 1, sizeof (float));
    dit_tensor to = cf_view (out, os[0], os[1], os[2], os[3]);
    st = DIT_OK;
    int64_t t0 = 0;
    /* one latent per decoder call, as the elements stream */
    for (int64_t i = 0; i < s[1] && st == DIT_OK; i++) {
      const int64_t n = codec_decode_frames (&v, 1);
      dit_tensor l = cf_frames (&ti, i, 1), p = cf_frames (&to, t0, n);
      st = codec_decode (&v, &l, &p);
      t0 += n;
    }
  }
  int rc = 0;
  if (st != DIT_OK)
    rc = fail (o->cmd);
  else if (write_tensor4 (o->output, enc ? "latents" : "pixels", os, out, (int) W,
      (int) H) != DIT_OK)
    rc = fail (o->output);
  codec_close (&v);
  free (in);
  free (out);
  return rc;
}

/* ---------------------------------------------------------------------------
 * compare */

typedef struct psnr_acc {
  double se;         /* sum of squared differences */
  double n;
} psnr_acc;

static void
psnr_add (psnr_acc *a, const float *x, const float *y, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const double d = (double) x[i] - y[i];
    a->se += d * d;
  }
  a->n += (double) n;
}

/* PSNR of values in [-1, 1] (peak-to-peak 2). */
static double
psnr_db (const psnr_acc *a)
{
  const double mse = a->n > 0 ? a->se / a->n : 0.0;
  return mse > 0 ? 10.0 * log10 (4.0 / mse) : INFINITY;
}

/* Decode latent i ([16, 1, h, w] view) with both decoders; compare with
 * each other and, when `clip` is given ([3, n, H, W]), with the clip. */
static int
compare_latent (codec *full, codec *tiny, const dit_tensor *lat, int64_t i,
    const float *clip, int H, int W, float *pf, float *pt, psnr_acc tot[3])
{
  const int64_t n = codec_decode_frames (full, 1);
  if (codec_decode_frames (tiny, 1) != n) {
    fprintf (stderr, "dit-vae: compare: the decoders disagree on frame counts\n");
    return 1;
  }
  dit_tensor a = cf_view (pf, 3, n, H, W), b = cf_view (pt, 3, n, H, W);
  if (codec_decode (full, lat, &a) != DIT_OK)
    return fail ("full VAE decode");
  if (codec_decode (tiny, lat, &b) != DIT_OK)
    return fail ("tiny decode");
  const size_t m = (size_t) 3 * n * H * W;
  psnr_acc one[3] = { { 0, 0 }, { 0, 0 }, { 0, 0 } };
  psnr_add (&one[0], pf, pt, m);
  psnr_add (&tot[0], pf, pt, m);
  if (clip) {
    psnr_add (&one[1], pf, clip, m);
    psnr_add (&one[2], pt, clip, m);
    psnr_add (&tot[1], pf, clip, m);
    psnr_add (&tot[2], pt, clip, m);
    printf ("latent %4lld  %lld frames  tiny vs full %6.2f dB  full vs clip "
        "%6.2f dB  tiny vs clip %6.2f dB\n", (long long) i, (long long) n,
        psnr_db (&one[0]), psnr_db (&one[1]), psnr_db (&one[2]));
  } else {
    printf ("latent %4lld  %lld frames  tiny vs full %6.2f dB\n",
        (long long) i, (long long) n, psnr_db (&one[0]));
  }
  return 0;
}

static int
cmd_compare (const opts *o, dit_backend *be)
{
  dit_safetensors *probe = NULL;
  const int latents_in = dit_safetensors_open (o->input, &probe) == DIT_OK;
  dit_safetensors_close (probe);
  int W = 0, H = 0, rc = 0;
  int64_t shape[4] = { 0, 0, 0, 0 }, latents = 0;
  float *lat_all = NULL;
  video_in vi;
  memset (&vi, 0, sizeof vi);
  if (latents_in) {
    /* dit-generate's chunks in order, or dit-vae encode's one tensor */
    if (dit_stream_load_latents (o->input, &lat_all, shape) != DIT_OK)
      return fail ("input");
    W = (int) shape[3] * 8;
    H = (int) shape[2] * 8;
  } else {
    if ((rc = video_open (&vi, o)) != 0)
      return rc;
    W = vi.width;
    H = vi.height;
  }
  codec full, tiny;
  opts ov = *o;        /* the same options without --decoder: the VAE */
  ov.decoder = NULL;
  if (codec_open (&ov, 1, be, W, H, &full) != DIT_OK) {
    free (lat_all);
    return fail ("vae");
  }
  if (codec_open (o, 1, be, W, H, &tiny) != DIT_OK) {
    codec_close (&full);
    free (lat_all);
    return fail ("decoder");
  }
  const int h = H / 8, w = W / 8;
  float *pf = malloc (sizeof (float) * 3 * 4 * (size_t) W * H);
  float *pt = malloc (sizeof (float) * 3 * 4 * (size_t) W * H);
  float *clip = malloc (sizeof (float) * 3 * 4 * (size_t) W * H);
  float *lat = malloc (sizeof (float) * 16 * (size_t) h * w);
  psnr_acc tot[3] = { { 0, 0 }, { 0, 0 }, { 0, 0 } };
  if (!pf || !pt || !clip || !lat) {
    fprintf (stderr, "dit-vae: out of memory\n");
    rc = 1;
  }
  if (rc == 0 && latents_in) {
    dit_tensor all = cf_view (lat_all, 16, shape[1], shape[2], shape[3]);
    for (int64_t i = 0; i < shape[1] && rc == 0; i++, latents++) {
      dit_tensor l = cf_frames (&all, i, 1);
      rc = compare_latent (&full, &tiny, &l, i, NULL, H, W, pf, pt, tot);
    }
  } else if (rc == 0) {
    /* encode each group with the full VAE, then decode that latent */
    dit_tensor ct = cf_view (clip, 3, 4, H, W);
    dit_tensor lt = cf_view (lat, 16, 1, h, w);
    int64_t pending = 0;
    for (;;) {
      dit_tensor fr = frame_of (&ct, pending);
      int r = video_read (&vi, be, &fr);
      if (r <= 0) {
        rc = r < 0;
        break;
      }
      if (++pending < dit_vae_encode_frames (full.vae))
        continue;
      dit_tensor group = cf_frames (&ct, 0, pending);
      if (dit_vae_encode (full.vae, &group, &lt) != DIT_OK) {
        rc = fail ("encode");
        break;
      }
      rc = compare_latent (&full, &tiny, &lt, latents++, clip, H, W, pf, pt, tot);
      if (rc)
        break;
      pending = 0;
    }
    if (rc == 0 && pending)
      fprintf (stderr, "dit-vae: dropping %lld trailing frame(s): a latent "
          "needs 4 frames after frame 0\n", (long long) pending);
  }
  if (rc == 0 && latents == 0) {
    fprintf (stderr, "dit-vae: %s: nothing to compare\n", o->input);
    rc = 1;
  }
  if (rc == 0) {
    printf ("overall: %lld latents, tiny (%s) vs full VAE (%s): %.2f dB",
        (long long) latents, o->decoder, o->vae, psnr_db (&tot[0]));
    if (!latents_in)
      printf ("; full vs clip %.2f dB, tiny vs clip %.2f dB", psnr_db (&tot[1]),
          psnr_db (&tot[2]));
    printf ("\n");
    if (dit_taehv_is_preset (o->decoder) || strcmp (o->vae, "tiny") == 0
        || strcmp (o->vae, "wan") == 0)
      printf ("note: synthetic weights: the two decoders are unrelated random "
          "networks, so this PSNR says nothing about quality\n");
  }
  codec_close (&full);
  codec_close (&tiny);
  free (pf);
  free (pt);
  free (clip);
  free (lat);
  free (lat_all);
  free (vi.buf);
  if (vi.f)
    fclose (vi.f);
  return rc;
}

int
main (int argc, char **argv)
{
  opts o = { .vae = DIT_DEFAULT_VAE, .fps = 16, .device = "cpu" };
  enum { OPT_VAE = 256, OPT_SEED, OPT_INPUT, OPT_SIZE, OPT_FORMAT, OPT_FPS,
      OPT_DEVICE, OPT_DECODER, OPT_ENCODER };
  static const struct option longopts[] = {
    { "vae", required_argument, NULL, OPT_VAE },
    { "decoder", required_argument, NULL, OPT_DECODER },
    { "encoder", required_argument, NULL, OPT_ENCODER },
    { "seed", required_argument, NULL, OPT_SEED },
    { "input", required_argument, NULL, OPT_INPUT },
    { "output", required_argument, NULL, 'o' },
    { "size", required_argument, NULL, OPT_SIZE },
    { "format", required_argument, NULL, OPT_FORMAT },
    { "fps", required_argument, NULL, OPT_FPS },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  if (argc < 2) {
    usage (stderr);
    return EXIT_USAGE;
  }
  if (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0) {
    usage (stdout);
    return 0;
  }
  o.cmd = argv[1];
  optind = 2;
  int c;
  while ((c = getopt_long (argc, argv, "o:h", longopts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
      case OPT_VAE: o.vae = optarg; break;
      case OPT_DECODER: o.decoder = optarg; break;
      case OPT_ENCODER: o.encoder = optarg; break;
      case OPT_SEED:
        o.seed = strtoull (optarg, &end, 10);
        if (!*optarg || *end) {
          fprintf (stderr, "dit-vae: --seed %s: not a number\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case OPT_INPUT: o.input = optarg; break;
      case 'o': o.output = optarg; break;
      case OPT_SIZE:
        if (sscanf (optarg, "%dx%d", &o.width, &o.height) != 2 || o.width <= 0
            || o.height <= 0) {
          fprintf (stderr, "dit-vae: --size %s: expected WxH\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case OPT_FORMAT: o.format = optarg; break;
      case OPT_FPS:
        o.fps = atoi (optarg);
        if (o.fps <= 0) {
          fprintf (stderr, "dit-vae: --fps %s: expected a positive integer\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case OPT_DEVICE: o.device = optarg; break;
      case 'h': usage (stdout); return 0;
      default: usage (stderr); return EXIT_USAGE;
    }
  }
  if (optind != argc) {
    fprintf (stderr, "dit-vae: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  const int known = strcmp (o.cmd, "encode") == 0
      || strcmp (o.cmd, "decode") == 0 || strcmp (o.cmd, "encode-tensor") == 0
      || strcmp (o.cmd, "decode-tensor") == 0 || strcmp (o.cmd, "anchor-tensor") == 0
      || strcmp (o.cmd, "compare") == 0;
  if (!known) {
    fprintf (stderr, "dit-vae: unknown command '%s'\n", o.cmd);
    usage (stderr);
    return EXIT_USAGE;
  }
  const int compare = strcmp (o.cmd, "compare") == 0;
  const int decodes = strncmp (o.cmd, "decode", 6) == 0;
  if ((!o.output && !compare) || !o.input) {
    fprintf (stderr, "dit-vae %s: needs --input%s\n", o.cmd,
        compare ? "" : " and -o");
    return EXIT_USAGE;
  }
  if (compare && !o.decoder) {
    fprintf (stderr, "dit-vae compare: needs --decoder (the tiny decoder to "
        "compare with the full VAE)\n");
    return EXIT_USAGE;
  }
  if ((o.decoder && !decodes && !compare) || (o.encoder && decodes)) {
    fprintf (stderr, "dit-vae %s: --%s does not apply\n", o.cmd,
        o.decoder ? "decoder" : "encoder");
    return EXIT_USAGE;
  }
  dit_backend *be = strcmp (o.device, "cpu") == 0 ? dit_backend_cpu ()
      : dit_backend_create (o.device, 0);
  if (!be)
    return fail (o.device);
  if (strcmp (o.cmd, "encode") == 0)
    return cmd_encode (&o, be);
  if (strcmp (o.cmd, "decode") == 0)
    return cmd_decode (&o, be);
  if (compare)
    return cmd_compare (&o, be);
  return cmd_tensor (&o, be);
}
