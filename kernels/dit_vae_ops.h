/* dit_vae_ops — op parameter structs for the WanVAE (conv3d, norms,
 * resampling, pixel conversion) and the VAE part of the backend op table.
 *
 * VAE activation layout: channels-last, one frame after another:
 * [T, H, W, C] (NDHWC without the batch).  That is the layout an implicit-GEMM
 * conv on tensor cores wants (K = kt*kh*kw*Cin contiguous per output pixel),
 * and the channel RMS norm reads contiguous channel vectors.  Checkpoint
 * conv weights [Cout, Cin, kt, kh, kw] are reordered at load time to
 * [Cout, kt, kh, kw, Cin].
 *
 * Frame tensors ([T, H, W, C], 4-D) must have contiguous frames inside
 * (stride[3] = 1, stride[2] = C, stride[1] = W*C); the frame stride
 * stride[0] is free, which is how the upsample3d time conv writes its two
 * output halves straight into interleaved frames (frame stride 2*H*W*C) and
 * how a cache of previous frames is passed next to the current chunk.
 *
 * One conv op covers every VAE convolution: causal 3x3x3 with the front time
 * padding taken from a cache, 1x1x1, (3,1,1) time convs with stride 1 or 2,
 * and per-frame 2-D convs (kt = 1) with stride 1 or 2 and asymmetric spatial
 * padding (downsample: right/bottom only).  The TAEHV tiny autoencoder
 * (model/dit_taehv.c) uses the same op: its MemBlock's conv over
 * [x, previous x] is a (2, 3, 3) time conv, and its ReLUs are the conv's
 * `relu` epilogue.
 */
#ifndef DIT_VAE_OPS_H
#define DIT_VAE_OPS_H

#include <stdint.h>

#include "dit_status.h"
#include "dit_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_backend dit_backend;

/* Convolution over the virtual time sequence
 *   [pad_front zero frames, prev frames (P), x frames (T)]
 * producing To = (pad_front + P + T - kt) / st + 1 output frames;
 * spatially Ho = (H + pad_top + pad_bottom - kh) / sh + 1 (same for W).
 *   v = bias[co] + residual[o, ho, wo, co]
 *       + sum_{dt,dh,dw,ci} in[o*st + dt, ho*sh + dh - pad_top,
 *                              wo*sw + dw - pad_left, ci]
 *                           * weight[co, ((dt*kh + dh)*kw + dw)*Cin + ci]
 *   y[o, ho, wo, co] = relu ? max(v, 0) : v
 * with zeros outside the frame and in the pad_front frames.
 *  x:        [T, H, W, Cin]
 *  prev:     [P, H, W, Cin] (the causal cache) or NULL (P = 0)
 *  weight:   [Cout, kt*kh*kw*Cin] (2-D, rows may be strided: a row slice of
 *            a larger weight selects output channels)
 *  bias:     [Cout] or NULL
 *  residual: [To, Ho, Wo, Cout] or NULL; may alias y (element-wise read
 *            before write), never x or prev
 *  y:        [To, Ho, Wo, Cout]; must not overlap x or prev */
typedef struct dit_vae_conv_params {
  const dit_tensor *x;
  const dit_tensor *prev;
  const dit_tensor *weight;
  const dit_tensor *bias;
  const dit_tensor *residual;
  dit_tensor *y;
  int kt, kh, kw;
  int st, sh, sw;           /* strides; 0 is read as 1 */
  int pad_front;
  int pad_top, pad_bottom, pad_left, pad_right;
  int relu;                 /* max(v, 0) after bias and residual */
} dit_vae_conv_params;

/* Channel RMS norm (WanVAE RMS_norm) over the last dim of [N, C] rows or
 * of a frame tensor [T, H, W, C]:
 *   y = x / max(||x||_2, 1e-12) * sqrt(C) * gamma, then SiLU if `silu`.
 * In-place allowed. */
typedef struct dit_vae_norm_params {
  const dit_tensor *x;
  const dit_tensor *gamma;   /* [C] */
  dit_tensor *y;
  int silu;
} dit_vae_norm_params;

/* Nearest-neighbour x2 spatial upsample per frame ("nearest-exact" equals
 * "nearest" for an integer factor): x [T, H, W, C] -> y [T, 2H, 2W, C],
 * y[t, i, j] = x[t, i/2, j/2]. */
typedef struct dit_vae_upsample_params {
  const dit_tensor *x;
  dit_tensor *y;
} dit_vae_upsample_params;

/* Copy frames with dtype conversion: x and y are [T, H, W, C] of the same
 * shape (frame strides free).  Used for the cache hand-off. */
typedef struct dit_vae_copy_frames_params {
  const dit_tensor *x;
  dit_tensor *y;
} dit_vae_copy_frames_params;

#define DIT_VAE_MAX_AFFINE 32

/* Layout change between the API layout [C, T, H, W] (channels first, like
 * the reference; strides free except the last dim) and the internal
 * [T, H, W, C], with an optional per-channel affine, soft clamp and clamp
 * applied on the way, in this order:
 *   v = in * scale[c] + shift[c]                  (affine)
 *   v = s * tanh(v / s)                            (soft_clamp = s > 0)
 *   out = min(max(v, lo), hi)                      (clamp)
 * This is where latents are (de)normalised (spec §5.5), decoder output is
 * clamped to [-1, 1], pixels move between [-1, 1] and TAEHV's [0, 1], and
 * TAEHV's decoder input gets its 3 tanh(x / 3). */
typedef struct dit_vae_layout_params {
  const dit_tensor *x;
  dit_tensor *y;
  int to_channels_last;      /* 1: x [C,T,H,W] -> y [T,H,W,C]; 0: reverse */
  int affine;                /* use scale/shift (C <= DIT_VAE_MAX_AFFINE) */
  float scale[DIT_VAE_MAX_AFFINE];
  float shift[DIT_VAE_MAX_AFFINE];
  float soft_clamp;          /* s > 0: v = s * tanh(v / s) */
  int clamp;
  float clamp_lo, clamp_hi;
} dit_vae_layout_params;

/* 8-bit video frames.  Packed RGB formats list their bytes in memory order
 * (DIT_PIXEL_RGBX = R, G, B, ignored; GStreamer's RGBx).  I420: Y plane, then
 * U and V planes at half resolution.  NV12: Y plane, then one interleaved UV
 * plane at half resolution.  Width and height must be even for the 4:2:0
 * formats. */
typedef enum dit_pixel_format {
  DIT_PIXEL_RGB = 0,
  DIT_PIXEL_BGR,
  DIT_PIXEL_RGBA,
  DIT_PIXEL_RGBX,
  DIT_PIXEL_BGRA,
  DIT_PIXEL_BGRX,
  DIT_PIXEL_I420,
  DIT_PIXEL_NV12,
} dit_pixel_format;

/* YUV <-> RGB matrix and range.  The default (0) is BT.601 limited range
 * (Y 16..235, chroma 16..240), what SD cameras and most y4m files carry
 * when they say nothing else. */
typedef enum dit_yuv_matrix {
  DIT_YUV_BT601_LIMITED = 0,
  DIT_YUV_BT601_FULL,
  DIT_YUV_BT709_LIMITED,
  DIT_YUV_BT709_FULL,
} dit_yuv_matrix;

/* One frame <-> tensor [3, H, W] (R, G, B planes, channels first; strides
 * free except the last dim), values in [-1, 1]: v = 2 * (byte / 255) - 1 for
 * RGB.  YUV -> RGB uses the matrix with chroma upsampled by replication
 * (each chroma sample covers its 2x2 block) and clamps to [-1, 1];
 * RGB -> YUV averages the four pixels' chroma of each 2x2 block.  Tensor ->
 * bytes rounds to nearest and saturates; alpha/padding bytes are written as
 * 255.  plane/stride: 1 plane for packed RGB, 3 for I420 (Y, U, V), 2 for
 * NV12 (Y, UV); strides in bytes. */
typedef struct dit_vae_pixels_params {
  dit_pixel_format format;
  dit_yuv_matrix matrix;
  int width, height;
  uint8_t *plane[3];
  int64_t stride[3];
  dit_tensor *tensor;        /* [3, H, W] */
} dit_vae_pixels_params;

/* Each entry may be NULL on a backend that does not implement it; the
 * dispatch functions below then fail with DIT_ERR_UNSUPPORTED. */
typedef struct dit_vae_op_table {
  dit_status (*conv) (dit_backend *be, const dit_vae_conv_params *p);
  dit_status (*norm) (dit_backend *be, const dit_vae_norm_params *p);
  dit_status (*upsample) (dit_backend *be, const dit_vae_upsample_params *p);
  dit_status (*copy_frames) (dit_backend *be, const dit_vae_copy_frames_params *p);
  dit_status (*layout) (dit_backend *be, const dit_vae_layout_params *p);
  /* bytes -> tensor (planes are read) and tensor -> bytes (planes written) */
  dit_status (*pixels_to_tensor) (dit_backend *be, const dit_vae_pixels_params *p);
  dit_status (*tensor_to_pixels) (dit_backend *be, const dit_vae_pixels_params *p);
} dit_vae_op_table;

/* The CPU implementation (kernels/cpu/vae_conv.c, vae_misc.c, pixels.c);
 * f32 activations and weights for the conv, any dtype elsewhere. */
extern const dit_vae_op_table dit_cpu_vae_ops;
dit_status dit_cpu_vae_conv (dit_backend *be, const dit_vae_conv_params *p);
dit_status dit_cpu_vae_norm (dit_backend *be, const dit_vae_norm_params *p);
dit_status dit_cpu_vae_upsample (dit_backend *be, const dit_vae_upsample_params *p);
dit_status dit_cpu_vae_copy_frames (dit_backend *be,
    const dit_vae_copy_frames_params *p);
dit_status dit_cpu_vae_layout (dit_backend *be, const dit_vae_layout_params *p);
dit_status dit_cpu_pixels_to_tensor (dit_backend *be, const dit_vae_pixels_params *p);
dit_status dit_cpu_tensor_to_pixels (dit_backend *be, const dit_vae_pixels_params *p);
/* Validate a [T, H, W, C] frame tensor (see the layout rules above) for op
 * `op`; writes its dims. */
dit_status dit_cpu_vae_check_frames (const dit_tensor *t, const char *op,
    const char *name, int64_t dims[4]);

/* Dispatch (kernels/dit_vae_dispatch.c): checks that the backend has the op,
 * then calls it.  dit_backend_has_vae: the backend has a VAE table. */
int dit_backend_has_vae (const dit_backend *be);
dit_status dit_vae_conv (dit_backend *be, const dit_vae_conv_params *p);
dit_status dit_vae_norm (dit_backend *be, const dit_vae_norm_params *p);
dit_status dit_vae_upsample (dit_backend *be, const dit_vae_upsample_params *p);
dit_status dit_vae_copy_frames (dit_backend *be, const dit_vae_copy_frames_params *p);
dit_status dit_vae_layout (dit_backend *be, const dit_vae_layout_params *p);
dit_status dit_pixels_to_tensor (dit_backend *be, const dit_vae_pixels_params *p);
dit_status dit_tensor_to_pixels (dit_backend *be, const dit_vae_pixels_params *p);

/* Bytes per pixel of a packed RGB format (3 or 4), 0 for planar YUV. */
int dit_pixel_format_bpp (dit_pixel_format f);
/* Parse "rgb", "rgba", "rgbx", "bgr", "bgra", "bgrx", "i420", "nv12"
 * (case-insensitive); -1 when unknown. */
int dit_pixel_format_from_name (const char *name);
const char *dit_pixel_format_name (dit_pixel_format f);

#ifdef __cplusplus
}
#endif
#endif
