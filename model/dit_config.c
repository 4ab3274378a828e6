#include "dit_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct preset {
  const char *name;
  int dim, ffn_dim, num_heads, num_layers, text_dim;
} preset;

static const preset presets[] = {
  { "wan-14b", 5120, 13824, 40, 40, 4096 },
  { "wan-1.3b", 1536, 8960, 12, 30, 4096 },
  { "tiny", 256, 512, 2, 2, 64 },
  /* 4 heads, so tensor parallelism up to 4 ranks is testable on a CPU. */
  { "tiny-tp", 512, 1024, 4, 2, 64 },
  /* The shape the demo model is trained in (tools/train, docs/demo-model.md),
   * so that its checkpoints are detected and loaded by path.  It has no
   * synthetic weights, so it is not in preset_names: the name "demo" loads
   * the trained file (dit_loader.h). */
  { "demo", 256, 1024, 2, 4, 64 },
};

static const char *const preset_names[] = { "wan-14b", "wan-1.3b", "tiny", "tiny-tp",
  NULL };

const char *const *
dit_model_config_preset_names (void)
{
  return preset_names;
}

dit_status
dit_model_config_preset (const char *name, dit_model_config *cfg)
{
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
    const preset *p = &presets[i];
    if (strcmp (p->name, name) != 0)
      continue;
    memset (cfg, 0, sizeof *cfg);
    snprintf (cfg->name, sizeof cfg->name, "%s", p->name);
    cfg->dim = p->dim;
    cfg->ffn_dim = p->ffn_dim;
    cfg->num_heads = p->num_heads;
    cfg->head_dim = p->dim / p->num_heads;
    cfg->num_layers = p->num_layers;
    cfg->text_dim = p->text_dim;
    cfg->freq_dim = 256;
    cfg->text_len = 512;
    cfg->in_dim = 16;
    cfg->out_dim = 16;
    cfg->eps = 1e-6f;
    return DIT_OK;
  }
  return dit_error (DIT_ERR_INVALID,
      "unknown model preset '%s' (known: wan-14b, wan-1.3b, tiny, tiny-tp)", name);
}

const char *
dit_model_config_detect (int dim, int num_layers, int ffn_dim, int text_dim)
{
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
    const preset *p = &presets[i];
    if (p->dim == dim && p->num_layers == num_layers && p->ffn_dim == ffn_dim
        && p->text_dim == text_dim)
      return p->name;
  }
  return NULL;
}

void
dit_param_list_add (dit_param_list *l, int ndim, const int64_t *shape,
    const char *fmt, ...)
{
  if (l->oom)
    return;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 128;
    dit_param_spec *v = realloc (l->v, cap * sizeof *v);
    if (!v) {
      l->oom = 1;
      return;
    }
    l->v = v;
    l->cap = cap;
  }
  dit_param_spec *s = &l->v[l->n++];
  memset (s, 0, sizeof *s);
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (s->name, sizeof s->name, fmt, ap);
  va_end (ap);
  s->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    s->shape[i] = shape[i];
}

static int
spec_add (dit_param_list *l, const char *name, int ndim, int64_t a, int64_t b,
    int64_t c, int64_t d, int64_t e)
{
  int64_t dims[5] = { a, b, c, d, e };
  dit_param_list_add (l, ndim, dims, "%s", name);
  return !l->oom;
}

#define ADD1(n, a) ok &= spec_add (&l, n, 1, a, 0, 0, 0, 0)
#define ADD2(n, a, b) ok &= spec_add (&l, n, 2, a, b, 0, 0, 0)
#define ADD3(n, a, b, c) ok &= spec_add (&l, n, 3, a, b, c, 0, 0)
#define ADD5(n, a, b, c, d, e) ok &= spec_add (&l, n, 5, a, b, c, d, e)

static int
add_linear (dit_param_list *l, const char *prefix, int64_t out, int64_t in)
{
  const int64_t w[2] = { out, in }, b[1] = { out };
  dit_param_list_add (l, 2, w, "%s.weight", prefix);
  dit_param_list_add (l, 1, b, "%s.bias", prefix);
  return !l->oom;
}

dit_status
dit_model_config_params (const dit_model_config *cfg, dit_param_spec **specs,
    size_t *count)
{
  dit_param_list l = { 0 };
  int ok = 1;
  int64_t D = cfg->dim, F = cfg->ffn_dim;
  char n[96];

  ADD5 ("patch_embedding.weight", D, cfg->in_dim, 1, 2, 2);
  ADD1 ("patch_embedding.bias", D);
  ok &= add_linear (&l, "text_embedding.0", D, cfg->text_dim);
  ok &= add_linear (&l, "text_embedding.2", D, D);
  ok &= add_linear (&l, "time_embedding.0", D, cfg->freq_dim);
  ok &= add_linear (&l, "time_embedding.2", D, D);
  ok &= add_linear (&l, "time_projection.1", 6 * D, D);
  for (int i = 0; i < cfg->num_layers; i++) {
    static const char *const proj[] = { "q", "k", "v", "o" };
    snprintf (n, sizeof n, "blocks.%d.modulation", i);
    ADD3 (n, 1, 6, D);
    for (int a = 0; a < 2; a++) {
      const char *att = a == 0 ? "self_attn" : "cross_attn";
      for (int p = 0; p < 4; p++) {
        snprintf (n, sizeof n, "blocks.%d.%s.%s", i, att, proj[p]);
        ok &= add_linear (&l, n, D, D);
      }
      snprintf (n, sizeof n, "blocks.%d.%s.norm_q.weight", i, att);
      ADD1 (n, D);
      snprintf (n, sizeof n, "blocks.%d.%s.norm_k.weight", i, att);
      ADD1 (n, D);
      if (a == 0) {
        snprintf (n, sizeof n, "blocks.%d.norm3.weight", i);
        ADD1 (n, D);
        snprintf (n, sizeof n, "blocks.%d.norm3.bias", i);
        ADD1 (n, D);
      }
    }
    snprintf (n, sizeof n, "blocks.%d.ffn.0", i);
    ok &= add_linear (&l, n, F, D);
    snprintf (n, sizeof n, "blocks.%d.ffn.2", i);
    ok &= add_linear (&l, n, D, F);
  }
  ADD3 ("head.modulation", 1, 2, D);
  ok &= add_linear (&l, "head.head", (int64_t) cfg->out_dim * 4, D);

  if (!ok) {
    free (l.v);
    return dit_error (DIT_ERR_NOMEM, "out of memory building the parameter list");
  }
  *specs = l.v;
  *count = l.n;
  return DIT_OK;
}

int64_t
dit_model_config_param_count (const dit_model_config *cfg)
{
  dit_param_spec *specs;
  size_t n;
  int64_t total = 0;
  if (dit_model_config_params (cfg, &specs, &n) != DIT_OK)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int64_t e = 1;
    for (int d = 0; d < specs[i].ndim; d++)
      e *= specs[i].shape[d];
    total += e;
  }
  free (specs);
  return total;
}

dit_status
dit_precision_parse (const char *s, dit_precision *out)
{
  if (s && strcmp (s, "f32") == 0)
    *out = DIT_PRECISION_F32;
  else if (s && strcmp (s, "bf16") == 0)
    *out = DIT_PRECISION_BF16;
  else if (s && strcmp (s, "fp8") == 0)
    *out = DIT_PRECISION_FP8;
  else
    return dit_error (DIT_ERR_INVALID, "dtype '%s': expected f32, bf16 or fp8",
        s ? s : "(null)");
  return DIT_OK;
}

const char *
dit_precision_name (dit_precision p)
{
  switch (p) {
    case DIT_PRECISION_F32: return "f32";
    case DIT_PRECISION_BF16: return "bf16";
    case DIT_PRECISION_FP8: return "fp8";
  }
  return "?";
}

dit_dtype
dit_precision_compute_dtype (dit_precision p)
{
  return p == DIT_PRECISION_F32 ? DIT_F32 : DIT_BF16;
}

dit_precision
dit_precision_of (dit_dtype compute, int fp8)
{
  if (fp8)
    return DIT_PRECISION_FP8;
  return compute == DIT_F32 ? DIT_PRECISION_F32 : DIT_PRECISION_BF16;
}
