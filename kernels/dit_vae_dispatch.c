/* dit_vae_dispatch — VAE op dispatch through be->ops->vae.
 *
 * Like the DiT dispatch in dit_backend.c: check that the backend exists and
 * has the VAE op, then hand the parameter struct over unchanged.  Shape and
 * dtype validation belongs to the backend.  The small pixel-format helpers
 * live here too because they are backend independent.
 */
#include "dit_backend.h"

#include <strings.h>

static const char *
dit_vae_backend_name (const dit_backend *be)
{
  return be && be->ops && be->ops->name ? be->ops->name : "(null)";
}

int
dit_backend_has_vae (const dit_backend *be)
{
  return be && be->ops && be->ops->vae;
}

#define DIT_VAE_DISPATCH(fn, field, type, opname) \
  dit_status \
  fn (dit_backend *be, const type *p) \
  { \
    if (!be || !be->ops) \
      return dit_error (DIT_ERR_INVALID, "vae %s: no backend", opname); \
    if (!p) \
      return dit_error (DIT_ERR_INVALID, "vae %s: NULL parameters", opname); \
    if (!be->ops->vae || !be->ops->vae->field) \
      return dit_error (DIT_ERR_UNSUPPORTED, \
          "vae %s: not implemented by the %s backend", opname, \
          dit_vae_backend_name (be)); \
    return be->ops->vae->field (be, p); \
  }

DIT_VAE_DISPATCH (dit_vae_conv, conv, dit_vae_conv_params, "conv")
DIT_VAE_DISPATCH (dit_vae_norm, norm, dit_vae_norm_params, "norm")
DIT_VAE_DISPATCH (dit_vae_upsample, upsample, dit_vae_upsample_params, "upsample")
DIT_VAE_DISPATCH (dit_vae_copy_frames, copy_frames, dit_vae_copy_frames_params,
    "copy_frames")
DIT_VAE_DISPATCH (dit_vae_layout, layout, dit_vae_layout_params, "layout")
DIT_VAE_DISPATCH (dit_pixels_to_tensor, pixels_to_tensor, dit_vae_pixels_params,
    "pixels_to_tensor")
DIT_VAE_DISPATCH (dit_tensor_to_pixels, tensor_to_pixels, dit_vae_pixels_params,
    "tensor_to_pixels")

static const char *const dit_pixel_format_names[] = {
  "rgb", "bgr", "rgba", "rgbx", "bgra", "bgrx", "i420", "nv12",
};

int
dit_pixel_format_bpp (dit_pixel_format f)
{
  switch (f) {
    case DIT_PIXEL_RGB: case DIT_PIXEL_BGR: return 3;
    case DIT_PIXEL_RGBA: case DIT_PIXEL_RGBX:
    case DIT_PIXEL_BGRA: case DIT_PIXEL_BGRX: return 4;
    default: return 0;
  }
}

int
dit_pixel_format_from_name (const char *name)
{
  if (!name)
    return -1;
  for (size_t i = 0; i < sizeof dit_pixel_format_names / sizeof *dit_pixel_format_names; i++)
    if (strcasecmp (name, dit_pixel_format_names[i]) == 0)
      return (int) i;
  return -1;
}

const char *
dit_pixel_format_name (dit_pixel_format f)
{
  if ((int) f < 0 || (size_t) f >= sizeof dit_pixel_format_names / sizeof *dit_pixel_format_names)
    return "unknown";
  return dit_pixel_format_names[f];
}
