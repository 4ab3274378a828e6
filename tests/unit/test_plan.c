/* test_plan — the chunk plan (model/dit_plan.h): what dit_chunk_plan_make
 * derives for each kind of chunk, what dit_chunk_plan_check refuses (one
 * case per field, message asserted), and that the generator running a
 * plan made here equals dit_generator_run_chunk bit for bit.
 *
 * Expected values come from the rule in the spec (§4.7d), written out by
 * hand here: chunk 0 has no recompute and no bias; chunk k > 0 recomputes
 * C frames block-causally in blocks of F, starts RoPE at C and biases key
 * frames [1, C) unless kv_bias = 1.
 *
 * Also the two helpers every front end uses to fill a generator config:
 * the "steps" string (dit_gen_config_parse_steps) and a model's config
 * without its weights (dit_model_config_resolve).
 */
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_loader.h"
#include "dit_plan.h"
#include "dit_scheduler.h"
#include "dit_weights.h"
#include "../common/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
test_make (void)
{
  dit_gen_config c;
  dit_schedule s;
  dit_chunk_plan p;
  dit_gen_config_default (&c);
  CHECK (dit_schedule_make (&c, &s) == DIT_OK, "schedule: %s", dit_last_error ());
  dit_scheduler sch;
  dit_scheduler_init (&sch, 5.0);
  for (int i = 0; i < 4; i++) {
    CHECK (s.t[i] == c.steps[i], "t[%d] %g", i, s.t[i]);
    CHECK (s.sigma[i] == dit_scheduler_sigma (&sch, c.steps[i]), "sigma[%d]", i);
  }

  CHECK (dit_chunk_plan_make (&c, &s, 0, 0, &p) == DIT_OK, "chunk 0");
  CHECK (!p.do_recompute && p.rope_start == 0 && p.causal_frames == 0
      && p.bias_begin == 0 && p.bias_end == 0 && p.expected_calls == 4
      && p.num_steps == 4 && p.seed == 42, "chunk 0 plan");

  CHECK (dit_chunk_plan_make (&c, &s, 5, 2, &p) == DIT_OK, "chunk 5");
  CHECK (p.do_recompute && p.rope_start == 3 && p.causal_frames == 3
      && p.bias_begin == 1 && p.bias_end == 3 && p.first_step == 2
      && p.expected_calls == 1 + 4 - 2, "chunk 5 plan: rope %d causal %d "
      "bias [%d, %d) calls %d", p.rope_start, p.causal_frames, p.bias_begin,
      p.bias_end, p.expected_calls);
  CHECK (fabsf (p.kv_bias - 0.3f) == 0.0f, "kv bias");

  c.kv_bias = 1.0f;
  CHECK (dit_chunk_plan_make (&c, &s, 1, 0, &p) == DIT_OK, "no bias");
  CHECK (p.bias_end <= p.bias_begin, "kv_bias 1 has no bias frames");

  c.kv_bias = 0.3f;
  c.context_frames = 2;
  c.frames_per_chunk = 4;
  CHECK (dit_chunk_plan_make (&c, &s, 1, 0, &p) == DIT_OK, "C 2 F 4");
  CHECK (p.rope_start == 2 && p.causal_frames == 4 && p.bias_end == 2,
      "C 2 F 4: rope %d causal %d bias end %d", p.rope_start, p.causal_frames,
      p.bias_end);

  CHECK (dit_chunk_plan_make (&c, &s, -1, 0, &p) == DIT_ERR_INVALID, "negative chunk");
  CHECK (dit_chunk_plan_make (&c, &s, 0, 4, &p) == DIT_ERR_INVALID, "first step 4");

  /* warp: the timestep fed is the warped one */
  dit_gen_config w;
  dit_gen_config_default (&w);
  w.warp_steps = 1;
  CHECK (dit_schedule_make (&w, &s) == DIT_OK, "warp schedule");
  double t, sg;
  dit_scheduler_warp (&sch, 750, &t, &sg);
  CHECK (s.t[1] == t && s.sigma[1] == sg, "warped step 1: %g %g", s.t[1], t);
}

static void
expect_refused (const dit_chunk_plan *p, int64_t k, const dit_gen_config *c,
    const dit_schedule *s, const char *what)
{
  dit_status st = dit_chunk_plan_check (p, k, c, s);
  CHECK (st == DIT_ERR_STATE && strstr (dit_last_error (), what),
      "refusal '%s': %d '%s'", what, st, dit_last_error ());
}

static void
test_check (void)
{
  dit_gen_config c;
  dit_schedule s;
  dit_chunk_plan p, q;
  dit_gen_config_default (&c);
  dit_schedule_make (&c, &s);
  for (int k = 0; k < 3; k++) {
    dit_chunk_plan_make (&c, &s, k, k == 2 ? 1 : 0, &p);
    CHECK (dit_chunk_plan_check (&p, k, &c, &s) == DIT_OK, "own plan %d: %s",
        k, dit_last_error ());
  }
  dit_chunk_plan_make (&c, &s, 1, 0, &p);
  q = p; q.expected_calls = 9;
  expect_refused (&q, 1, &c, &s, "call-count mismatch");
  q = p; q.num_steps = 3; q.expected_calls = 4;
  expect_refused (&q, 1, &c, &s, "this worker's session has 4 steps");
  q = p; q.sigmas[2] += 1e-6;
  expect_refused (&q, 1, &c, &s, "plan step 2");
  q = p; q.steps[0] = 999;
  expect_refused (&q, 1, &c, &s, "plan step 0");
  q = p; q.seed = 43;
  expect_refused (&q, 1, &c, &s, "plan seed 43");
  q = p; q.kv_bias = 0.5f;
  expect_refused (&q, 1, &c, &s, "kv bias");
  expect_refused (&p, 0, &c, &s, "has a recompute");
  q = p; q.rope_start = 2;
  expect_refused (&q, 1, &c, &s, "recomputes 3 context frames");
  q = p; q.causal_frames = 0;
  expect_refused (&q, 1, &c, &s, "causal block 0");
  q = p; q.bias_end = 4;
  expect_refused (&q, 1, &c, &s, "bias frames [1, 4)");
  dit_chunk_plan_make (&c, &s, 0, 0, &p);
  q = p; q.bias_end = 2;
  expect_refused (&q, 0, &c, &s, "without a recompute");
}

/* The generator on a plan made here = dit_generator_run_chunk, bit for
 * bit, over chunk 0 and a chunk with a recompute and a first step. */
static void
test_run_plan (void)
{
  dit_backend *be = dit_backend_cpu ();
  dit_model_config mc;
  dit_gen_config gc;
  dit_param_spec *specs = NULL;
  size_t count = 0;
  dit_weights *w = NULL;
  dit_generator *g = NULL;
  dit_model_config_preset ("tiny", &mc);
  mc.num_layers = 1;
  dit_gen_config_default (&gc);
  gc.latent_h = 4;
  gc.latent_w = 6;
  if (dit_model_config_params (&mc, &specs, &count) != DIT_OK
      || dit_weights_synthetic (specs, count, 3, DIT_F32, be, &w) != DIT_OK
      || dit_generator_create (&mc, &gc, w, be, &g) != DIT_OK) {
    CHECK (0, "generator: %s", dit_last_error ());
    free (specs);
    dit_weights_free (w);
    return;
  }
  free (specs);
  static float prompt[5 * 64], a[16 * 3 * 24], b[16 * 3 * 24], ctx[16 * 3 * 24];
  for (int i = 0; i < 5 * 64; i++)
    prompt[i] = (float) sin (0.1 * i);
  for (int i = 0; i < 16 * 3 * 24; i++)
    ctx[i] = (float) cos (0.07 * i);
  dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 5, 64);
  dit_generator_set_prompt (g, &pt);
  int64_t sh[4] = { 16, 3, 4, 6 };
  dit_tensor ta = dit_tensor_make (a, DIT_F32, DIT_DEVICE_CPU, 4, sh);
  dit_tensor tb = dit_tensor_make (b, DIT_F32, DIT_DEVICE_CPU, 4, sh);
  dit_tensor tc = dit_tensor_make (ctx, DIT_F32, DIT_DEVICE_CPU, 4, sh);
  for (int k = 0; k < 2; k++) {
    dit_chunk_request req = { .chunk_index = 4 * k, .context = k ? &tc : NULL,
      .first_step = k };
    dit_chunk_plan p;
    dit_status s1 = dit_generator_run_chunk (g, &req, &ta, NULL);
    dit_status s2 = dit_chunk_plan_make (dit_generator_config (g),
        dit_generator_schedule (g), req.chunk_index, req.first_step, &p);
    if (s2 == DIT_OK)
      s2 = dit_generator_run_plan (g, &p, &req, &tb, NULL);
    CHECK (s1 == DIT_OK && s2 == DIT_OK, "chunk %d: %s", k, dit_last_error ());
    CHECK (memcmp (a, b, sizeof a) == 0, "chunk %d: run_plan differs from "
        "run_chunk", k);
  }
  /* a plan without bias frames changes the result (the plan is used) */
  dit_chunk_request req = { .chunk_index = 1, .context = &tc };
  dit_chunk_plan p;
  dit_chunk_plan_make (dit_generator_config (g), dit_generator_schedule (g), 1,
      0, &p);
  dit_generator_run_plan (g, &p, &req, &ta, NULL);
  p.bias_begin = p.bias_end = 0;
  dit_generator_run_plan (g, &p, &req, &tb, NULL);
  CHECK (memcmp (a, b, sizeof a) != 0, "the plan's bias frames are not used");
  dit_generator_free (g);
  dit_weights_free (w);
}

static void
test_parse_steps (void)
{
  dit_gen_config c;
  static const char *bad[] = { "", "1000,,500", "1001", "-1", "abc",
    "500;250", "1000,750,", "1e9" };

  dit_gen_config_default (&c);
  CHECK (dit_gen_config_parse_steps (&c, "1000,750,500,250") == DIT_OK
      && c.num_steps == 4 && c.steps[0] == 1000 && c.steps[3] == 250,
      "the default steps");
  CHECK (dit_gen_config_parse_steps (&c, " 999.5 , 0") == DIT_OK
      && c.num_steps == 2 && c.steps[0] == 999.5 && c.steps[1] == 0,
      "spaces and fractions");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[32];
    snprintf (want, sizeof want, "'%s'", bad[i]);
    CHECK (dit_gen_config_parse_steps (&c, bad[i]) == DIT_ERR_INVALID
        && strstr (dit_last_error (), want), "steps %s accepted, or the "
        "message does not name it: %s", want, dit_last_error ());
  }
  char many[4 * (DIT_MAX_STEPS + 1) + 1] = "";
  for (int i = 0; i <= DIT_MAX_STEPS; i++)
    strcat (many, i ? ",10" : "10");
  CHECK (dit_gen_config_parse_steps (&c, many) == DIT_ERR_INVALID,
      "%d steps accepted", DIT_MAX_STEPS + 1);
}

static void
test_model_config_resolve (void)
{
  dit_model_config m, tiny, def;
  int checkpoint = -1, def_checkpoint = -1;

  CHECK (dit_model_config_preset ("tiny", &tiny) == DIT_OK, "tiny preset");
  CHECK (dit_model_config_resolve ("tiny", &m, &checkpoint) == DIT_OK
      && checkpoint == 0 && strcmp (m.name, "tiny") == 0 && m.dim == tiny.dim
      && m.num_layers == tiny.num_layers, "tiny");
  /* NULL and "" are the default model: the same status and config (the
   * default's weights need not exist for this) */
  dit_status def_st = dit_model_config_resolve (DIT_DEFAULT_MODEL, &def,
      &def_checkpoint);
  for (int i = 0; i < 2; i++)
    CHECK (dit_model_config_resolve (i ? "" : NULL, &m, &checkpoint)
        == def_st && (def_st != DIT_OK || (checkpoint == def_checkpoint
                && memcmp (&m, &def, sizeof m) == 0)),
        "%s is %s", i ? "\"\"" : "NULL", DIT_DEFAULT_MODEL);
  CHECK (dit_model_config_resolve ("wan-1.3b", &m, &checkpoint) == DIT_OK
      && checkpoint == 0 && m.dim == 1536 && m.num_layers == 30,
      "wan-1.3b: dim %d, %d layers", m.dim, m.num_layers);
  CHECK (dit_model_config_resolve ("wan-14b", &m, &checkpoint) == DIT_OK
      && m.dim == 5120 && m.num_layers == 40, "wan-14b");
  CHECK (dit_model_config_resolve ("/nonexistent/dit.safetensors", &m,
          &checkpoint) != DIT_OK
      && strstr (dit_last_error (), "/nonexistent/dit.safetensors"),
      "a missing checkpoint: %s", dit_last_error ());
}

int
main (void)
{
  test_parse_steps ();
  test_model_config_resolve ();
  test_make ();
  test_check ();
  test_run_plan ();
  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  else
    printf ("test-plan: ok\n");
  return failures ? 1 : 0;
}
