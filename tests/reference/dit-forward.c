/* dit-forward — one DiT forward through the generator API, for comparison
 * with the PyTorch reference (tests/reference/dit_ref.py forward).
 *
 *   dit-forward MODEL EMBEDS INPUT OUT [--with-context] [--lora LIST]
 *               [--lora-mode merge|live]
 *
 * INPUT holds 'x' [16, F, h, w], 't' [F] and metadata frame_offset, and
 * (for --with-context) 'context' [16, C, h, w].  OUT receives 'v'.  --lora
 * applies LoRAs as the tools do (model/dit_lora.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_generator.h"
#include "dit_lora.h"
#include "tool_common.h"

int
main (int argc, char **argv)
{
  int with_context = 0, usage = argc < 5;
  dit_lora_spec spec = { 0 };
  dit_lora_mode mode = DIT_LORA_MERGE;
  for (int i = 5; i < argc && !usage; i++) {
    if (strcmp (argv[i], "--with-context") == 0)
      with_context = 1;
    else if (strcmp (argv[i], "--lora") == 0 && i + 1 < argc)
      usage = dit_lora_spec_parse (argv[++i], &spec) != DIT_OK;
    else if (strcmp (argv[i], "--lora-mode") == 0 && i + 1 < argc)
      usage = dit_lora_mode_parse (argv[++i], &mode) != DIT_OK;
    else
      usage = 1;
  }
  if (usage) {
    fprintf (stderr, "usage: dit-forward MODEL EMBEDS INPUT OUT [--with-context] "
        "[--lora LIST] [--lora-mode merge|live]\n");
    return 2;
  }
  dit_backend *be = dit_backend_cpu ();
  dit_model_config mc;
  dit_weights *w = NULL;
  dit_generator *g = NULL;
  dit_lora_set *lora = NULL;
  dit_safetensors *in = NULL;
  float *embeds = NULL, *v = NULL;
  int ret = 1;

  if (tool_load_dit (argv[1], 0, DIT_PRECISION_F32, be, &mc, &w) != DIT_OK)
    goto fail;
  int64_t rows;
  if (tool_read_tensor_f32 (argv[2], "embeds", 2, NULL, &embeds, &rows) != DIT_OK)
    goto fail;
  if (dit_safetensors_open (argv[3], &in) != DIT_OK)
    goto fail;
  dit_tensor x, tt, ctx;
  if (tool_find_tensor (in, "x", 4, NULL, &x) != DIT_OK
      || tool_find_tensor (in, "t", 1, NULL, &tt) != DIT_OK)
    goto fail;
  if (with_context && tool_find_tensor (in, "context", 4, NULL, &ctx) != DIT_OK)
    goto fail;
  const char *fo = dit_safetensors_metadata (in, "frame_offset");

  dit_gen_config cfg;
  dit_gen_config_default (&cfg);
  cfg.latent_h = (int) x.shape[2];
  cfg.latent_w = (int) x.shape[3];
  cfg.frames_per_chunk = (int) x.shape[1];
  cfg.context_frames = with_context ? (int) ctx.shape[1] : cfg.frames_per_chunk;
  cfg.kv_window = cfg.context_frames + cfg.frames_per_chunk;
  if (dit_generator_create (&mc, &cfg, w, be, &g) != DIT_OK)
    goto fail;
  if (spec.count > 0
      && (dit_lora_set_create (w, &mc, mode, 0, NULL, &lora) != DIT_OK
        || dit_lora_set_update (lora, &spec) != DIT_OK
        || dit_generator_set_lora (g, dit_lora_set_state (lora)) != DIT_OK))
    goto fail;
  dit_tensor et = dit_tensor_2d (embeds, DIT_F32, DIT_DEVICE_CPU, rows, mc.text_dim);
  if (dit_generator_set_prompt (g, &et) != DIT_OK)
    goto fail;

  double t[64];
  for (int64_t i = 0; i < tt.shape[0] && i < 64; i++)
    t[i] = dit_load_f32 (tt.data, tt.dtype, (size_t) i);
  size_t n = (size_t) dit_tensor_numel (&x);
  v = malloc (n * sizeof (float));
  dit_tensor vt = dit_tensor_make (v, DIT_F32, DIT_DEVICE_CPU, 4, x.shape);
  if (dit_generator_forward (g, with_context ? &ctx : NULL, &x, t,
          fo ? atoi (fo) : 0, &vt) != DIT_OK)
    goto fail;
  dit_st_write_tensor wt = { .name = "v", .dtype = DIT_F32, .ndim = 4,
    .shape = x.shape, .data = v };
  if (dit_safetensors_write (argv[4], &wt, 1, NULL) != DIT_OK)
    goto fail;
  ret = 0;
  goto done;
fail:
  fprintf (stderr, "dit-forward: %s\n", dit_last_error ());
done:
  free (v);
  free (embeds);
  dit_safetensors_close (in);
  dit_generator_free (g);
  dit_lora_set_free (lora);
  dit_weights_free (w);
  return ret;
}
