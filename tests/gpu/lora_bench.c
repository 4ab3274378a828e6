/* lora-bench — how long LoRA strength changes take on a device (a lab
 * program, not a test).
 *
 *   lora-bench [--preset wan-14b] [--layers N] [--rank R] [--repeats N]
 *              [--dtype bf16|fp8] [--device cuda:N] [--json]
 *
 * Makes the preset's synthetic weights on the device (the first N layers
 * with --layers), a seeded LoRA of rank R on every linear (dit_lora.h),
 * and times:
 *   merge  the first apply (factors uploaded, the base of every touched
 *          tensor kept, merged), then `repeats` re-merges at changing
 *          strengths, each from the kept base (W = base + s·B A per layer,
 *          FP8: dequantize, add, quantize with fresh channel scales): what
 *          a strength change costs in lora-mode=merge;
 *   live   the first apply, then `repeats` strength changes (B's columns
 *          rescaled on the device): what it costs in lora-mode=live (not
 *          with --dtype fp8: live takes 16/32-bit weights).
 * Every time is wall clock around the call with the device synchronized.
 * Exit 0, 1 on an error, 77 without the device, 2 on a usage error.
 */
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_lora.h"
#include "dit_weights.h"
#include "dit_clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static void
usage (FILE *f)
{
  fprintf (f, "Usage: lora-bench [--preset NAME] [--layers N] [--rank R] "
      "[--repeats N] [--dtype bf16|fp8] [--device cuda:N] [--json]\n"
      "Times LoRA merges and strength changes on a device (see the source "
      "header).\nExit status: 0 success, 1 failure, 2 usage error, 77 no "
      "device.\n");
}

static int
fail (const char *what)
{
  fprintf (stderr, "lora-bench: %s: %s\n", what, dit_last_error ());
  return 1;
}

/* first, then repeats changes; returns 0 or 1 */
static int
time_mode (dit_weights *w, dit_lora *l, dit_lora_mode mode, int repeats,
    double *first, double *times)
{
  dit_backend *be = w->backend;
  dit_lora_state *s;
  if (dit_lora_state_create (w, mode, 1, NULL, &s) != DIT_OK)
    return fail ("state");
  dit_lora_use use = { l, 1.0f };
  double t0 = dit_now_ms ();
  if (dit_lora_state_apply (s, &use, 1) != DIT_OK
      || be->ops->synchronize (be) != DIT_OK) {
    dit_lora_state_free (s);
    return fail ("first apply");
  }
  *first = dit_now_ms () - t0;
  for (int i = 0; i < repeats; i++) {
    use.strength = (i % 2) ? 0.75f : 0.25f;
    t0 = dit_now_ms ();
    if (dit_lora_state_apply (s, &use, 1) != DIT_OK
        || be->ops->synchronize (be) != DIT_OK) {
      dit_lora_state_free (s);
      return fail ("strength change");
    }
    times[i] = dit_now_ms () - t0;
  }
  dit_lora_state_free (s);
  qsort (times, (size_t) repeats, sizeof *times, cmp_double);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *preset = "wan-14b", *device = "cuda:0", *dtype = "bf16";
  int layers = 0, rank = 64, repeats = 5, json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
      usage (stdout);
      return 0;
    } else if (strcmp (a, "--json") == 0) {
      json = 1;
    } else if (v && strcmp (a, "--preset") == 0) {
      preset = v, i++;
    } else if (v && strcmp (a, "--device") == 0) {
      device = v, i++;
    } else if (v && strcmp (a, "--dtype") == 0) {
      dtype = v, i++;
    } else if (v && strcmp (a, "--layers") == 0) {
      layers = atoi (v), i++;
    } else if (v && strcmp (a, "--rank") == 0) {
      rank = atoi (v), i++;
    } else if (v && strcmp (a, "--repeats") == 0) {
      repeats = atoi (v), i++;
    } else {
      fprintf (stderr, "lora-bench: unknown or incomplete option '%s'\n", a);
      usage (stderr);
      return 2;
    }
  }
  const int fp8 = strcmp (dtype, "fp8") == 0;
  if ((!fp8 && strcmp (dtype, "bf16") != 0) || rank < 1 || repeats < 1
      || repeats > 100 || layers < 0 || strncmp (device, "cuda", 4) != 0) {
    usage (stderr);
    return 2;
  }
  dit_backend *be = dit_backend_create ("cuda", device[4] == ':' ? atoi (device + 5) : 0);
  if (!be) {
    printf ("SKIP: %s\n", dit_last_error ());
    return 77;
  }
  dit_model_config cfg;
  dit_param_spec *specs;
  size_t count;
  dit_weights *w;
  dit_lora *l;
  if (dit_model_config_preset (preset, &cfg) != DIT_OK)
    return fail ("preset");
  if (layers > 0 && layers < cfg.num_layers)
    cfg.num_layers = layers;
  if (dit_model_config_params (&cfg, &specs, &count) != DIT_OK)
    return fail ("params");
  double t0 = dit_now_ms ();
  if (dit_weights_synthetic (specs, count, 1, DIT_BF16, be, &w) != DIT_OK)
    return fail ("weights");
  if (fp8 && dit_weights_to_fp8 (w, dit_model_fp8_select) != DIT_OK)
    return fail ("fp8 weights");
  const double weights_ms = dit_now_ms () - t0;
  if (dit_lora_synthetic (specs, count, rank, 3, &l) != DIT_OK)
    return fail ("lora");

  double merge_first, live_first = NAN, merge_t[100], live_t[100];
  int rc = time_mode (w, l, DIT_LORA_MERGE, repeats, &merge_first, merge_t);
  for (int i = 0; i < repeats; i++)
    live_t[i] = NAN;
  if (!rc && !fp8)
    rc = time_mode (w, l, DIT_LORA_LIVE, repeats, &live_first, live_t);
  if (!rc) {
    const double mm = merge_t[repeats / 2], lm = live_t[repeats / 2];
    char live[160] = "null", live_text[96] = "live: not with FP8 weights";
    if (!fp8) {
      snprintf (live, sizeof live, "{\"first_ms\": %.2f, \"rescale_ms\": "
          "{\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}}", live_first,
          lm, live_t[0], live_t[repeats - 1]);
      snprintf (live_text, sizeof live_text, "live first %.1f ms, strength "
          "change median %.2f ms", live_first, lm);
    }
    if (json)
      printf ("{\"preset\": \"%s\", \"layers\": %d, \"dtype\": \"%s\", "
          "\"rank\": %d, \"targets\": %zu, \"repeats\": %d, "
          "\"weights_ms\": %.1f, \"merge_first_ms\": %.2f, "
          "\"remerge_ms\": {\"median\": %.2f, \"min\": %.2f, \"max\": %.2f}, "
          "\"live\": %s}\n", preset, cfg.num_layers, dtype, rank, l->count,
          repeats, weights_ms, merge_first, mm, merge_t[0],
          merge_t[repeats - 1], live);
    else
      printf ("%s (%d layers, %s), rank %d on %zu linears: merge first %.1f ms, "
          "re-merge median %.1f ms (%.1f..%.1f); %s\n", preset,
          cfg.num_layers, dtype, rank, l->count, merge_first, mm, merge_t[0],
          merge_t[repeats - 1], live_text);
  }
  dit_lora_free (l);
  dit_weights_free (w);
  free (specs);
  dit_backend_destroy (be);
  return rc;
}
