/* stage0_display — the Stage 0 configuration the anchor-stream tests and
 * stage0-bench share: a display decoder of its own beside the full VAE,
 * F frames per chunk, all of them context, room for two chunks.  The
 * caller sets anchor_decoder and anchor_stream. */
#ifndef DIT_TEST_STAGE0_DISPLAY_H
#define DIT_TEST_STAGE0_DISPLAY_H

#include "dit_stage0.h"

static inline void
stage0_display_config (dit_stage0_config *c, int latent_h, int latent_w,
    int F, const dit_vae_config *vae, const dit_weights *vae_weights,
    dit_dtype dtype, const dit_taehv_config *display,
    const dit_weights *display_weights)
{
  dit_stage0_config_default (c);
  c->latent_h = latent_h;
  c->latent_w = latent_w;
  c->frames_per_chunk = F;
  c->context_frames = F;
  c->capacity = 2 * F;
  c->vae_config = vae;
  c->vae_weights = vae_weights;
  c->vae_dtype = dtype;
  c->display_config = display;
  c->display_weights = display_weights;
}

#endif
