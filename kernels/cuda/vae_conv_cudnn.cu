/* VAE conv through cuDNN, loaded at run time.
 *
 * On the decoder's heaviest causal convs cuDNN 9.19 (H200, bf16, channels-
 * last) measures 351 / 535 / 594 TFLOP/s against 206 / 217 / 188 for
 * vae_conv_mma.cu (docs/performance.md), so where cuDNN can be loaded the
 * bf16 convs it can express go through it and the own kernels take the
 * rest.  libcudnn.so.9 is opened with dlopen on first use: a host (or CI)
 * without it runs the own kernels, and the build needs only the headers.
 *
 * Layout: the VAE's [T, H, W, C] frames are cuDNN's NDHWC with N = 1 and
 * D = T; weights [Cout, kt, kh, kw, Cin] are its NHWC filter layout.  The
 * op's virtual time sequence [pad_front zero frames, prev, x] is made
 * contiguous in a staging buffer unless x alone is the whole input (the
 * models pass their cache already joined to the chunk, model/dit_vae.c and
 * model/dit_taehv.c, so in a stream only the first chunk stages); bias and
 * residual are folded in by first writing y = residual + bias (one rounding
 * to bf16) and then running the conv with beta = 1 (y = conv + y in f32,
 * rounded once more); a ReLU, when asked, is one more pass over y.
 * Precision: bf16 in and out, f32 accumulation; the
 * result differs from the own kernels (one rounding) by bf16 rounding only,
 * checked against the CPU conv by tests/gpu/test_cuda_vae.c.
 *
 * Per backend instance: one cuDNN handle on the backend's stream and a
 * cache of per-shape plans (descriptors and the algorithm cuDNN's Find
 * measured fastest on first use); staging and workspace grow on first use
 * of a shape, never in the steady state.
 *
 * A conv cuDNN cannot plan (plan_make fails) is answered
 * DIT_ERR_UNSUPPORTED, remembered per shape, and dit_cuda_vae_conv runs
 * it on the own kernels.
 *
 * DIT_VAE_CONV=own skips cuDNN (read on every call, for comparisons).
 */
#include "cuda_common.cuh"
#include "dit_cuda.h"
#include "vae_conv_mma.cuh"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(DIT_HAVE_CUDNN_HEADERS) && DIT_HAVE_CUDNN_HEADERS
#include <cudnn.h>

/* ---- the library, loaded once ---------------------------------------- */

typedef struct cudnn_api {
  int ok;
  size_t version;
  const char *(*GetErrorString) (cudnnStatus_t);
  size_t (*GetVersion) (void);
  cudnnStatus_t (*Create) (cudnnHandle_t *);
  cudnnStatus_t (*Destroy) (cudnnHandle_t);
  cudnnStatus_t (*SetStream) (cudnnHandle_t, cudaStream_t);
  cudnnStatus_t (*CreateTensorDescriptor) (cudnnTensorDescriptor_t *);
  cudnnStatus_t (*SetTensorNdDescriptorEx) (cudnnTensorDescriptor_t,
      cudnnTensorFormat_t, cudnnDataType_t, int, const int *);
  cudnnStatus_t (*DestroyTensorDescriptor) (cudnnTensorDescriptor_t);
  cudnnStatus_t (*CreateFilterDescriptor) (cudnnFilterDescriptor_t *);
  cudnnStatus_t (*SetFilterNdDescriptor) (cudnnFilterDescriptor_t,
      cudnnDataType_t, cudnnTensorFormat_t, int, const int *);
  cudnnStatus_t (*DestroyFilterDescriptor) (cudnnFilterDescriptor_t);
  cudnnStatus_t (*CreateConvolutionDescriptor) (cudnnConvolutionDescriptor_t *);
  cudnnStatus_t (*SetConvolutionNdDescriptor) (cudnnConvolutionDescriptor_t,
      int, const int *, const int *, const int *, cudnnConvolutionMode_t,
      cudnnDataType_t);
  cudnnStatus_t (*SetConvolutionMathType) (cudnnConvolutionDescriptor_t,
      cudnnMathType_t);
  cudnnStatus_t (*DestroyConvolutionDescriptor) (cudnnConvolutionDescriptor_t);
  cudnnStatus_t (*GetConvolutionNdForwardOutputDim) (
      const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t,
      const cudnnFilterDescriptor_t, int, int *);
  cudnnStatus_t (*FindConvolutionForwardAlgorithm) (cudnnHandle_t,
      const cudnnTensorDescriptor_t, const cudnnFilterDescriptor_t,
      const cudnnConvolutionDescriptor_t, const cudnnTensorDescriptor_t, int,
      int *, cudnnConvolutionFwdAlgoPerf_t *);
  cudnnStatus_t (*ConvolutionForward) (cudnnHandle_t, const void *,
      const cudnnTensorDescriptor_t, const void *,
      const cudnnFilterDescriptor_t, const void *,
      const cudnnConvolutionDescriptor_t, cudnnConvolutionFwdAlgo_t, void *,
      size_t, const void *, const cudnnTensorDescriptor_t, void *);
} cudnn_api;

static cudnn_api g_cudnn;
static pthread_once_t g_cudnn_once = PTHREAD_ONCE_INIT;

static void
cudnn_load (void)
{
  void *h = dlopen ("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return;
#define LOAD(name) \
  if (!(*(void **) &g_cudnn.name = dlsym (h, "cudnn" #name))) return;
  LOAD (GetErrorString);
  LOAD (GetVersion);
  LOAD (Create);
  LOAD (Destroy);
  LOAD (SetStream);
  LOAD (CreateTensorDescriptor);
  LOAD (SetTensorNdDescriptorEx);
  LOAD (DestroyTensorDescriptor);
  LOAD (CreateFilterDescriptor);
  LOAD (SetFilterNdDescriptor);
  LOAD (DestroyFilterDescriptor);
  LOAD (CreateConvolutionDescriptor);
  LOAD (SetConvolutionNdDescriptor);
  LOAD (SetConvolutionMathType);
  LOAD (DestroyConvolutionDescriptor);
  LOAD (GetConvolutionNdForwardOutputDim);
  LOAD (FindConvolutionForwardAlgorithm);
  LOAD (ConvolutionForward);
#undef LOAD
  g_cudnn.version = g_cudnn.GetVersion ();
  /* The v9 API (the descriptors above) from 9.0 on. */
  g_cudnn.ok = g_cudnn.version >= 90000;
}

#define CUDNN_TRY(call)                                                      \
  do {                                                                       \
    cudnnStatus_t s_ = (call);                                               \
    if (s_ != CUDNN_STATUS_SUCCESS)                                          \
      return dit_error (DIT_ERR_DEVICE, "cudnn: %s: %s", #call,              \
          g_cudnn.GetErrorString (s_));                                      \
  } while (0)

extern "C" int
dit_cuda_cudnn_version (void)
{
  pthread_once (&g_cudnn_once, cudnn_load);
  return g_cudnn.ok ? (int) g_cudnn.version : 0;
}

/* ---- per-backend state ------------------------------------------------ */

#define CUDNN_PLANS 64

typedef struct conv_key {
  int t, h, w, cin, cout, kt, kh, kw, st, sh, sw, ph, pw;
} conv_key;

typedef struct conv_plan {
  int used;
  int refused;          /* cuDNN had no plan for this shape: own kernels */
  conv_key key;
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  int ydim[5];
  cudnnConvolutionFwdAlgo_t algo;
  size_t ws_bytes;
} conv_plan;

struct dit_cuda_cudnn {
  cudnnHandle_t handle;
  conv_plan plans[CUDNN_PLANS];
  int next_victim;
  void *ws;
  size_t ws_cap;
  void *stage;
  size_t stage_cap;
};

static void
plan_clear (conv_plan *p)
{
  if (!p->used || p->refused) {
    memset (p, 0, sizeof *p);
    return;
  }
  g_cudnn.DestroyTensorDescriptor (p->xd);
  g_cudnn.DestroyTensorDescriptor (p->yd);
  g_cudnn.DestroyFilterDescriptor (p->wd);
  g_cudnn.DestroyConvolutionDescriptor (p->cd);
  memset (p, 0, sizeof *p);
}

void
dit_cuda_cudnn_free (dit_cuda_backend *cb)
{
  dit_cuda_cudnn *c = cb->cudnn;
  if (!c)
    return;
  for (int i = 0; i < CUDNN_PLANS; i++)
    plan_clear (&c->plans[i]);
  if (c->handle)
    g_cudnn.Destroy (c->handle);
  cudaFree (c->ws);
  cudaFree (c->stage);
  free (c);
  cb->cudnn = NULL;
}

static dit_status
grow (void **buf, size_t *cap, size_t need)
{
  if (need <= *cap)
    return DIT_OK;
  cudaFree (*buf);
  *buf = NULL;
  *cap = 0;
  DIT_CUDA_TRY (cudaMalloc (buf, need));
  *cap = need;
  return DIT_OK;
}

static dit_status
cudnn_state (dit_backend *be, dit_cuda_cudnn **out)
{
  dit_cuda_backend *cb = dit_cuda_impl (be);
  if (!cb->cudnn) {
    dit_cuda_cudnn *c = (dit_cuda_cudnn *) calloc (1, sizeof *c);
    if (!c)
      return dit_error (DIT_ERR_NOMEM, "cudnn: out of host memory");
    cudnnStatus_t s = g_cudnn.Create (&c->handle);
    if (s == CUDNN_STATUS_SUCCESS)
      s = g_cudnn.SetStream (c->handle, cb->stream);
    if (s != CUDNN_STATUS_SUCCESS) {
      if (c->handle)
        g_cudnn.Destroy (c->handle);
      free (c);
      return dit_error (DIT_ERR_DEVICE, "cudnn: no handle on device %d: %s",
          cb->device, g_cudnn.GetErrorString (s));
    }
    cb->cudnn = c;
  }
  *out = cb->cudnn;
  return DIT_OK;
}

static dit_status
plan_make (dit_cuda_cudnn *c, const conv_key *k, conv_plan *p)
{
  memset (p, 0, sizeof *p);
  CUDNN_TRY (g_cudnn.CreateTensorDescriptor (&p->xd));
  CUDNN_TRY (g_cudnn.CreateTensorDescriptor (&p->yd));
  CUDNN_TRY (g_cudnn.CreateFilterDescriptor (&p->wd));
  CUDNN_TRY (g_cudnn.CreateConvolutionDescriptor (&p->cd));
  p->used = 1;
  p->key = *k;
  const int xdim[5] = { 1, k->cin, k->t, k->h, k->w };
  const int wdim[5] = { k->cout, k->cin, k->kt, k->kh, k->kw };
  const int pad[3] = { 0, k->ph, k->pw };
  const int str[3] = { k->st, k->sh, k->sw };
  const int dil[3] = { 1, 1, 1 };
  CUDNN_TRY (g_cudnn.SetTensorNdDescriptorEx (p->xd, CUDNN_TENSOR_NHWC,
      CUDNN_DATA_BFLOAT16, 5, xdim));
  CUDNN_TRY (g_cudnn.SetFilterNdDescriptor (p->wd, CUDNN_DATA_BFLOAT16,
      CUDNN_TENSOR_NHWC, 5, wdim));
  CUDNN_TRY (g_cudnn.SetConvolutionNdDescriptor (p->cd, 3, pad, str, dil,
      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_TRY (g_cudnn.SetConvolutionMathType (p->cd, CUDNN_TENSOR_OP_MATH));
  CUDNN_TRY (g_cudnn.GetConvolutionNdForwardOutputDim (p->cd, p->xd, p->wd,
      5, p->ydim));
  CUDNN_TRY (g_cudnn.SetTensorNdDescriptorEx (p->yd, CUDNN_TENSOR_NHWC,
      CUDNN_DATA_BFLOAT16, 5, p->ydim));
  /* Find runs every algorithm once (first use of a shape only). */
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int n = 0;
  CUDNN_TRY (g_cudnn.FindConvolutionForwardAlgorithm (c->handle, p->xd,
      p->wd, p->cd, p->yd, 8, &n, perf));
  for (int i = 0; i < n; i++)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) {
      p->algo = perf[i].algo;
      p->ws_bytes = perf[i].memory;
      return grow (&c->ws, &c->ws_cap, p->ws_bytes);
    }
  return dit_error (DIT_ERR_UNSUPPORTED, "cudnn: no algorithm for the conv "
      "%dx%dx%d %d->%d over [%d, %d, %d]", k->kt, k->kh, k->kw, k->cin,
      k->cout, k->t, k->h, k->w);
}

/* A shape cuDNN cannot plan is remembered as refused, and every later call
 * of it answers DIT_ERR_UNSUPPORTED at once, so the caller takes its own
 * kernels without asking cuDNN again. */
static dit_status
plan_get (dit_cuda_cudnn *c, const conv_key *k, conv_plan **out)
{
  for (int i = 0; i < CUDNN_PLANS; i++)
    if (c->plans[i].used && memcmp (&c->plans[i].key, k, sizeof *k) == 0) {
      *out = &c->plans[i];
      return c->plans[i].refused ? dit_error (DIT_ERR_UNSUPPORTED, "cudnn: "
          "no plan for this conv") : DIT_OK;
    }
  conv_plan *p = NULL;
  for (int i = 0; i < CUDNN_PLANS && !p; i++)
    if (!c->plans[i].used)
      p = &c->plans[i];
  if (!p) {
    p = &c->plans[c->next_victim];
    c->next_victim = (c->next_victim + 1) % CUDNN_PLANS;
    plan_clear (p);
  }
  dit_status st = plan_make (c, k, p);
  if (st != DIT_OK) {
    plan_clear (p);
    p->used = 1;
    p->refused = 1;
    p->key = *k;
    return dit_error (DIT_ERR_UNSUPPORTED, "cudnn: no plan for the conv "
        "%dx%dx%d %d->%d (%s)", k->kt, k->kh, k->kw, k->cin, k->cout,
        dit_last_error ());
  }
  *out = p;
  return DIT_OK;
}

/* ---- y = residual + bias, before the conv accumulates into y ----------- */

__global__ void
init_y_kernel (__nv_bfloat16 *y, const __nv_bfloat16 *res, const void *bias,
    int bias_dt, int64_t n, int cout)
{
  DIT_CUDA_GRID_LOOP (i, n) {
    float v = res ? __bfloat162float (res[i]) : 0.0f;
    if (bias)
      v += dit_cuda_ld (bias, bias_dt, i % cout);
    y[i] = __float2bfloat16 (v);
  }
}

/* ---- ReLU after the conv: cuDNN's forward has no activation, and the
 * fused bias-activation call needs another plan type; one pass over y ---- */

__global__ void
relu_kernel (__nv_bfloat16 *y, int64_t n)
{
  DIT_CUDA_GRID_LOOP (i, n) {
    const float v = __bfloat162float (y[i]);
    if (v < 0.0f)
      y[i] = __float2bfloat16 (0.0f);
  }
}

/* ---- the op -------------------------------------------------------------- */

static int
frames_contiguous (const dit_tensor *t)
{
  return t->stride[0] == t->shape[1] * t->shape[2] * t->shape[3];
}

int
dit_cuda_vae_conv_cudnn_usable (const dit_vae_conv_params *p, int64_t cin,
    int64_t cout)
{
  const char *force = getenv ("DIT_VAE_CONV");
  if ((force && strcmp (force, "cudnn") != 0) || getenv ("DIT_VAE_CONV_GENERIC"))
    return 0;
  pthread_once (&g_cudnn_once, cudnn_load);
  if (!g_cudnn.ok)
    return 0;
  if (p->x->dtype != DIT_BF16 || p->y->dtype != DIT_BF16
      || p->weight->dtype != DIT_BF16 || (p->prev && p->prev->dtype != DIT_BF16)
      || (p->residual && p->residual->dtype != DIT_BF16))
    return 0;
  /* cuDNN pads symmetrically; the downsampling convs pad right/bottom. */
  if (p->pad_top != p->pad_bottom || p->pad_left != p->pad_right)
    return 0;
  if (cin % 8 != 0 || cout % 8 != 0 || p->weight->stride[0] != p->weight->shape[1])
    return 0;
  if (!frames_contiguous (p->x) || !frames_contiguous (p->y)
      || (p->prev && !frames_contiguous (p->prev))
      || (p->residual && !frames_contiguous (p->residual)))
    return 0;
  return 1;
}

dit_status
dit_cuda_vae_conv_cudnn (dit_backend *be, const dit_vae_conv_params *p,
    int64_t prev_frames, int64_t to, int64_t ho, int64_t wo)
{
  dit_cuda_backend *cb = dit_cuda_impl (be);
  dit_cuda_cudnn *c = NULL;
  DIT_TRY (cudnn_state (be, &c));
  const int64_t t = p->x->shape[0], h = p->x->shape[1], w = p->x->shape[2];
  const int64_t cin = p->x->shape[3], cout = p->weight->shape[0];
  const int64_t frame = h * w * cin;
  const int64_t vt = p->pad_front + prev_frames + t;
  conv_key k;
  memset (&k, 0, sizeof k);
  k.t = (int) vt; k.h = (int) h; k.w = (int) w;
  k.cin = (int) cin; k.cout = (int) cout;
  k.kt = p->kt; k.kh = p->kh; k.kw = p->kw;
  k.st = p->st > 0 ? p->st : 1; k.sh = p->sh > 0 ? p->sh : 1;
  k.sw = p->sw > 0 ? p->sw : 1;
  k.ph = p->pad_top; k.pw = p->pad_left;
  conv_plan *plan;
  DIT_TRY (plan_get (c, &k, &plan));
  if (plan->ydim[1] != cout || plan->ydim[2] != to || plan->ydim[3] != ho
      || plan->ydim[4] != wo)
    return dit_error (DIT_ERR_INVALID, "cudnn conv: output [%d, %d, %d, %d] "
        "instead of [%lld, %lld, %lld, %lld]", plan->ydim[2], plan->ydim[3],
        plan->ydim[4], plan->ydim[1], (long long) to, (long long) ho,
        (long long) wo, (long long) cout);

  /* The input: x itself, or [zeros, prev, x] assembled contiguously. */
  const void *in = p->x->data;
  if (vt != t) {
    const size_t fb = (size_t) frame * 2;
    DIT_TRY (grow (&c->stage, &c->stage_cap, (size_t) vt * fb));
    char *s = (char *) c->stage;
    if (p->pad_front)
      DIT_CUDA_TRY (cudaMemsetAsync (s, 0, (size_t) p->pad_front * fb,
          cb->stream));
    if (prev_frames)
      DIT_CUDA_TRY (cudaMemcpyAsync (s + (size_t) p->pad_front * fb,
          p->prev->data, (size_t) prev_frames * fb, cudaMemcpyDeviceToDevice,
          cb->stream));
    DIT_CUDA_TRY (cudaMemcpyAsync (s + (size_t) (p->pad_front + prev_frames)
        * fb, p->x->data, (size_t) t * fb, cudaMemcpyDeviceToDevice,
        cb->stream));
    in = s;
  }

  float alpha = 1.0f, beta = 0.0f;
  if (p->residual || p->bias) {
    const int64_t n = to * ho * wo * cout;
    init_y_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0, cb->stream>>> (
        (__nv_bfloat16 *) p->y->data,
        p->residual ? (const __nv_bfloat16 *) p->residual->data : NULL,
        p->bias ? p->bias->data : NULL, p->bias ? (int) p->bias->dtype : 0,
        n, (int) cout);
    DIT_CUDA_CHECK_LAUNCH ("init_y_kernel");
    beta = 1.0f;
  }
  CUDNN_TRY (g_cudnn.ConvolutionForward (c->handle, &alpha, plan->xd, in,
      plan->wd, p->weight->data, plan->cd, plan->algo, c->ws, plan->ws_bytes,
      &beta, plan->yd, p->y->data));
  if (p->relu) {
    const int64_t n = to * ho * wo * cout;
    relu_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0, cb->stream>>> (
        (__nv_bfloat16 *) p->y->data, n);
    DIT_CUDA_CHECK_LAUNCH ("relu_kernel");
  }
  return DIT_OK;
}

#else /* no cuDNN headers at build time: the own kernels only */

extern "C" int
dit_cuda_cudnn_version (void)
{
  return 0;
}

int
dit_cuda_vae_conv_cudnn_usable (const dit_vae_conv_params *p, int64_t cin,
    int64_t cout)
{
  (void) p; (void) cin; (void) cout;
  return 0;
}

dit_status
dit_cuda_vae_conv_cudnn (dit_backend *be, const dit_vae_conv_params *p,
    int64_t prev_frames, int64_t to, int64_t ho, int64_t wo)
{
  (void) be; (void) p; (void) prev_frames; (void) to; (void) ho; (void) wo;
  return dit_error (DIT_ERR_UNSUPPORTED, "built without cuDNN headers");
}

void
dit_cuda_cudnn_free (dit_cuda_backend *cb)
{
  (void) cb;
}

#endif
