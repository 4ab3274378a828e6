/* test_tp — tensor and sequence parallelism on the CPU comm (ranks as
 * threads).
 *
 *  1. the degree rule: 1, 2, 4, 8 dividing heads and ffn; wan-14b refuses
 *     tp 3 and 5 with a message naming the heads, tiny refuses tp 4;
 *  2. shard slicing: every synthetic shard tensor equals the matching rows
 *     or columns of the single-device synthetic weights (index math written
 *     out here, independently of mesh/dit_tp.c);
 *  3. a 3-chunk rollout of `tiny` at TP 2 and of `tiny-tp` (4 heads) at
 *     TP 2 and TP 4 equals the TP 1 rollout within f32 rounding, and every
 *     rank of a mesh returns the same bits;
 *  4. sequence parallelism (Ulysses): SP 2 and SP 4 of `tiny-tp` and the
 *     hybrid SP 2 x TP 2 equal the TP 1 rollout the same way (3 chunks:
 *     recompute of the context and the kv-bias range from chunk 1 on);
 *     the SP degree rule names the heads and the tokens;
 *  5. the CPU comm's group collectives: all-to-all and group all-reduce
 *     against values written out here;
 *  6. overlap (dit_model_tp.overlap: TP halves, SP k/v before q and
 *     attention in head halves): every layout above runs with overlap on
 *     and off; both equal TP 1 as in 3-4 and each other bit for bit (the
 *     CPU comm is synchronous and the overlapped order runs the same ops
 *     on the same data).
 * The latent is 4 x 8 (8 tokens per frame, 24 per chunk) so that SP 4
 * splits every forward evenly and a rank's rows straddle a frame.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_backend.h"
#include "dit_generator.h"
#include "dit_tp.h"
#include "../common/check.h"
#include "../common/test_random.h"

#define CHUNKS 3

static void
gen_config (dit_gen_config *g)
{
  dit_gen_config_default (g);
  g->latent_h = 4;
  g->latent_w = 8;
  g->seed = 7;
}

static int64_t
latent_numel (const dit_gen_config *g, int frames)
{
  return 16LL * frames * g->latent_h * g->latent_w;
}

static void
fill_prompt (float *p, int64_t n)
{
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int64_t i = 0; i < n; i++)
    p[i] = (float) (lcg64_unit (&s) - 0.5);
}

typedef struct rollout {
  const dit_model_config *cfg;
  int degree, sp;         /* tensor- and sequence-parallel degrees */
  int overlap;            /* dit_model_tp.overlap */
  dit_comm *comm;
  float *out;             /* CHUNKS x latent */
  dit_status status;
  char err[512];
} rollout;

static void *
run_rollout (void *arg)
{
  rollout *r = arg;
  dit_backend *be = dit_backend_cpu ();
  dit_gen_config g;
  gen_config (&g);
  dit_weights *w = NULL;
  dit_generator *gen = NULL;
  dit_model_tp tp;
  dit_mesh_groups groups = { 0 };
  const int64_t n = latent_numel (&g, 3);
  float prompt[7 * 64];
  dit_status st;

  if (r->comm) {
    st = dit_mesh_groups_create (r->comm, r->sp, r->degree, &groups, &tp);
    tp.overlap = r->overlap;
    if (st == DIT_OK)
      st = dit_tp_weights_synthetic (r->cfg, r->degree, groups.tp_rank, 11,
          DIT_F32, be, &w);
    if (st == DIT_OK)
      st = dit_generator_create_tp (r->cfg, &g, w, be, &tp, &gen);
  } else {
    dit_param_spec *specs;
    size_t count;
    st = dit_model_config_params (r->cfg, &specs, &count);
    if (st == DIT_OK) {
      st = dit_weights_synthetic (specs, count, 11, DIT_F32, be, &w);
      free (specs);
    }
    if (st == DIT_OK)
      st = dit_generator_create (r->cfg, &g, w, be, &gen);
  }
  fill_prompt (prompt, 7 * r->cfg->text_dim);
  dit_tensor pt = dit_tensor_2d (prompt, DIT_F32, DIT_DEVICE_CPU, 7, r->cfg->text_dim);
  if (st == DIT_OK)
    st = dit_generator_set_prompt (gen, &pt);
  for (int k = 0; k < CHUNKS && st == DIT_OK; k++) {
    int64_t shape[4] = { 16, 3, g.latent_h, g.latent_w };
    dit_tensor out = dit_tensor_make (r->out + k * n, DIT_F32, DIT_DEVICE_CPU, 4, shape);
    dit_tensor ctx;
    dit_chunk_request req = { .chunk_index = k };
    if (k > 0) {
      ctx = dit_tensor_make (r->out + (k - 1) * n, DIT_F32, DIT_DEVICE_CPU, 4, shape);
      req.context = &ctx;
    }
    st = dit_generator_run_chunk (gen, &req, &out, NULL);
  }
  r->status = st;
  if (st != DIT_OK)
    snprintf (r->err, sizeof r->err, "%s", dit_last_error ());
  dit_generator_free (gen);
  dit_weights_free (w);
  dit_mesh_groups_free (&groups);
  return NULL;
}

/* The mesh of sp x degree ranks (threads on a local CPU comm) with
 * overlap on or off; outputs[r] receives rank r's rollout.  0 on success. */
static int
run_mesh (const dit_model_config *cfg, int sp, int degree, int overlap,
    int64_t n, rollout *rk)
{
  const int ranks = sp * degree;
  dit_comm *comms[8];
  pthread_t th[8];
  if (dit_comm_cpu_create_local (ranks, 20000, comms) != DIT_OK) {
    CHECK (0, "local comm: %s", dit_last_error ());
    return -1;
  }
  for (int r = 0; r < ranks; r++) {
    rk[r] = (rollout) { .cfg = cfg, .degree = degree, .sp = sp,
      .overlap = overlap, .comm = comms[r], .out = calloc ((size_t) n, 4) };
    pthread_create (&th[r], NULL, run_rollout, &rk[r]);
  }
  for (int r = 0; r < ranks; r++)
    pthread_join (th[r], NULL);
  for (int r = 0; r < ranks; r++)
    dit_comm_destroy (comms[r]);
  return 0;
}

static void
check_mesh (const char *preset, const char *name, const rollout *ref,
    const rollout *rk, int ranks, int64_t n)
{
  double maxref = 0.0, maxdiff = 0.0;
  for (int64_t i = 0; i < n; i++) {
    maxref = fmax (maxref, fabs (ref->out[i]));
    maxdiff = fmax (maxdiff, fabs ((double) rk[0].out[i] - ref->out[i]));
  }
  double d2 = 0.0, r2 = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double) rk[0].out[i] - ref->out[i];
    d2 += d * d;
    r2 += (double) ref->out[i] * ref->out[i];
  }
  const double rel = sqrt (d2 / (r2 > 0 ? r2 : 1));
  for (int r = 0; r < ranks; r++) {
    CHECK (rk[r].status == DIT_OK, "%s %s rank %d: %s", preset, name, r,
        rk[r].err);
    CHECK (memcmp (rk[r].out, rk[0].out, (size_t) n * 4) == 0,
        "%s %s: rank %d output differs from rank 0", preset, name, r);
  }
  /* f32 rounding: partial GEMM sums and norm statistics are added in a
   * different order (TP), GEMMs run on fewer rows (SP), and 3 chunks x 4
   * steps compound it. */
  CHECK (maxref > 0.1 && maxdiff <= 2e-5 * maxref && rel <= 1e-5,
      "%s %s vs TP 1: max |diff| %.3g (max |ref| %.3g), relative L2 %.3g",
      preset, name, maxdiff, maxref, rel);
  printf ("%s %s vs TP 1 over %d chunks: max |diff| %.3g, max |ref| %.3g, "
      "relative L2 %.3g\n", preset, name, CHUNKS, maxdiff, maxref, rel);
}

static void
test_rollout_layout (const char *preset, int sp, int degree)
{
  const int ranks = sp * degree;
  char name[32], name_off[48];
  if (sp > 1 && degree > 1)
    snprintf (name, sizeof name, "SP %d x TP %d", sp, degree);
  else if (sp > 1)
    snprintf (name, sizeof name, "SP %d", sp);
  else
    snprintf (name, sizeof name, "TP %d", degree);
  snprintf (name_off, sizeof name_off, "%s overlap off", name);
  dit_model_config cfg;
  dit_gen_config g;
  gen_config (&g);
  if (dit_model_config_preset (preset, &cfg) != DIT_OK) {
    CHECK (0, "preset %s: %s", preset, dit_last_error ());
    return;
  }
  const int64_t n = latent_numel (&g, 3) * CHUNKS;
  rollout ref = { .cfg = &cfg, .degree = 1, .out = calloc ((size_t) n, 4) };
  run_rollout (&ref);
  CHECK (ref.status == DIT_OK, "%s TP 1: %s", preset, ref.err);

  rollout on[8], off[8];
  if (run_mesh (&cfg, sp, degree, 1, n, on) == 0) {
    check_mesh (preset, name, &ref, on, ranks, n);
    if (run_mesh (&cfg, sp, degree, 0, n, off) == 0) {
      check_mesh (preset, name_off, &ref, off, ranks, n);
      CHECK (memcmp (on[0].out, off[0].out, (size_t) n * 4) == 0,
          "%s %s: overlap on and off differ", preset, name);
      for (int r = 0; r < ranks; r++)
        free (off[r].out);
    }
    for (int r = 0; r < ranks; r++)
      free (on[r].out);
  }
  free (ref.out);
}

static void
test_rollout (const char *preset, int degree)
{
  test_rollout_layout (preset, 1, degree);
}

/* SP: heads and tokens named; the tiny preset (2 heads) refuses SP 4. */
static void
test_sp_degree_rule (void)
{
  dit_model_config c;
  dit_model_config_preset ("wan-14b", &c);
  const int64_t chunk[1] = { 2160 };
  for (int sp = 2; sp <= 8; sp++) {
    dit_status st = dit_model_sp_check (&c, sp, 1, chunk, 1);
    if (sp == 2 || sp == 4 || sp == 5 || sp == 8)
      CHECK (st == DIT_OK, "wan-14b sp %d refused: %s", sp, dit_last_error ());
    else
      CHECK (st != DIT_OK && strstr (dit_last_error (), "40 heads"),
          "wan-14b sp %d: '%s'", sp, st == DIT_OK ? "accepted" : dit_last_error ());
  }
  const int64_t odd[1] = { 2161 };
  CHECK (dit_model_sp_check (&c, 2, 1, odd, 1) != DIT_OK
      && strstr (dit_last_error (), "2161 tokens")
      && strstr (dit_last_error (), "40 heads"), "wan-14b sp 2 of 2161 tokens");
  CHECK (dit_model_sp_check (&c, 4, 4, chunk, 1) != DIT_OK,
      "wan-14b sp 4 x tp 4 (16 does not divide 40 heads) accepted");
  dit_model_config_preset ("tiny", &c);
  const int64_t t24[1] = { 24 };
  CHECK (dit_model_sp_check (&c, 4, 1, t24, 1) != DIT_OK
      && strstr (dit_last_error (), "2 heads"), "tiny sp 4: '%s'",
      dit_last_error ());
  CHECK (dit_model_sp_check (&c, 2, 1, t24, 1) == DIT_OK, "tiny sp 2");
  /* the generator checks its chunk and context: 3 frames of 6 tokens
   * (latent 4 x 6) do not split 4 ways */
  dit_model_config_preset ("tiny-tp", &c);
  dit_gen_config g;
  gen_config (&g);
  g.latent_w = 6;
  dit_param_spec *specs;
  size_t count;
  dit_weights *w = NULL;
  dit_generator *gen = NULL;
  dit_model_config_params (&c, &specs, &count);
  dit_weights_synthetic (specs, count, 11, DIT_F32, dit_backend_cpu (), &w);
  free (specs);
  dit_comm *comms[4];
  dit_comm_cpu_create_local (4, 1000, comms);
  dit_model_tp tp;
  dit_mesh_groups groups;
  CHECK (dit_mesh_groups_create (comms[0], 4, 1, &groups, &tp) == DIT_OK,
      "groups: %s", dit_last_error ());
  CHECK (dit_generator_create_tp (&c, &g, w, dit_backend_cpu (), &tp, &gen)
      != DIT_OK && strstr (dit_last_error (), "18 tokens")
      && strstr (dit_last_error (), "4 heads"),
      "tiny-tp sp 4 of 18-token chunks: '%s'", gen ? "accepted" : dit_last_error ());
  dit_generator_free (gen);
  dit_mesh_groups_free (&groups);
  dit_weights_free (w);
  for (int r = 0; r < 4; r++)
    dit_comm_destroy (comms[r]);
}

/* The CPU comm's all-to-all and group all-reduce on 4 ranks (threads);
 * the all-to-all and the TP-group all-reduce through the overlap entries
 * (start, then wait: on the CPU comm complete at start), and a slot out of
 * range refused. */
typedef struct coll_arg {
  dit_comm *comm;
  float send[8], recv[8], red[2], red_tp[2];
  dit_status st, bad_slot;
} coll_arg;

static void *
run_collectives (void *arg)
{
  coll_arg *a = arg;
  const int r = a->comm->rank;
  dit_comm *tpv = NULL, *spv = NULL;
  for (int j = 0; j < 8; j++)
    a->send[j] = (float) (100 * r + j);   /* block j (2 floats) for rank j/2 */
  a->red[0] = a->red_tp[0] = (float) (r + 1);
  a->red[1] = a->red_tp[1] = (float) (10 * (r + 1));
  a->st = dit_comm_alltoall_start (a->comm, a->send, a->recv,
      2 * sizeof (float), 1);
  if (a->st == DIT_OK)
    a->st = dit_comm_wait (a->comm, 1);
  a->bad_slot = dit_comm_wait (a->comm, DIT_COMM_SLOTS);
  if (a->st == DIT_OK)
    a->st = dit_comm_group_view (a->comm, 2, 2, &spv);
  if (a->st == DIT_OK)
    a->st = dit_comm_group_view (a->comm, 2, 1, &tpv);
  if (a->st == DIT_OK)
    a->st = dit_comm_allreduce_sum (spv, a->red, 2, DIT_F32);
  if (a->st == DIT_OK)
    a->st = dit_comm_allreduce_start (tpv, a->red_tp, 2, DIT_F32, 0);
  if (a->st == DIT_OK)
    a->st = dit_comm_wait (tpv, 0);
  dit_comm_destroy (tpv);
  dit_comm_destroy (spv);
  return NULL;
}

static void
test_collectives (void)
{
  dit_comm *comms[4];
  coll_arg a[4];
  pthread_t th[4];
  if (dit_comm_cpu_create_local (4, 5000, comms) != DIT_OK) {
    CHECK (0, "local comm: %s", dit_last_error ());
    return;
  }
  for (int r = 0; r < 4; r++) {
    a[r] = (coll_arg) { .comm = comms[r] };
    pthread_create (&th[r], NULL, run_collectives, &a[r]);
  }
  for (int r = 0; r < 4; r++)
    pthread_join (th[r], NULL);
  for (int r = 0; r < 4; r++) {
    CHECK (a[r].st == DIT_OK, "rank %d collectives: %s", r, dit_last_error ());
    CHECK (a[r].bad_slot == DIT_ERR_INVALID, "rank %d: wait on slot %d "
        "returned %d, want DIT_ERR_INVALID", r, DIT_COMM_SLOTS,
        (int) a[r].bad_slot);
    /* block j of rank r's receive buffer = block r of rank j's send */
    for (int j = 0; j < 4; j++)
      for (int e = 0; e < 2; e++)
        CHECK (a[r].recv[2 * j + e] == (float) (100 * j + 2 * r + e),
            "all-to-all rank %d block %d[%d] = %g", r, j, e,
            a[r].recv[2 * j + e]);
    /* SP groups {0, 2}, {1, 3}; TP groups {0, 1}, {2, 3} */
    int sp_peer = r ^ 2, tp_peer = r ^ 1;
    CHECK (a[r].red[0] == (float) (r + 1 + sp_peer + 1)
        && a[r].red[1] == (float) (10 * (r + 1 + sp_peer + 1)),
        "rank %d SP-group all-reduce = %g, %g", r, a[r].red[0], a[r].red[1]);
    CHECK (a[r].red_tp[0] == (float) (r + 1 + tp_peer + 1),
        "rank %d TP-group all-reduce = %g", r, a[r].red_tp[0]);
  }
  for (int r = 0; r < 4; r++)
    dit_comm_destroy (comms[r]);
}

static void
test_degree_rule (void)
{
  dit_model_config c;
  dit_model_config_preset ("wan-14b", &c);
  CHECK (dit_model_tp_check (&c, 2) == DIT_OK, "wan-14b tp 2");
  CHECK (dit_model_tp_check (&c, 4) == DIT_OK, "wan-14b tp 4");
  CHECK (dit_model_tp_check (&c, 8) == DIT_OK, "wan-14b tp 8");
  CHECK (dit_model_tp_check (&c, 3) != DIT_OK
      && strstr (dit_last_error (), "40 heads")
      && strstr (dit_last_error (), "13824"), "wan-14b tp 3: '%s'",
      dit_last_error ());
  CHECK (dit_model_tp_check (&c, 5) != DIT_OK, "wan-14b tp 5 accepted");
  CHECK (dit_model_tp_check (&c, 16) != DIT_OK, "wan-14b tp 16 accepted");
  dit_model_config_preset ("tiny", &c);
  CHECK (dit_model_tp_check (&c, 4) != DIT_OK, "tiny (2 heads) tp 4 accepted");
  dit_param_spec *s;
  dit_tp_slice *sl;
  size_t n;
  CHECK (dit_tp_shard_specs (&c, 3, 0, &s, &sl, &n) != DIT_OK,
      "tiny shard plan for tp 3 accepted");
}

static void
test_slices (void)
{
  dit_model_config c;
  dit_param_spec *specs;
  size_t count;
  dit_weights *full = NULL, *shard = NULL;
  dit_backend *be = dit_backend_cpu ();
  dit_model_config_preset ("tiny-tp", &c);
  dit_model_config_params (&c, &specs, &count);
  CHECK (dit_weights_synthetic (specs, count, 5, DIT_F32, be, &full) == DIT_OK,
      "full: %s", dit_last_error ());
  const int tp = 4, rank = 2;
  CHECK (dit_tp_weights_synthetic (&c, tp, rank, 5, DIT_F32, be, &shard) == DIT_OK,
      "shard: %s", dit_last_error ());
  if (!full || !shard)
    return;
  const int64_t D = c.dim, F = c.ffn_dim, Dl = D / tp, Fl = F / tp;
  struct { const char *name; int kind; int64_t rows, cols, width; } cases[] = {
    { "blocks.1.self_attn.q.weight", 'R', Dl, D, Dl },
    { "blocks.1.self_attn.v.bias", 'R', Dl, 1, Dl },
    { "blocks.0.self_attn.norm_k.weight", 'R', Dl, 1, Dl },
    { "blocks.0.cross_attn.k.weight", 'R', Dl, D, Dl },
    { "blocks.0.ffn.0.weight", 'R', Fl, D, Fl },
    { "blocks.0.ffn.0.bias", 'R', Fl, 1, Fl },
    { "blocks.1.self_attn.o.weight", 'C', D, Dl, Dl },
    { "blocks.1.cross_attn.o.weight", 'C', D, Dl, Dl },
    { "blocks.0.ffn.2.weight", 'C', D, Fl, Fl },
    { "blocks.0.ffn.2.bias", 'N', D, 1, 0 },
    { "blocks.0.self_attn.o.bias", 'N', D, 1, 0 },
    { "blocks.0.norm3.weight", 'N', D, 1, 0 },
    { "head.head.weight", 'N', 64, D, 0 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const dit_tensor *a = dit_weights_get (full, cases[i].name);
    const dit_tensor *b = dit_weights_get (shard, cases[i].name);
    CHECK (a && b, "%s missing", cases[i].name);
    if (!a || !b)
      continue;
    CHECK (dit_tensor_numel (b) == cases[i].rows * cases[i].cols,
        "%s: shard has %lld elements", cases[i].name, (long long) dit_tensor_numel (b));
    const float *fa = a->data, *fb = b->data;
    int64_t fullcols = cases[i].kind == 'C' ? cases[i].cols * tp : cases[i].cols;
    int bad = 0;
    for (int64_t r = 0; r < cases[i].rows && !bad; r++)
      for (int64_t k = 0; k < cases[i].cols && !bad; k++) {
        int64_t fr = cases[i].kind == 'R' ? r + rank * cases[i].width : r;
        int64_t fc = cases[i].kind == 'C' ? k + rank * cases[i].width : k;
        if (fb[r * cases[i].cols + k] != fa[fr * fullcols + fc])
          bad = 1;
      }
    CHECK (!bad, "%s: shard values are not the rank-%d slice", cases[i].name, rank);
  }
  free (specs);
  dit_weights_free (full);
  dit_weights_free (shard);
}

int
main (void)
{
  test_degree_rule ();
  test_slices ();
  test_rollout ("tiny", 2);
  test_rollout ("tiny-tp", 2);
  test_rollout ("tiny-tp", 4);
  test_collectives ();
  test_sp_degree_rule ();
  test_rollout_layout ("tiny", 2, 1);
  test_rollout_layout ("tiny-tp", 2, 1);
  test_rollout_layout ("tiny-tp", 4, 1);
  test_rollout_layout ("tiny-tp", 2, 2);
  if (failures)
    fprintf (stderr, "%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
