/* vae_conv — the one WanVAE convolution on the CPU (kernels/dit_vae_ops.h).
 *
 * Direct convolution over channels-last frames: for an output pixel the
 * input of one tap (dt, dh, dw) is a contiguous run of Cin floats, and the
 * reordered weight row [Cout][kt][kh][kw][Cin] has the same run for that
 * tap, so the conv is a GEMM over K = kt*kh*kw*Cin with a gathered input
 * row per output pixel — the implicit GEMM a CUDA kernel does.  Zero padding (spatial
 * border, the front time padding that stands in for "no cache yet") is a
 * pointer to a zero row, so the inner loop has no branches.
 *
 * Blocking: the op first transposes the [Cout, K] weight into [K, Cout]
 * (padded to 8 channels) in the calling thread's scratch, so that for one
 * input channel the weights of 8 output channels are one vector; a
 * micro-kernel keeps 4 output pixels x 8 output channels of accumulators
 * (an outer product per input channel, vectorisable without reassociation).
 * 4 pixels share every weight load — the weights are the large operand at
 * the latent-resolution stages.  One task per output row (frame, ho) on the
 * CPU pool; a task's arithmetic order is fixed, so results do not depend on
 * the thread count.
 *
 * Epilogue: bias, the residual, then the optional ReLU, in that order.
 *
 * Precision: f32 in, f32 accumulate, f32 out (the reference runs the VAE in
 * fp32).  The time axis of the input is the concatenation
 * [pad_front zeros, prev, x]; that is how the streaming cache hands the last
 * two input frames of the previous chunk to the next one, and why a
 * streaming pass equals one pass over the whole sequence.
 */
#include "cpu_internal.h"

#include <string.h>

#define DIT_VAE_CONV_MAX_TAPS 27
#define DIT_VAE_CONV_MAX_CIN 4096
#define DIT_VAE_CONV_PIX 4

static const float dit_vae_zero_row[DIT_VAE_CONV_MAX_CIN];

/* GNU vector of 4 floats: keeps the 4x8 accumulator block in registers
 * (plain arrays were spilled); any SIMD width the target has. */
typedef float dit_v4 __attribute__ ((vector_size (16)));

dit_status
dit_cpu_vae_check_frames (const dit_tensor *t, const char *op, const char *name,
    int64_t dims[4])
{
  return dit_check_frames (DIT_DEVICE_CPU, op, name, t, dims);
}

static dit_status
dit_vae_conv_need_f32 (const dit_tensor *t, const char *name)
{
  if (t && t->dtype != DIT_F32)
    return dit_error (DIT_ERR_UNSUPPORTED,
        "vae conv: %s is %s; the CPU conv runs in f32", name,
        dit_dtype_name (t->dtype));
  return DIT_OK;
}

typedef struct dit_vae_conv_job {
  const float *x, *prev, *wt, *bias, *res;
  float *y;
  int64_t xs0, ps0, rs0, ys0;
  int64_t T, P, H, W, cin;
  int64_t to, ho, wo, cout, cout_pad;
  int kt, kh, kw, st, sh, sw;
  int pad_front, pad_top, pad_left;
  int relu;
} dit_vae_conv_job;

static void
dit_vae_conv_row (void *ctx, int64_t task)
{
  const dit_vae_conv_job *j = (const dit_vae_conv_job *) ctx;
  const int64_t o = task / j->ho, ho = task % j->ho;
  const int64_t cin = j->cin, cpad = j->cout_pad;
  const float *src[DIT_VAE_CONV_MAX_TAPS][DIT_VAE_CONV_PIX];
  int live[DIT_VAE_CONV_MAX_TAPS], nlive;

  for (int64_t wo0 = 0; wo0 < j->wo; wo0 += DIT_VAE_CONV_PIX) {
    const int np = (int) (j->wo - wo0 < DIT_VAE_CONV_PIX ? j->wo - wo0 : DIT_VAE_CONV_PIX);

    /* Gather the input rows of every (tap, pixel); zero row outside.  Taps
     * that only see padding are dropped. */
    nlive = 0;
    for (int dt = 0, tap = 0; dt < j->kt; dt++) {
      const int64_t vt = o * j->st + dt - j->pad_front;
      const float *frame = NULL;
      if (vt >= 0)
        frame = vt < j->P ? j->prev + vt * j->ps0 : j->x + (vt - j->P) * j->xs0;
      for (int dh = 0; dh < j->kh; dh++) {
        const int64_t hi = ho * j->sh + dh - j->pad_top;
        for (int dw = 0; dw < j->kw; dw++, tap++) {
          int any = 0;
          for (int p = 0; p < DIT_VAE_CONV_PIX; p++) {
            const int64_t wi = (wo0 + p) * j->sw + dw - j->pad_left;
            if (frame && p < np && hi >= 0 && hi < j->H && wi >= 0 && wi < j->W) {
              src[tap][p] = frame + (hi * j->W + wi) * cin;
              any = 1;
            } else {
              src[tap][p] = dit_vae_zero_row;
            }
          }
          if (any)
            live[nlive++] = tap;
        }
      }
    }

    /* 4 pixels x 8 output channels of accumulators; the weight is [K, Cout]
     * here so the 8 channels are one contiguous vector per input channel. */
    for (int64_t co0 = 0; co0 < cpad; co0 += 8) {
      dit_v4 c00 = { 0 }, c01 = { 0 }, c10 = { 0 }, c11 = { 0 };
      dit_v4 c20 = { 0 }, c21 = { 0 }, c30 = { 0 }, c31 = { 0 };
      for (int li = 0; li < nlive; li++) {
        const int tap = live[li];
        const float *a0 = src[tap][0], *a1 = src[tap][1];
        const float *a2 = src[tap][2], *a3 = src[tap][3];
        const float *wk = j->wt + (int64_t) tap * cin * cpad + co0;
        for (int64_t i = 0; i < cin; i++) {
          dit_v4 w0, w1;
          memcpy (&w0, wk + i * cpad, sizeof w0);
          memcpy (&w1, wk + i * cpad + 4, sizeof w1);
          const float x0 = a0[i], x1 = a1[i], x2 = a2[i], x3 = a3[i];
          c00 += x0 * w0; c01 += x0 * w1;
          c10 += x1 * w0; c11 += x1 * w1;
          c20 += x2 * w0; c21 += x2 * w1;
          c30 += x3 * w0; c31 += x3 * w1;
        }
      }
      float acc[DIT_VAE_CONV_PIX][8];
      memcpy (acc[0], &c00, 16); memcpy (acc[0] + 4, &c01, 16);
      memcpy (acc[1], &c10, 16); memcpy (acc[1] + 4, &c11, 16);
      memcpy (acc[2], &c20, 16); memcpy (acc[2] + 4, &c21, 16);
      memcpy (acc[3], &c30, 16); memcpy (acc[3] + 4, &c31, 16);
      const int nc = (int) (j->cout - co0 < 8 ? j->cout - co0 : 8);
      for (int p = 0; p < np; p++) {
        const int64_t off = (ho * j->wo + wo0 + p) * j->cout + co0;
        float *yo = j->y + o * j->ys0 + off;
        const float *ro = j->res ? j->res + o * j->rs0 + off : NULL;
        for (int l = 0; l < nc; l++) {
          float v = acc[p][l] + (j->bias ? j->bias[co0 + l] : 0.0f);
          if (ro)
            v += ro[l];
          yo[l] = j->relu && v < 0.0f ? 0.0f : v;
        }
      }
    }
  }
}

dit_status
dit_cpu_vae_conv (dit_backend *be, const dit_vae_conv_params *p)
{
  dit_vae_conv_dims d;
  DIT_TRY (dit_check_vae_conv (DIT_DEVICE_CPU, p, DIT_VAE_CONV_MAX_TAPS, &d));
  /* the reference conv computes in f32 only */
  DIT_TRY (dit_vae_conv_need_f32 (p->x, "x"));
  DIT_TRY (dit_vae_conv_need_f32 (p->y, "y"));
  if (p->prev)
    DIT_TRY (dit_vae_conv_need_f32 (p->prev, "prev"));
  DIT_TRY (dit_vae_conv_need_f32 (p->weight, "weight"));
  if (p->bias)
    DIT_TRY (dit_vae_conv_need_f32 (p->bias, "bias"));
  if (p->residual)
    DIT_TRY (dit_vae_conv_need_f32 (p->residual, "residual"));
  const int64_t *xd = d.x, *pd = d.prev;
  const int st = d.st, sh = d.sh, sw = d.sw;
  const int64_t cin = d.cin;
  if (cin > DIT_VAE_CONV_MAX_CIN)
    return dit_error (DIT_ERR_INVALID, "vae conv: %lld input channels (max %d)",
        (long long) cin, DIT_VAE_CONV_MAX_CIN);
  const int64_t to = d.to, ho = d.ho, wo = d.wo, k = d.k, cout = d.cout;
  const dit_tensor *w = p->weight;

  /* [Cout, K] -> [K, Cout rounded up to 8] in this thread's scratch, shared
   * read-only with the pool; padded channels have zero weights. */
  const int64_t cpad = (cout + 7) / 8 * 8;
  float *wt = dit_cpu_scratch ((size_t) (k * cpad));
  if (!wt)
    return dit_error (DIT_ERR_NOMEM, "vae conv: no scratch for a [%lld, %lld] "
        "weight", (long long) k, (long long) cpad);
  const float *wsrc = (const float *) w->data;
  for (int64_t kk = 0; kk < k; kk++) {
    float *row = wt + kk * cpad;
    for (int64_t co = 0; co < cout; co++)
      row[co] = wsrc[co * w->stride[0] + kk];
    for (int64_t co = cout; co < cpad; co++)
      row[co] = 0.0f;
  }

  dit_vae_conv_job j = {
    .x = (const float *) p->x->data,
    .prev = p->prev ? (const float *) p->prev->data : NULL,
    .wt = wt, .cout_pad = cpad,
    .bias = p->bias ? (const float *) p->bias->data : NULL,
    .res = p->residual ? (const float *) p->residual->data : NULL,
    .y = (float *) p->y->data,
    .xs0 = p->x->stride[0], .ps0 = p->prev ? p->prev->stride[0] : 0,
    .rs0 = p->residual ? p->residual->stride[0] : 0,
    .ys0 = p->y->stride[0],
    .T = xd[0], .P = pd[0], .H = xd[1], .W = xd[2], .cin = cin,
    .to = to, .ho = ho, .wo = wo, .cout = cout,
    .kt = p->kt, .kh = p->kh, .kw = p->kw, .st = st, .sh = sh, .sw = sw,
    .pad_front = p->pad_front, .pad_top = p->pad_top, .pad_left = p->pad_left,
    .relu = p->relu,
  };
  dit_cpu_parallel (to * ho, dit_vae_conv_row, &j);
  return DIT_OK;
}
