/* dit_tp — tensor-parallel shard plan and shard loading (see dit_tp.h). */
#include "dit_tp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which split a parameter gets (names of spec §3.2). */
static dit_tp_split
tp_split_of (const char *name, int *ffn)
{
  static const char *const rows[] = {
    ".self_attn.q.weight", ".self_attn.q.bias", ".self_attn.k.weight",
    ".self_attn.k.bias", ".self_attn.v.weight", ".self_attn.v.bias",
    ".self_attn.norm_q.weight", ".self_attn.norm_k.weight",
    ".cross_attn.q.weight", ".cross_attn.q.bias", ".cross_attn.k.weight",
    ".cross_attn.k.bias", ".cross_attn.v.weight", ".cross_attn.v.bias",
    ".cross_attn.norm_q.weight", ".cross_attn.norm_k.weight",
  };
  *ffn = 0;
  if (strncmp (name, "blocks.", 7) != 0)
    return DIT_TP_REPLICATED;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    if (dit_str_ends_with (name, rows[i]))
      return DIT_TP_ROWS;
  if (dit_str_ends_with (name, ".ffn.0.weight")
      || dit_str_ends_with (name, ".ffn.0.bias")) {
    *ffn = 1;
    return DIT_TP_ROWS;
  }
  if (dit_str_ends_with (name, ".self_attn.o.weight")
      || dit_str_ends_with (name, ".cross_attn.o.weight"))
    return DIT_TP_COLS;
  if (dit_str_ends_with (name, ".ffn.2.weight")) {
    *ffn = 1;
    return DIT_TP_COLS;
  }
  return DIT_TP_REPLICATED;
}

dit_status
dit_tp_shard_specs (const dit_model_config *cfg, int degree, int rank,
    dit_param_spec **specs_out, dit_tp_slice **slices_out, size_t *count_out)
{
  dit_param_spec *specs = NULL;
  size_t count = 0;
  *specs_out = NULL;
  *slices_out = NULL;
  *count_out = 0;
  DIT_TRY (dit_model_tp_check (cfg, degree));
  if (rank < 0 || rank >= degree)
    return dit_error (DIT_ERR_INVALID, "tensor-parallel rank %d outside 0..%d",
        rank, degree - 1);
  DIT_TRY (dit_model_config_params (cfg, &specs, &count));
  dit_tp_slice *slices = calloc (count + 1, sizeof *slices);
  if (!slices) {
    free (specs);
    return dit_error (DIT_ERR_NOMEM, "tensor parallel: out of memory");
  }
  const int64_t Dl = (int64_t) cfg->dim / degree, Fl = (int64_t) cfg->ffn_dim / degree;
  for (size_t i = 0; i < count; i++) {
    dit_param_spec *s = &specs[i];
    dit_tp_slice *sl = &slices[i];
    int ffn;
    sl->full = *s;
    sl->split = degree > 1 ? tp_split_of (s->name, &ffn) : DIT_TP_REPLICATED;
    int64_t width = ffn ? Fl : Dl;
    int dim = sl->split == DIT_TP_COLS ? 1 : 0;
    if (sl->split == DIT_TP_REPLICATED)
      continue;
    if (s->ndim <= dim || s->shape[dim] != width * degree) {
      free (specs);
      free (slices);
      return dit_error (DIT_ERR_INVALID,
          "tensor parallel: '%s' dim %d is %lld, expected %lld to split %d ways",
          s->name, dim, (long long) (s->ndim > dim ? s->shape[dim] : -1),
          (long long) (width * degree), degree);
    }
    sl->begin = width * rank;
    sl->count = width;
    s->shape[dim] = width;
  }
  *specs_out = specs;
  *slices_out = slices;
  *count_out = count;
  return DIT_OK;
}

/* ---- filling shard tensors ---------------------------------------------- */

/* Shard element e of slice sl -> full element index, and how many following
 * shard elements are contiguous in the full tensor. */
static int64_t
tp_map (const dit_tp_slice *sl, const dit_param_spec *shard, int64_t e,
    int64_t *run)
{
  if (sl->split == DIT_TP_COLS) {
    int64_t cols = shard->shape[1];
    int64_t inner = 1;
    for (int d = 2; d < shard->ndim; d++)
      inner *= shard->shape[d];
    int64_t row = e / (cols * inner), within = e % (cols * inner);
    *run = cols * inner - within;
    return row * sl->full.shape[1] * inner + sl->begin * inner + within;
  }
  int64_t inner = 1;
  for (int d = 1; d < shard->ndim; d++)
    inner *= shard->shape[d];
  int64_t total = 1;
  for (int d = 0; d < shard->ndim; d++)
    total *= shard->shape[d];
  *run = total - e;
  return (sl->split == DIT_TP_ROWS ? sl->begin * inner : 0) + e;
}

/* Shard slices read from a mapped checkpoint (full tensor per spec). */
typedef struct tp_fill_ctx {
  const dit_param_spec *specs;
  const dit_tp_slice *slices;
  const dit_st_tensor **src;
  const dit_safetensors *st;
} tp_fill_ctx;

static dit_status
tp_fill (void *user, size_t index, int64_t begin, int64_t n, dit_dtype dtype,
    void *dst)
{
  const tp_fill_ctx *c = user;
  const dit_tp_slice *sl = &c->slices[index];
  size_t dsz = dit_dtype_size (dtype);
  for (int64_t i = 0; i < n;) {
    int64_t run;
    int64_t full = tp_map (sl, &c->specs[index], begin + i, &run);
    if (run > n - i)
      run = n - i;
    const dit_st_tensor *t = c->src[index];
    if (t->dtype == DIT_ST_F8_E4M3) {
      /* an FP8 checkpoint slice: code * the scale of its row */
      const int64_t K = c->slices[index].full.shape[1];
      const uint8_t *codes = t->data;
      for (int64_t r = 0; r < run; r++) {
        float v = dit_e4m3_to_f32 (codes[full + r])
            * dit_checkpoint_fp8_scale (c->st, t, (full + r) / K);
        dit_store_f32 (dst, dtype, (size_t) (i + r), v);
      }
      i += run;
      continue;
    }
    dit_dtype sdt;
    dit_st_dtype_to_dit (t->dtype, &sdt);
    dit_convert ((char *) dst + (size_t) i * dsz, dtype, (const char *) t->data
        + (size_t) full * dit_dtype_size (sdt), sdt, (size_t) run);
    i += run;
  }
  return DIT_OK;
}

typedef struct tp_map_ctx {
  const dit_param_spec *specs;
  const dit_tp_slice *slices;
} tp_map_ctx;

static int64_t
tp_map_shard (void *user, size_t index, int64_t e, int64_t *run)
{
  const tp_map_ctx *c = user;
  return tp_map (&c->slices[index], &c->specs[index], e, run);
}

/* Runs of the full tensors' synthetic streams: on a backend with
 * synthetic_normal the shard is made in device memory (a 14B shard in
 * seconds instead of minutes of host Philox). */
dit_status
dit_tp_weights_synthetic (const dit_model_config *cfg, int degree, int rank,
    uint64_t seed, dit_dtype dtype, dit_backend *be, dit_weights **out)
{
  dit_param_spec *specs, *full;
  dit_tp_slice *slices;
  size_t count;
  *out = NULL;
  DIT_TRY (dit_tp_shard_specs (cfg, degree, rank, &specs, &slices, &count));
  full = malloc ((count + 1) * sizeof *full);
  dit_status st;
  if (!full) {
    st = dit_error (DIT_ERR_NOMEM, "tp: out of memory");
  } else {
    for (size_t i = 0; i < count; i++)
      full[i] = slices[i].full;
    tp_map_ctx ctx = { specs, slices };
    st = dit_weights_synthetic_mapped (specs, full, count, tp_map_shard, &ctx,
        seed, dtype, be, out);
  }
  free (full);
  free (specs);
  free (slices);
  return st;
}

/* The checkpoint tensor holding canonical name `name`, or NULL. */
static const dit_st_tensor *
tp_find (const dit_safetensors *st, const char *name)
{
  const dit_st_tensor *t = dit_safetensors_find (st, name);
  if (t)
    return t;
  char buf[256];
  for (size_t i = 0; i < dit_safetensors_count (st); i++) {
    const dit_st_tensor *u = dit_safetensors_at (st, i);
    if (dit_model_key_map (u->name, buf, sizeof buf) && strcmp (buf, name) == 0)
      return u;
  }
  return NULL;
}

dit_status
dit_tp_weights_load (const char *path, const dit_model_config *cfg, int degree,
    int rank, dit_dtype dtype, dit_backend *be, dit_weights **out)
{
  dit_param_spec *full = NULL, *specs = NULL;
  dit_tp_slice *slices = NULL;
  size_t nfull = 0, count = 0;
  dit_safetensors *st = NULL;
  const dit_st_tensor **src = NULL;
  dit_status status;

  *out = NULL;
  if ((status = dit_tp_shard_specs (cfg, degree, rank, &specs, &slices, &count)) != DIT_OK)
    return status;
  if ((status = dit_model_config_params (cfg, &full, &nfull)) != DIT_OK)
    goto done;
  if ((status = dit_safetensors_open (path, &st)) != DIT_OK)
    goto done;
  /* The full key set, shapes and dtypes first: a wrong file fails before
   * anything is read or allocated. */
  if ((status = dit_weights_check_fp8 (st, path, full, nfull, dit_model_key_map,
      dit_model_fp8_accept)) != DIT_OK)
    goto done;
  src = calloc (count + 1, sizeof *src);
  if (!src) {
    status = dit_error (DIT_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  for (size_t i = 0; i < count; i++) {
    src[i] = tp_find (st, specs[i].name);
    if (!src[i]) {
      status = dit_error (DIT_ERR_FORMAT, "%s: key '%s' missing", path, specs[i].name);
      goto done;
    }
  }
  tp_fill_ctx ctx = { specs, slices, src, st };
  status = dit_weights_from_fill (specs, count, dtype, be, tp_fill, &ctx, out);
  if (status != DIT_OK)
    dit_error_prefix (status, "%s: shard %d of %d", path, rank, degree);

done:
  free (src);
  dit_safetensors_close (st);
  free (full);
  free (specs);
  free (slices);
  return status;
}

/* ---- fingerprints ------------------------------------------------------- */

uint64_t
dit_tp_config_digest (const dit_model_config *c)
{
  uint64_t h = DIT_FNV1A64_OFFSET;
  h = dit_fnv1a64 (h, c->name, strnlen (c->name, sizeof c->name));
  int64_t v[] = { c->dim, c->ffn_dim, c->freq_dim, c->num_heads, c->head_dim,
    c->num_layers, c->text_len, c->text_dim, c->in_dim, c->out_dim };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    h = dit_fnv1a64_u64 (h, (uint64_t) v[i]);
  uint32_t eps;
  memcpy (&eps, &c->eps, 4);
  return dit_fnv1a64_u64 (h, eps);
}

uint64_t
dit_tp_fingerprint_synthetic (const dit_model_config *cfg, uint64_t seed,
    dit_dtype dtype)
{
  uint64_t h = dit_fnv1a64 (DIT_FNV1A64_OFFSET, "synthetic", 9);
  h = dit_fnv1a64_u64 (h, dit_tp_config_digest (cfg));
  h = dit_fnv1a64_u64 (h, (uint64_t) dtype);
  return dit_fnv1a64_u64 (h, seed);
}

dit_status
dit_tp_fingerprint_file (const char *path, const dit_model_config *cfg,
    dit_dtype dtype, uint64_t *out)
{
  dit_param_spec *full = NULL;
  size_t n = 0;
  dit_safetensors *st = NULL;
  DIT_TRY (dit_model_config_params (cfg, &full, &n));
  dit_status status = dit_safetensors_open (path, &st);
  if (status == DIT_OK)
    status = dit_weights_check_fp8 (st, path, full, n, dit_model_key_map,
        dit_model_fp8_accept);
  uint64_t h = dit_fnv1a64 (DIT_FNV1A64_OFFSET, "file", 4);
  h = dit_fnv1a64_u64 (h, dit_tp_config_digest (cfg));
  h = dit_fnv1a64_u64 (h, (uint64_t) dtype);
  for (size_t i = 0; status == DIT_OK && i < n; i++) {
    const dit_st_tensor *t = tp_find (st, full[i].name);
    if (!t) {
      status = dit_error (DIT_ERR_FORMAT, "%s: key '%s' missing", path, full[i].name);
      break;
    }
    h = dit_fnv1a64 (h, full[i].name, strlen (full[i].name) + 1);
    h = dit_fnv1a64_u64 (h, (uint64_t) t->dtype);
    for (int d = 0; d < t->ndim; d++)
      h = dit_fnv1a64_u64 (h, (uint64_t) t->shape[d]);
    size_t k = t->nbytes < 4096 ? t->nbytes : 4096;
    h = dit_fnv1a64 (h, t->data, k);
    h = dit_fnv1a64 (h, (const char *) t->data + t->nbytes - k, k);
  }
  dit_safetensors_close (st);
  free (full);
  if (status == DIT_OK)
    *out = h;
  return status;
}

/* ---- comm adapter ------------------------------------------------------- */

static dit_status
tp_comm_allreduce (void *user, void *data, int64_t count, dit_dtype dtype)
{
  return dit_comm_allreduce_sum (user, data, count, dtype);
}

static dit_status
tp_comm_allreduce_start (void *user, void *data, int64_t count,
    dit_dtype dtype, int slot)
{
  return dit_comm_allreduce_start (user, data, count, dtype, slot);
}

static dit_status
comm_wait (void *user, int slot)
{
  return dit_comm_wait (user, slot);
}

void
dit_tp_from_comm (dit_comm *comm, dit_model_tp *tp)
{
  memset (tp, 0, sizeof *tp);
  tp->degree = comm->size;
  tp->rank = comm->rank;
  tp->allreduce = tp_comm_allreduce;
  tp->allreduce_start = tp_comm_allreduce_start;
  tp->wait = comm_wait;
  tp->user = comm;
  tp->overlap = 1;
  /* Device transports (NCCL) only enqueue their collectives. */
  tp->stream_ordered = comm->device != DIT_DEVICE_CPU;
}

static dit_status
sp_comm_alltoall (void *user, const void *send, void *recv, size_t block)
{
  return dit_comm_alltoall (user, send, recv, block);
}

static dit_status
sp_comm_alltoall_start (void *user, const void *send, void *recv,
    size_t block, int slot)
{
  return dit_comm_alltoall_start (user, send, recv, block, slot);
}

dit_status
dit_mesh_groups_create (dit_comm *mesh, int sp, int tp, dit_mesh_groups *g,
    dit_model_tp *plan)
{
  memset (g, 0, sizeof *g);
  memset (plan, 0, sizeof *plan);
  if (sp < 1 || tp < 1 || sp * tp != mesh->size)
    return dit_error (DIT_ERR_INVALID, "mesh groups: sequence-parallel degree "
        "%d x tensor-parallel degree %d is not the mesh's %d ranks", sp, tp,
        mesh->size);
  g->sp = sp;
  g->tp = tp;
  g->tp_rank = mesh->rank % tp;
  g->sp_rank = mesh->rank / tp;
  g->tp_comm = mesh;
  g->sp_comm = mesh;
  if (sp > 1 && tp > 1) {
    DIT_TRY (dit_comm_group_view (mesh, tp, 1, &g->views[0]));
    dit_status st = dit_comm_group_view (mesh, sp, tp, &g->views[1]);
    if (st != DIT_OK) {
      dit_mesh_groups_free (g);
      return st;
    }
    g->tp_comm = g->views[0];
    g->sp_comm = g->views[1];
  }
  if (tp > 1) {
    dit_tp_from_comm (g->tp_comm, plan);
  } else {
    plan->degree = 1;
    plan->stream_ordered = mesh->device != DIT_DEVICE_CPU;
    plan->wait = comm_wait;
    plan->overlap = 1;
  }
  if (sp > 1) {
    plan->sp_degree = sp;
    plan->sp_rank = g->sp_rank;
    plan->alltoall = sp_comm_alltoall;
    plan->alltoall_start = sp_comm_alltoall_start;
    plan->sp_user = g->sp_comm;
    plan->stream_ordered = mesh->device != DIT_DEVICE_CPU;
  }
  return DIT_OK;
}

void
dit_mesh_groups_free (dit_mesh_groups *g)
{
  for (int i = 0; i < 2; i++) {
    dit_comm_destroy (g->views[i]);
    g->views[i] = NULL;
  }
}

/* The optional entries of the comm vtable (dit_comm.h); the other
 * dispatchers live with the CPU transport. */
dit_status
dit_comm_flush (dit_comm *c)
{
  if (!c || !c->ops->flush)
    return DIT_OK;
  return c->ops->flush (c);
}

void
dit_comm_watch (dit_comm *c)
{
  if (c && c->ops->watch)
    c->ops->watch (c);
}
