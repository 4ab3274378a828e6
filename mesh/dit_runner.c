/* dit_runner — the in-process generator or the generator mesh (see
 * dit_runner.h). */
#include "dit_runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_mesh.h"

#define RUNNER_X0_CHECK_EVERY 32

struct dit_runner {
  dit_runner_config cfg;
  dit_backend *be;
  dit_generator *gen;           /* in process */
  dit_mesh *mesh;               /* or the mesh */
  dit_mesh_spec spec;           /* the mesh's, kept: its config points here */
  dit_schedule sched;
  dit_tensor x0;                /* [16, F, h, w] f32 on be */
  int64_t chunk_index;          /* of the chunk submitted, -1 none */
  dit_chunk_timing timing;      /* in process: of the chunk run by submit */
  dit_host_copies before;
  dit_runner_stats stats;
  int shut;
  dit_lora_set *lora;           /* in process: the applied LoRAs */
  dit_lora_spec lora_spec;      /* the applied list (both paths) */
};

void
dit_runner_config_default (dit_runner_config *c)
{
  memset (c, 0, sizeof *c);
  dit_model_config_preset ("tiny", &c->model);
  dit_gen_config_default (&c->gen);
  c->fused = 1;
  c->gemm_fold = 1;
  c->preset = "tiny";
  c->lora_mode = DIT_LORA_MERGE;
  c->lora_keep_base = 1;
}

static dit_status
runner_start_mesh (dit_runner *r)
{
  const dit_runner_config *c = &r->cfg;
  dit_mesh_config mc;
  DIT_TRY (dit_mesh_spec_check_model (&r->spec, &c->model));
  dit_mesh_config_default (&mc);
  dit_mesh_spec_apply (&r->spec, &mc);
  mc.preset = c->preset;
  mc.weights = c->mesh_weights;
  mc.synthetic_seed = c->synthetic_seed;
  mc.gen = c->gen;
  mc.layers = c->layers;
  mc.worker_args = c->worker_args;
  /* The data plane: NCCL from the runner's stream on its GPU when no
   * worker shares it, else the CPU comm (dit_mesh_config.world_backend);
   * device tensors are staged through this backend either way. */
  mc.world_backend = dit_backend_device (r->be) == DIT_DEVICE_CUDA ? r->be : NULL;
  mc.x0_check_every = c->x0_check_every > 0 ? c->x0_check_every
      : RUNNER_X0_CHECK_EVERY;
  DIT_TRY (dit_mesh_create (&mc, &r->mesh));
  r->stats.ranks = mc.ranks;
  r->stats.layout = mc.layout;
  for (int i = 0; i < mc.ranks; i++)
    r->stats.pids[i] = dit_mesh_worker_pid (r->mesh, i);
  return DIT_OK;
}

dit_status
dit_runner_create (const dit_runner_config *cfg, dit_backend *be,
    dit_runner **out)
{
  *out = NULL;
  if (!be)
    return dit_error (DIT_ERR_INVALID, "runner: no backend");
  DIT_TRY (dit_gen_config_validate (&cfg->gen, &cfg->model));
  dit_runner *r = calloc (1, sizeof *r);
  if (!r)
    return dit_error (DIT_ERR_NOMEM, "runner: out of memory");
  r->cfg = *cfg;
  r->be = be;
  r->chunk_index = -1;
  if (cfg->mesh)
    r->spec = *cfg->mesh;
  r->cfg.mesh = NULL;           /* the copy in r->spec is the one used */
  int64_t shape[4] = { 16, cfg->gen.frames_per_chunk,
    cfg->gen.latent_h, cfg->gen.latent_w };
  dit_status st = dit_schedule_make (&cfg->gen, &r->sched);
  if (st == DIT_OK)
    st = dit_tensor_alloc (be, &r->x0, DIT_F32, 4, shape);
  if (st == DIT_OK && r->spec.ranks > 0) {
    st = runner_start_mesh (r);
  } else if (st == DIT_OK) {
    if (!cfg->weights)
      st = dit_error (DIT_ERR_INVALID, "runner: no DiT weights for the "
          "in-process generator");
    if (st == DIT_OK)
      st = dit_generator_create (&cfg->model, &cfg->gen, cfg->weights, be,
          &r->gen);
    if (st == DIT_OK) {
      dit_generator_set_graphs (r->gen, cfg->graphs);
      dit_generator_set_fused (r->gen, cfg->fused);
      dit_generator_set_gemm_fold (r->gen, cfg->gemm_fold);
    }
  }
  if (st != DIT_OK) {
    char msg[1100];
    snprintf (msg, sizeof msg, "%s", dit_last_error ());
    r->shut = 1;
    dit_runner_free (r);
    return dit_error (st, "%s", msg);
  }
  *out = r;
  return DIT_OK;
}

dit_status
dit_runner_shutdown (dit_runner *r)
{
  if (!r->mesh || r->shut)
    return DIT_OK;
  r->shut = 1;
  return dit_mesh_shutdown (r->mesh);
}

void
dit_runner_free (dit_runner *r)
{
  if (!r)
    return;
  if (r->mesh) {
    /* A clean SHUTDOWN lets remote workers exit 0; a failed mesh refuses
     * it, and dit_mesh_free kills and reaps whatever is left. */
    dit_runner_shutdown (r);
    dit_mesh_free (r->mesh);
  }
  dit_generator_free (r->gen);
  /* merged LoRAs leave the weights as they were loaded (they outlive the
   * runner: a session's, a new runner's after a seed change) */
  if (r->lora && r->cfg.lora_keep_base) {
    dit_lora_spec none = { 0 };
    dit_lora_set_update (r->lora, &none);
  }
  dit_lora_set_free (r->lora);
  dit_tensor_free (r->be, &r->x0);
  free (r);
}

dit_status
dit_runner_set_prompt (dit_runner *r, const dit_tensor *embeds)
{
  if (r->mesh)
    return dit_mesh_set_prompt (r->mesh, embeds);
  return dit_generator_set_prompt (r->gen, embeds);
}

static dit_status
runner_set_lora_in_process (dit_runner *r, const dit_lora_spec *spec)
{
  if (!r->lora) {
    if (spec->count == 0)
      return DIT_OK;
    DIT_TRY (dit_lora_set_create (r->cfg.weights, &r->cfg.model,
        r->cfg.lora_mode, r->cfg.lora_keep_base, NULL, &r->lora));
  }
  DIT_TRY (dit_lora_set_update (r->lora, spec));
  return dit_generator_set_lora (r->gen, dit_lora_set_state (r->lora));
}

dit_status
dit_runner_set_lora (dit_runner *r, const dit_lora_spec *spec)
{
  if (r->chunk_index >= 0)
    return dit_error (DIT_ERR_STATE, "runner: LoRAs change between chunks "
        "(chunk %lld is in flight)", (long long) r->chunk_index);
  if (r->mesh)
    DIT_TRY (dit_mesh_set_lora (r->mesh, r->cfg.lora_mode, spec));
  else
    DIT_TRY (runner_set_lora_in_process (r, spec));
  r->lora_spec = *spec;
  return DIT_OK;
}

const dit_lora_spec *
dit_runner_lora (const dit_runner *r)
{
  return &r->lora_spec;
}

uint64_t
dit_runner_lora_digest (const dit_runner *r)
{
  if (r->mesh)
    return dit_mesh_lora_digest (r->mesh);
  return r->lora ? dit_lora_set_digest_of (r->lora) : 0;
}

void
dit_runner_reset (dit_runner *r)
{
  /* Workers keep no stream state: chunk 0 runs without a cache and every
   * later chunk rebuilds it from the request's context, so the epoch bump
   * (which drops results of older calls) is all they need. */
  if (r->mesh)
    dit_mesh_bump_epoch (r->mesh);
  else if (r->gen)
    dit_generator_reset (r->gen);
}

dit_status
dit_runner_submit (dit_runner *r, const dit_chunk_request *req)
{
  dit_chunk_plan plan;
  if (r->chunk_index >= 0)
    return dit_error (DIT_ERR_STATE, "runner: chunk %lld is still in flight",
        (long long) r->chunk_index);
  dit_host_copies_get (&r->before);
  DIT_TRY (dit_chunk_plan_make (&r->cfg.gen, &r->sched, req->chunk_index,
      req->first_step, &plan));
  if (r->mesh)
    DIT_TRY (dit_mesh_submit_plan (r->mesh, &plan, req, NULL));
  else   /* in process the chunk runs now; collect hands it over */
    DIT_TRY (dit_generator_run_plan (r->gen, &plan, req, &r->x0, &r->timing));
  r->chunk_index = req->chunk_index;
  return DIT_OK;
}

dit_status
dit_runner_collect (dit_runner *r, dit_tensor *x0, dit_chunk_timing *timing)
{
  if (r->chunk_index < 0)
    return dit_error (DIT_ERR_STATE, "runner: no chunk in flight");
  r->chunk_index = -1;
  if (r->mesh) {
    dit_mesh_stats ms;
    dit_chunk_timing tm = { 0 };
    DIT_TRY (dit_mesh_collect (r->mesh, &r->x0, &tm, NULL));
    dit_mesh_get_stats (r->mesh, &ms);
    memcpy (r->stats.rank_ms, ms.last_rank_ms, sizeof r->stats.rank_ms);
    memcpy (r->stats.allreduce_ms, ms.last_allreduce_ms,
        sizeof r->stats.allreduce_ms);
    memcpy (r->stats.exposed_ms, ms.last_exposed_ms,
        sizeof r->stats.exposed_ms);
    r->stats.world_nccl = ms.world_nccl;
    r->stats.colocated = ms.colocated;
    r->timing = tm;
  }
  dit_host_copies now;
  dit_host_copies_get (&now);
  r->stats.last_copies.uploads = now.uploads - r->before.uploads;
  r->stats.last_copies.downloads = now.downloads - r->before.downloads;
  r->stats.last_copies.upload_bytes = now.upload_bytes - r->before.upload_bytes;
  r->stats.last_copies.download_bytes = now.download_bytes
      - r->before.download_bytes;
  r->stats.chunks++;
  if (timing)
    *timing = r->timing;
  *x0 = r->x0;
  return DIT_OK;
}

dit_status
dit_runner_run_chunk (dit_runner *r, const dit_chunk_request *req,
    dit_tensor *x0, dit_chunk_timing *timing)
{
  DIT_TRY (dit_runner_submit (r, req));
  return dit_runner_collect (r, x0, timing);
}

dit_status
dit_runner_idle (dit_runner *r)
{
  return r->mesh ? dit_mesh_ping (r->mesh) : DIT_OK;
}

dit_backend *
dit_runner_backend (const dit_runner *r)
{
  return r->be;
}

int
dit_runner_is_mesh (const dit_runner *r)
{
  return r->mesh != NULL;
}

dit_generator *
dit_runner_generator (dit_runner *r)
{
  return r->gen;
}

void
dit_runner_get_stats (const dit_runner *r, dit_runner_stats *out)
{
  *out = r->stats;
}

void
dit_overlap_reset (dit_overlap *o)
{
  memset (o, 0, sizeof *o);
}

static double
overlap_median (const double *v, unsigned n)
{
  double t[DIT_OVERLAP_WINDOW];
  memcpy (t, v, n * sizeof *v);
  for (unsigned i = 1; i < n; i++)
    for (unsigned j = i; j > 0 && t[j - 1] > t[j]; j--) {
      double x = t[j];
      t[j] = t[j - 1];
      t[j - 1] = x;
    }
  return n ? (n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])) : 0.0;
}

void
dit_overlap_add (dit_overlap *o, double stage0, double stage1, double period)
{
  double hidden = stage0 + stage1 - period;
  unsigned i = o->n % DIT_OVERLAP_WINDOW, n;
  o->stage0_ms = stage0;
  o->stage1_ms = stage1;
  o->period_ms = period;
  o->hidden_ms = hidden > 0.0 ? hidden : 0.0;
  o->ring[0][i] = o->hidden_ms;
  o->ring[1][i] = stage0;
  o->ring[2][i] = stage1;
  o->n++;
  n = o->n < DIT_OVERLAP_WINDOW ? o->n : DIT_OVERLAP_WINDOW;
  double m0 = overlap_median (o->ring[1], n), m1 = overlap_median (o->ring[2], n);
  double mn = m0 < m1 ? m0 : m1;
  o->score = mn > 0 ? overlap_median (o->ring[0], n) / mn : 0.0;
}
