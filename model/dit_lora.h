/* dit_lora — LoRA adapters for the DiT: reading the published layouts,
 * strict validation against a model, and applying up to DIT_LORA_MAX of
 * them at once, merged into the weights or live beside them.
 *
 * A LoRA changes a linear layer W [out, in] into
 *   W' = W + s · B A,   s = strength · alpha / rank   (alpha absent = rank)
 * with A = lora_down [rank, in] and B = lora_up [out, rank]; several LoRAs
 * add their terms.  Some files also carry full-tensor deltas: "<m>.diff"
 * (added to <m>.weight, or to <m> itself for a parameter without a
 * ".weight", e.g. a block's modulation) and "<m>.diff_b" (added to
 * <m>.bias), scaled by the strength alone.
 *
 * Layouts, recognised by their keys (no flag):
 *   kohya / musubi   lora_unet_blocks_0_self_attn_q.lora_down.weight,
 *                    .lora_up.weight, .alpha (the module path with "_")
 *   peft             blocks.0.self_attn.q.lora_A.weight / .lora_B.weight,
 *                    optional .alpha; also spelled .lora_down / .lora_up
 *                    (ComfyUI); with or without a "diffusion_model." prefix
 *   diffusers        blocks.0.attn1.to_q.lora_A.weight, attn2, ffn.net.0.proj,
 *                    ffn.net.2, condition_embedder..., proj_out, with or
 *                    without "transformer.": mapped as the checkpoint loader
 *                    maps Diffusers names (dit_model_key_map)
 * A file uses one layout; a key that is none of these is refused.
 *
 * Validation (each refusal names the file and the key): a target layer the
 * model does not have; a factor pair of different ranks or a half pair; a
 * factor whose shape does not fit its layer; a low-rank pair on something
 * that is not a linear weight (the patch embedding is a convolution); a
 * delta whose shape differs from its tensor; data that is not F32, BF16,
 * F16 or F64; an alpha that is not one finite number; a non-finite factor
 * value (found when the values are converted, also named).
 *
 * Two modes (dit_lora_state):
 *   merge  W' = W + Σ s·B A computed on the weights' backend at apply time
 *          (one GEMM per layer over all LoRAs, deltas added), re-done when
 *          strengths change.  With keep_base the untouched tensors are kept
 *          so every re-merge starts from them (no drift however often the
 *          strength moves; costs a copy of each touched tensor); without,
 *          a change applies the difference to the merged weights (for
 *          fixed strengths: tools, offline merges).  FP8 weights are
 *          dequantized, merged in f32 and quantized again with fresh per-
 *          channel scales.
 *   live   the base weights' values are never touched; each targeted
 *          weight is stored as W_cat = [W | s·B] (dit_lora_side), the
 *          weight tensor a view of its W columns, and the model folds the
 *          low-rank term into the layer's GEMM along K: u = x Aᵀ into
 *          spare columns of the input, then one GEMM [x | u] W_catᵀ
 *          (dit_model.c).  The storage is reallocated one layer at a time
 *          (one extra layer's weight alive at once) and returned to the
 *          contiguous layout when the list is emptied, the state freed or
 *          every strength of the layer is 0.
 *          A strength change rescales the Bs columns (one small pass per
 *          layer) and takes effect at the next forward.  Full-tensor
 *          deltas are refused in this mode (they would change the base),
 *          and so are FP8 weights (dit_model_set_lora says so).
 * Strength 0 everywhere leaves the weights (merge) or the forward (live)
 * bit-identical to having no LoRA.
 *
 * Tensor parallelism: a rank's weights are shards; its LoRA factors are cut
 * the way their layer is (dit_lora_shard): a column-parallel layer (rows of
 * W split) takes the matching rows of B and all of A; a row-parallel layer
 * (columns split) the matching columns of A and all of B, and its partial
 * low-rank product joins the partial layer output before the all-reduce
 * (folded: [x_l | u_l] [W_l | Bs]ᵀ = x_l W_lᵀ + u_l Bsᵀ per rank, whose sum
 * over the ranks is x Wᵀ + (Σ u_l) Bsᵀ = x Wᵀ + u Bsᵀ, so the fold holds
 * for row-parallel layers too).
 */
#ifndef DIT_LORA_H
#define DIT_LORA_H

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "dit_weights.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_LORA_MAX 8

typedef enum dit_lora_format {
  DIT_LORA_FORMAT_KOHYA,
  DIT_LORA_FORMAT_PEFT,
  DIT_LORA_FORMAT_DIFFUSERS,
  DIT_LORA_FORMAT_SYNTHETIC,
} dit_lora_format;

const char *dit_lora_format_name (dit_lora_format f);

typedef enum dit_lora_kind {
  DIT_LORA_LOW_RANK,   /* down/up pair on <layer>.weight */
  DIT_LORA_DIFF,       /* full delta of <layer>.weight (or <layer>) */
  DIT_LORA_DIFF_B,     /* full delta of <layer>.bias */
} dit_lora_kind;

/* One thing a LoRA changes. */
typedef struct dit_lora_target {
  char layer[96];          /* canonical module, e.g. "blocks.0.self_attn.q" */
  char param[104];         /* the model tensor it changes, e.g. "...q.weight" */
  dit_lora_kind kind;
  int64_t rank;            /* low rank only */
  int64_t out, in;         /* low rank: the layer's [out, in] */
  float alpha;             /* low rank: alpha (= rank when the file has none) */
  int has_alpha;
  /* where the values come from (NULL for a synthetic LoRA) */
  const dit_st_tensor *down, *up, *diff;
  char key[160];           /* the file key named in messages */
} dit_lora_target;

typedef struct dit_lora {
  char *path;
  dit_lora_format format;
  const char *spelling;    /* "lora_A/lora_B", "lora_down/lora_up", "-" */
  dit_safetensors *st;     /* open while the LoRA lives (NULL: synthetic) */
  dit_lora_target *targets;
  size_t count;
  uint64_t seed;           /* synthetic values */
  uint64_t fingerprint;    /* names, shapes, dtypes and sampled bytes */
} dit_lora;

/* Read a LoRA file and check it against a model's parameter list (`specs`
 * of model `model_name`, for messages).  specs NULL: the keys, pairs,
 * dtypes and ranks only (dit-weights inspect before the preset is known). */
dit_status dit_lora_open (const char *path, const dit_param_spec *specs,
    size_t count, const char *model_name, dit_lora **out);
/* The checks of dit_lora_open against a model, for a LoRA opened without. */
dit_status dit_lora_check (const dit_lora *l, const dit_param_spec *specs,
    size_t count, const char *model_name);
/* The preset whose width the LoRA's targets have (a block's self-attention
 * or FFN input), or NULL when none matches. */
const char *dit_lora_preset_of (const dit_lora *l);

/* A seeded LoRA of `rank` on every linear weight of `specs` (the blocks'
 * q, k, v, o of both attentions, FFN up and down, the text and time
 * embeddings and the head), alpha 1: values are dit_weights_synthetic's
 * rules for "<layer>.lora_down.weight" [rank, in] and ".lora_up.weight"
 * [out, rank] under `seed`.  For timing (dit-bench --lora-rank). */
dit_status dit_lora_synthetic (const dit_param_spec *specs, size_t count,
    int rank, uint64_t seed, dit_lora **out);

void dit_lora_free (dit_lora *l);

/* Elements [begin, begin + n) (row-major over the full factor) of target t's
 * `which` tensor (0 down, 1 up, 2 diff) as f32 into dst; DIT_ERR_INVALID
 * naming the file and key at a non-finite value. */
dit_status dit_lora_values (const dit_lora *l, const dit_lora_target *t,
    int which, int64_t begin, int64_t n, float *dst);

/* ---- the user's list: "style.safetensors:0.8|detail.safetensors:0.4" ---- */

typedef struct dit_lora_spec_item {
  char path[1024];
  float strength;          /* 1 when the item has no ":S" */
} dit_lora_spec_item;

typedef struct dit_lora_spec {
  int count;
  dit_lora_spec_item items[DIT_LORA_MAX];
} dit_lora_spec;

/* Parse "PATH[:S]|PATH[:S]|..." (at most DIT_LORA_MAX items; NULL or "" is
 * none).  A strength is the text after the last ':' of an item when it is
 * a number; DIT_ERR_INVALID naming the item otherwise (an empty path, a
 * strength that is not a finite number, too many items). */
dit_status dit_lora_spec_parse (const char *s, dit_lora_spec *out);
/* The list back as text (the property's value); parsing it gives the
 * same list, strengths bit for bit. */
void dit_lora_spec_format (const dit_lora_spec *spec, char *buf, size_t size);

/* ---- applying LoRAs to a set of weights ----------------------------------- */

typedef enum dit_lora_mode {
  DIT_LORA_MERGE = 0,
  DIT_LORA_LIVE = 1,
} dit_lora_mode;

/* "merge" / "live"; DIT_ERR_INVALID naming the value otherwise. */
dit_status dit_lora_mode_parse (const char *s, dit_lora_mode *out);
const char *dit_lora_mode_name (dit_lora_mode m);

typedef struct dit_lora_use {
  const dit_lora *lora;
  float strength;
} dit_lora_use;

/* How tensor i of a sharded weights set is cut from the full tensor:
 * dim -1 whole, 0 rows [begin, begin + count), 1 columns. */
typedef struct dit_lora_shard {
  int dim;
  int64_t begin, count;
} dit_lora_shard;

/* The live LoRA of one linear layer: y = x Wᵀ + u Bsᵀ with u = x Aᵀ,
 * where the LoRAs' factors are stacked along the rank (R = their ranks,
 * each padded to a multiple of 8 with zero rows/columns) and Bs = B ·
 * diag(s) carries the strengths.
 *
 * Folded (w_cat.data set): the layer's weight storage is W_cat = [W | Bs],
 * [out, in + R]; the weight tensor of the set stays an [out, in] view of
 * its first `in` columns (row stride in + R, the values as loaded), so
 * every GEMM that reads the plain weight is unchanged.  The model writes
 * u into R spare columns after its input and runs ONE GEMM over in + R:
 * [x | u] W_catᵀ = x Wᵀ + u Bsᵀ.  Not folded (an FP8 weight, or a fold
 * that could not be allocated): the side path, u Bsᵀ through the GEMM's
 * addend, with `bs`.  `bs` ([out, R], contiguous) is kept in both cases:
 * the side path of layers whose input has no spare columns (the prompt
 * and time embeddings) reads it.  `active` is 0 while every strength of
 * the layer is 0: the weight is then stored as loaded (not folded) and
 * the model runs it alone (strength 0 = no LoRA, bit for bit). */
typedef struct dit_lora_side {
  dit_tensor a;            /* [R, in] compute dtype */
  dit_tensor bs;           /* [out, R] compute dtype */
  dit_tensor w_cat;        /* [out, in + R] (row stride in + R); data NULL:
                              not folded */
  int64_t rank;            /* R */
  int active;
} dit_lora_side;

typedef struct dit_lora_state dit_lora_state;

/* Apply LoRAs to `w` (its backend does the work).  shards: NULL for an
 * unsharded set, else one per tensor of w.  keep_base (merge): keep every
 * tensor a LoRA touches as loaded, so re-merges start from it. */
dit_status dit_lora_state_create (dit_weights *w, dit_lora_mode mode,
    int keep_base, const dit_lora_shard *shards, dit_lora_state **out);
/* Frees the device state; the weights keep what was last merged (live:
 * folded weights return to their contiguous storage). */
void dit_lora_state_free (dit_lora_state *s);

/* Make `uses` (n <= DIT_LORA_MAX; 0 = none) the applied set.  The same
 * LoRAs in the same order with other strengths is a strength change (live:
 * rescale; merge: re-merge); anything else rebuilds the device factors.
 * The LoRAs must stay open while they are applied.  On an error the state
 * keeps the previous set (merge mode may have left some layers merged with
 * the new set when a value was bad: the error says which layer). */
dit_status dit_lora_state_apply (dit_lora_state *s, const dit_lora_use *uses,
    int n);

dit_lora_mode dit_lora_state_mode (const dit_lora_state *s);
/* The live LoRA of layer `layer` ("blocks.0.ffn.0"), NULL when no applied
 * LoRA targets it or the mode is merge. */
const dit_lora_side *dit_lora_state_side (const dit_lora_state *s,
    const char *layer);
/* The widest R of any side (buffers of the live path), 0 in merge mode. */
int64_t dit_lora_state_max_rank (const dit_lora_state *s);
/* Counter bumped by every apply that changed something: the model rebinds
 * and recomputes what depends on weights (prompt K/V, modulation table). */
uint64_t dit_lora_state_generation (const dit_lora_state *s);

/* Digest of (mode, every applied LoRA's fingerprint and strength), the
 * same on every rank of a mesh; 0 for no LoRA. */
uint64_t dit_lora_state_digest (const dit_lora_state *s);
uint64_t dit_lora_set_digest (dit_lora_mode mode, const dit_lora_use *uses,
    int n);

/* ---- a set of LoRA files by name, applied to one weights set ------------- */

/* What a runner holds: the open LoRAs of the current list and their state.
 * dit_lora_set_update takes a new list (dit_lora_spec): files already open
 * are reused (so the same files with other strengths are a strength
 * change), new ones are opened and checked against `cfg`'s full parameter
 * list; on any error nothing changes (the previous list stays applied) and
 * the message names the file and key.  An item "@synthetic:R" is a seeded
 * LoRA of rank R on every linear (dit_lora_synthetic, seed 0): dit-bench
 * --lora-rank, and a mesh's workers make the same one. */
typedef struct dit_lora_set dit_lora_set;

#define DIT_LORA_SYNTHETIC_PREFIX "@synthetic:"

dit_status dit_lora_set_create (dit_weights *w, const dit_model_config *cfg,
    dit_lora_mode mode, int keep_base, const dit_lora_shard *shards,
    dit_lora_set **out);
void dit_lora_set_free (dit_lora_set *s);
dit_status dit_lora_set_update (dit_lora_set *s, const dit_lora_spec *spec);
/* The digest dit_lora_set_digest_of would give after `spec` was applied in
 * `mode`, without weights: every item opened and checked against `cfg`'s
 * full parameter list (the same refusals as dit_lora_set_update, naming
 * the file and key; in live mode full-tensor deltas too), then closed.
 * What a mesh's rank 0 checks before it sends a list and compares the
 * workers' digests with; 0 for an empty list. */
dit_status dit_lora_spec_digest (const dit_lora_spec *spec,
    dit_lora_mode mode, const dit_model_config *cfg, uint64_t *digest);
/* The applied list (count 0: none), its state and its digest. */
const dit_lora_spec *dit_lora_set_spec (const dit_lora_set *s);
const dit_lora_state *dit_lora_set_state (const dit_lora_set *s);
uint64_t dit_lora_set_digest_of (const dit_lora_set *s);

#ifdef __cplusplus
}
#endif
#endif
