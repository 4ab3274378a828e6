/* test_text — the text path: T5 relative-position buckets (spec §6.4
 * table), attention with a position-bias table and a key mask against a
 * float64 loop written here, prompt cleaning on hand-worked cases, the
 * tokenizer's edge cases (empty prompt, 2,000 characters, invalid UTF-8)
 * and the tiny umT5 encoder's argument checks.
 * usage: test-text [TOKENIZER_MODEL]  (without it the tokenizer part is
 * skipped) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_backend.h"
#include "dit_prompt.h"
#include "dit_t5_bucket.h"
#include "dit_tokenizer.h"
#include "dit_umt5.h"
#include "../common/check.h"
#include "../common/test_random.h"

/* ------------------------------------------------------------------------ */

static int
spec_distance_bucket (int a)
{
  /* spec §6.4, verbatim */
  if (a < 8) return a;
  if (a <= 11) return 8;
  if (a <= 15) return 9;
  if (a <= 22) return 10;
  if (a <= 31) return 11;
  if (a <= 45) return 12;
  if (a <= 63) return 13;
  if (a <= 90) return 14;
  return 15;
}

static void
test_buckets (void)
{
  for (int rel = -1000; rel <= 1000; rel++) {
    int want = (rel > 0 ? 16 : 0) + spec_distance_bucket (abs (rel));
    int got = dit_t5_bucket (rel, 32, 128, 1);
    CHECK (got == want, "bucket(%d) = %d, spec %d", rel, got, want);
  }
  /* unidirectional (decoder form): only keys at or before the query */
  CHECK (dit_t5_bucket (5, 32, 128, 0) == 0, "unidirectional future key");
  CHECK (dit_t5_bucket (-5, 32, 128, 0) == 5, "unidirectional past key");
  CHECK (dit_t5_bucket (-1000, 32, 128, 0) == 31, "unidirectional far key");
}

/* ------------------------------------------------------------------------ */

/* uniform in [-1, 1) */
static double
lcg64_signed (uint64_t *s)
{
  return lcg64_unit (s) * 2.0 - 1.0;
}

static void
test_attention_bias (int L, int heads, int d, int64_t key_len)
{
  const int W = heads * d, NB = 32;
  float *q = malloc (sizeof (float) * L * W), *k = malloc (sizeof (float) * L * W);
  float *v = malloc (sizeof (float) * L * W), *o = malloc (sizeof (float) * L * W);
  float *tab = malloc (sizeof (float) * NB * heads);
  uint64_t s = 1234 + (uint64_t) L;
  for (int i = 0; i < L * W; i++) {
    q[i] = (float) lcg64_signed (&s);
    k[i] = (float) lcg64_signed (&s);
    v[i] = (float) lcg64_signed (&s);
  }
  /* large: a wrong bucket shows */
  for (int i = 0; i < NB * heads; i++)
    tab[i] = (float) (3.0 * lcg64_signed (&s));
  dit_tensor tq = dit_tensor_2d (q, DIT_F32, DIT_DEVICE_CPU, L, W);
  dit_tensor tk = dit_tensor_2d (k, DIT_F32, DIT_DEVICE_CPU, L, W);
  dit_tensor tv = dit_tensor_2d (v, DIT_F32, DIT_DEVICE_CPU, L, W);
  dit_tensor to = dit_tensor_2d (o, DIT_F32, DIT_DEVICE_CPU, L, W);
  dit_tensor tb = dit_tensor_2d (tab, DIT_F32, DIT_DEVICE_CPU, NB, heads);
  dit_attn_params p = { .q = &tq, .k = &tk, .v = &tv, .o = &to, .heads = heads,
    .head_dim = d, .scale = 1.0f, .pos_bias = &tb, .num_buckets = NB,
    .max_distance = 128, .bidirectional = 1, .key_len = key_len };
  dit_status st = dit_attention (dit_backend_cpu (), &p);
  CHECK (st == DIT_OK, "attention with pos_bias: %s", dit_last_error ());

  /* float64 reference; the bucket from the spec table, not dit_t5_bucket */
  int64_t nk = key_len > 0 ? key_len : L;
  double maxerr = 0.0;
  double *sc = malloc (sizeof (double) * L);
  for (int h = 0; h < heads; h++) {
    for (int i = 0; i < L; i++) {
      double m = -INFINITY;
      for (int j = 0; j < nk; j++) {
        double dot = 0.0;
        for (int c = 0; c < d; c++)
          dot += (double) q[i * W + h * d + c] * k[j * W + h * d + c];
        int rel = j - i;
        int b = (rel > 0 ? 16 : 0) + spec_distance_bucket (abs (rel));
        sc[j] = dot + tab[b * heads + h];
        if (sc[j] > m)
          m = sc[j];
      }
      double den = 0.0;
      for (int j = 0; j < nk; j++)
        den += exp (sc[j] - m);
      for (int c = 0; c < d; c++) {
        double acc = 0.0;
        for (int j = 0; j < nk; j++)
          acc += exp (sc[j] - m) / den * v[j * W + h * d + c];
        double e = fabs (acc - o[i * W + h * d + c]);
        if (e > maxerr)
          maxerr = e;
      }
    }
  }
  CHECK (maxerr < 2e-5, "attention pos_bias L=%d heads=%d key_len=%lld: "
      "max error %.3g", L, heads, (long long) key_len, maxerr);
  free (sc);
  free (q); free (k); free (v); free (o); free (tab);
}

static void
test_attention_errors (void)
{
  float buf[64] = { 0 }, tab[8] = { 0 };
  dit_tensor t = dit_tensor_2d (buf, DIT_F32, DIT_DEVICE_CPU, 4, 4);
  dit_tensor wrong = dit_tensor_2d (tab, DIT_F32, DIT_DEVICE_CPU, 4, 2);
  dit_attn_params p = { .q = &t, .k = &t, .v = &t, .o = &t, .heads = 1,
    .head_dim = 4, .scale = 1.0f, .pos_bias = &wrong, .num_buckets = 32,
    .max_distance = 128, .bidirectional = 1 };
  CHECK (dit_attention (dit_backend_cpu (), &p) == DIT_ERR_INVALID,
      "a [4,2] table for 32 buckets x 1 head must be rejected");
  CHECK (strstr (dit_last_error (), "pos_bias") != NULL, "message names "
      "pos_bias: %s", dit_last_error ());
  p.pos_bias = NULL;
  p.key_len = -1;
  CHECK (dit_attention (dit_backend_cpu (), &p) == DIT_ERR_INVALID,
      "negative key_len must be rejected");
}

/* ------------------------------------------------------------------------ */

static void
expect_clean (const char *in, const char *want)
{
  char *got = NULL;
  dit_status st = dit_text_clean (in, &got);
  CHECK (st == DIT_OK && got && strcmp (got, want) == 0,
      "clean(\"%s\") = \"%s\", want \"%s\"", in, got ? got : "(error)", want);
  free (got);
}

static void
test_clean (void)
{
  expect_clean ("", "");
  expect_clean ("   ", "");
  expect_clean ("  a\t\n b  ", "a b");
  expect_clean ("a\xc2\xa0\xe3\x80\x80" "b", "a b");          /* NBSP, U+3000 */
  expect_clean ("Tom &amp; Jerry", "Tom & Jerry");
  expect_clean ("&amp;amp;", "&");                             /* twice */
  expect_clean ("&amp;amp;amp;", "&amp;");                     /* not three times */
  expect_clean ("&lt;b&gt;", "<b>");
  expect_clean ("caf&eacute; &#233;&#xE9;", "caf\xc3\xa9 \xc3\xa9\xc3\xa9");
  expect_clean ("&#150;", "\xe2\x80\x93");                     /* Windows-1252 */
  expect_clean ("a&#0;b", "a\xef\xbf\xbd" "b");                /* U+FFFD */
  expect_clean ("a&#x7f;b", "ab");                             /* dropped */
  expect_clean ("&ampx &copy", "&x \xc2\xa9");                 /* legacy names */
  expect_clean ("&hellip &unknown;", "&hellip &unknown;");     /* kept */
  expect_clean ("a&#32;&#32;b", "a b");                        /* spaces from refs */

  char *out = NULL;
  CHECK (dit_text_clean ("bad \xff byte", &out) == DIT_ERR_INVALID,
      "0xff must be invalid UTF-8");
  CHECK (strstr (dit_last_error (), "offset 4") != NULL,
      "the message names the offset: %s", dit_last_error ());
  CHECK (dit_text_check_utf8 ("\xc0\xaf", 2) == DIT_ERR_INVALID, "overlong");
  CHECK (dit_text_check_utf8 ("\xed\xa0\x80", 3) == DIT_ERR_INVALID, "surrogate");
  CHECK (dit_text_check_utf8 ("\xe6\x97", 2) == DIT_ERR_INVALID, "cut short");
  CHECK (dit_text_check_utf8 ("\xf0\x9f\x8e\x86", 4) == DIT_OK, "emoji is valid");
}

/* ------------------------------------------------------------------------ */

static void
test_tokenizer (const char *model)
{
  dit_tokenizer *tok = NULL;
  if (dit_tokenizer_load (model, &tok) != DIT_OK) {
    CHECK (0, "load %s: %s", model, dit_last_error ());
    return;
  }
  CHECK (dit_tokenizer_vocab_size (tok) == 640, "tiny vocab %d",
      dit_tokenizer_vocab_size (tok));
  int32_t ids[512];
  int n = -1;
  CHECK (dit_tokenizer_encode (tok, "", ids, 512, &n) == DIT_OK && n == 1
      && ids[0] == DIT_TOKEN_EOS, "empty prompt -> [EOS] (n = %d)", n);
  CHECK (dit_tokenizer_encode (tok, " \t &nbsp; ", ids, 512, &n) == DIT_OK
      && n == 1, "whitespace-only prompt -> [EOS] (n = %d)", n);

  char *big = malloc (2001);
  for (int i = 0; i < 2000; i++)
    big[i] = "a fox, "[i % 7];
  big[2000] = '\0';
  CHECK (dit_tokenizer_encode (tok, big, ids, 512, &n) == DIT_OK && n == 512
      && ids[511] == DIT_TOKEN_EOS, "2,000 characters -> 512 ids ending in "
      "EOS (n = %d)", n);
  for (int i = 0; i < n - 1; i++)
    CHECK (ids[i] > DIT_TOKEN_EOS && ids[i] < 640, "id %d at %d", ids[i], i);
  int32_t ids8[8];
  CHECK (dit_tokenizer_encode (tok, big, ids8, 8, &n) == DIT_OK && n == 8
      && ids8[7] == DIT_TOKEN_EOS && memcmp (ids8, ids, 7 * sizeof (int32_t)) == 0,
      "max_ids 8 keeps the first 7 pieces and EOS");
  free (big);

  CHECK (dit_tokenizer_encode (tok, "a \xe6\x97 b", ids, 512, &n)
      == DIT_ERR_INVALID && n == 0, "invalid UTF-8 is an error");
  CHECK (dit_tokenizer_encode (tok, "x", ids, 513, &n) == DIT_ERR_INVALID,
      "max_ids above 512 is rejected");
  /* collapsing whitespace happens before SentencePiece */
  int32_t a[512], b[512];
  int na, nb;
  dit_tokenizer_encode (tok, "a koi\t\t pond", a, 512, &na);
  dit_tokenizer_encode (tok, "a koi pond", b, 512, &nb);
  CHECK (na == nb && memcmp (a, b, (size_t) na * sizeof (int32_t)) == 0,
      "whitespace runs tokenize like one space");
  dit_tokenizer_free (tok);

  CHECK (dit_tokenizer_load ("/nonexistent/spiece.model", &tok) != DIT_OK
      && strstr (dit_last_error (), "/nonexistent/spiece.model"),
      "missing model: error names the path (%s)", dit_last_error ());
}

/* ------------------------------------------------------------------------ */

static void
test_encoder (void)
{
  dit_umt5_config cfg;
  CHECK (dit_umt5_config_preset ("umt5-xxl", &cfg) == DIT_OK, "umt5-xxl preset");
  dit_param_spec *specs;
  size_t count;
  CHECK (dit_umt5_config_params (&cfg, &specs, &count) == DIT_OK, "params");
  int64_t total = 0;
  for (size_t i = 0; i < count; i++) {
    int64_t n = 1;
    for (int d = 0; d < specs[i].ndim; d++)
      n *= specs[i].shape[d];
    total += n;
  }
  free (specs);
  /* spec §6.5: 242 tensors, 5 680 910 336 parameters */
  CHECK (count == 242 && total == 5680910336LL, "umt5-xxl: %zu tensors, %lld "
      "parameters (spec: 242, 5680910336)", count, (long long) total);

  dit_weights *w = NULL;
  dit_umt5 *t5 = NULL;
  CHECK (dit_umt5_load_weights ("tiny", 0, DIT_F32, dit_backend_cpu (), &cfg, &w)
      == DIT_OK, "tiny weights: %s", dit_last_error ());
  CHECK (cfg.dim == 64 && cfg.vocab == 640, "tiny dims");
  if (!w)
    return;
  CHECK (dit_umt5_create (&cfg, w, dit_backend_cpu (), &t5) == DIT_OK,
      "create: %s", dit_last_error ());
  float out[3 * 64];
  dit_tensor to = dit_tensor_2d (out, DIT_F32, DIT_DEVICE_CPU, 3, 64);
  int32_t ids[3] = { 5, 639, 1 };
  CHECK (dit_umt5_encode (t5, ids, 3, &to) == DIT_OK, "encode 3 ids");
  int finite = 1;
  for (int i = 0; i < 3 * 64; i++)
    finite &= isfinite (out[i]) != 0;
  CHECK (finite, "finite output");
  ids[1] = 640;
  CHECK (dit_umt5_encode (t5, ids, 3, &to) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "640"), "id 640 is outside the tiny vocab");
  CHECK (dit_umt5_encode (t5, ids, 0, &to) == DIT_ERR_INVALID, "0 ids rejected");

  /* host residency: the weights copied out, w freed, each layer through
   * the one slot; the same ops on the same values give the same bits */
  ids[1] = 639;
  CHECK (dit_umt5_encode (t5, ids, 3, &to) == DIT_OK, "encode again");
  dit_umt5 *th = NULL;
  CHECK (dit_umt5_create_host_resident (&cfg, w, dit_backend_cpu (), &th)
      == DIT_OK, "host-resident create: %s", dit_last_error ());
  dit_umt5_free (t5);
  dit_weights_free (w);
  w = NULL;
  if (th) {
    float outh[3 * 64];
    dit_tensor toh = dit_tensor_2d (outh, DIT_F32, DIT_DEVICE_CPU, 3, 64);
    CHECK (dit_umt5_encode (th, ids, 3, &toh) == DIT_OK, "host-resident encode: %s",
        dit_last_error ());
    CHECK (memcmp (out, outh, sizeof out) == 0, "host-resident encode differs "
        "from the device-resident one");
    CHECK (dit_umt5_host_bytes (th) > (size_t) 640 * 64 * 4, "host bytes %zu",
        dit_umt5_host_bytes (th));
    ids[1] = 640;
    CHECK (dit_umt5_encode (th, ids, 3, &toh) == DIT_ERR_INVALID,
        "host-resident: id 640 refused");
    dit_umt5_free (th);
  }
  CHECK (dit_umt5_load_weights ("/nonexistent.safetensors", 0, DIT_F32,
      dit_backend_cpu (), &cfg, &w) != DIT_OK, "missing checkpoint");
}

/* ------------------------------------------------------------------------ */

static void
test_prompt_lists (void)
{
  dit_prompt_part *p;
  int n;
  CHECK (dit_prompt_parse ("16:9 framing, a fox", &p, &n) == DIT_OK && n == 1
      && strcmp (p[0].text, "16:9 framing, a fox") == 0 && p[0].weight == 1.0,
      "a single prompt is verbatim");
  dit_prompt_parts_free (p, n);
  CHECK (dit_prompt_parse ("a koi pond:3|a fox:1|plain", &p, &n) == DIT_OK
      && n == 3 && strcmp (p[0].text, "a koi pond") == 0
      && strcmp (p[2].text, "plain") == 0 && fabs (p[0].weight - 0.6) < 1e-12
      && fabs (p[1].weight - 0.2) < 1e-12 && fabs (p[2].weight - 0.2) < 1e-12,
      "weights 3:1:default 1 normalise to 0.6/0.2/0.2");
  dit_prompt_parts_free (p, n);
  CHECK (dit_prompt_parse ("a:0|b:0", &p, &n) == DIT_ERR_INVALID, "zero sum");
  CHECK (dit_prompt_parse ("a:-1|b", &p, &n) == DIT_ERR_INVALID, "negative");
  CHECK (dit_prompt_parse ("1|2|3|4|5|6|7|8|9", &p, &n) == DIT_ERR_INVALID,
      "more than 8 parts");

  /* blend of a 2-row and a 3-row embedding (dim 2) at weight 0.25 */
  float a[4] = { 1, 2, 3, 4 }, b[6] = { 8, 8, 8, 8, 8, 8 }, o[6];
  int no;
  dit_prompt_blend (a, 2, b, 3, 2, 0.25f, o, &no);
  const float want[6] = { 2.75f, 3.5f, 4.25f, 5.0f, 2.0f, 2.0f };
  CHECK (no == 3 && memcmp (o, want, sizeof want) == 0, "blend values");
  CHECK (dit_prompt_transition_weight (1, 4) == 0.25f
      && dit_prompt_transition_weight (3, 4) == 0.75f
      && dit_prompt_transition_weight (4, 4) == 1.0f
      && dit_prompt_transition_weight (1, 0) == 1.0f, "transition weights j/N");
}

static void
test_prompt_encoder (const char *model)
{
  dit_prompt_encoder *e = NULL;
  if (dit_prompt_encoder_create ("tiny", model, 0, 64, &e) != DIT_OK) {
    CHECK (0, "prompt encoder: %s", dit_last_error ());
    return;
  }
  float *ra, *rb, *rl;
  int na, nb, nl;
  CHECK (dit_prompt_encode (e, "a koi pond", &ra, &na) == DIT_OK, "encode a");
  CHECK (dit_prompt_encode (e, "a red fox in the snow", &rb, &nb) == DIT_OK,
      "encode b");
  CHECK (dit_prompt_encode (e, "a koi pond:1|a red fox in the snow:3", &rl, &nl)
      == DIT_OK, "encode list");
  float *want = malloc (sizeof (float) * 512 * 64);
  int nw;
  dit_prompt_blend (ra, na, rb, nb, 64, 0.75f, want, &nw);
  double err = 0.0;
  for (int i = 0; i < nw * 64; i++)
    err = fmax (err, fabs (want[i] - rl[i]));
  CHECK (nl == nw && err < 1e-5, "list = 0.25 a + 0.75 b (rows %d/%d, err %g)",
      nl, nw, err);

  /* the thread: the latest submission wins, take does not block */
  uint64_t id1 = dit_prompt_encoder_submit (e, "first");
  uint64_t id2 = dit_prompt_encoder_submit (e, "a koi pond");
  dit_prompt_encoder_wait (e, id2);
  uint64_t id;
  float *rows = NULL;
  int n;
  dit_status st;
  char err_msg[256];
  CHECK (dit_prompt_encoder_take (e, &id, &rows, &n, &st, err_msg, sizeof err_msg)
      == 1 && id == id2 && id1 < id2 && st == DIT_OK && n == na
      && memcmp (rows, ra, sizeof (float) * (size_t) na * 64) == 0,
      "async result equals the synchronous one");
  free (rows);
  CHECK (dit_prompt_encoder_take (e, &id, &rows, &n, &st, err_msg,
      sizeof err_msg) == 0, "nothing left to take");
  id = dit_prompt_encoder_submit (e, "bad \xff");
  dit_prompt_encoder_wait (e, id);
  CHECK (dit_prompt_encoder_take (e, &id, &rows, &n, &st, err_msg, sizeof err_msg)
      == 1 && st == DIT_ERR_INVALID && strstr (err_msg, "UTF-8"),
      "invalid UTF-8 comes back as an error (%s)", err_msg);
  free (ra); free (rb); free (rl); free (want);
  dit_prompt_encoder_free (e);
  CHECK (dit_prompt_encoder_create ("tiny", model, 0, 4096, &e) == DIT_ERR_INVALID,
      "a 64-wide text model for a 4096-wide DiT is refused");
}

int
main (int argc, char **argv)
{
  test_buckets ();
  test_attention_bias (37, 3, 8, 0);
  test_attention_bias (150, 2, 16, 0);    /* distances beyond 128 */
  test_attention_bias (40, 2, 8, 29);     /* padded keys masked */
  test_attention_errors ();
  test_clean ();
  test_prompt_lists ();
  if (argc > 1 && dit_tokenizer_available ()) {
    test_tokenizer (argv[1]);
    test_prompt_encoder (argv[1]);
  } else
    printf ("tokenizer part skipped (no model argument or no libsentencepiece)\n");
  test_encoder ();
  if (failures) {
    fprintf (stderr, "%d failures\n", failures);
    return 1;
  }
  printf ("text: all checks passed\n");
  return 0;
}
