/* dit-generate — offline rollout of the streaming causal DiT.
 *
 * Loads a checkpoint (or makes seeded synthetic weights for a preset), sets
 * the prompt embeddings, and runs N chunks with the element's own code: the
 * generator behind a dit_runner, the context of each chunk from a
 * dit_stage0 with the latent anchor (at frames per chunk >= context frames:
 * the last C latents generated so far).  Every chunk's x0 latents are written to one
 * safetensors file as latents.c<k> [16, F, h, w] f32, and per-chunk timings
 * are printed.  Noise comes from Philox under --seed, or from a file with
 * noise.c<k>.s<j> tensors so that other implementations can be compared on
 * identical inputs.  --lora applies LoRAs (model/dit_lora.h), merged into
 * the weights or live beside them (--lora-mode), on a mesh too.
 *
 * Mesh (--mesh-devices LIST): the DiT runs on dit-worker processes spawned
 * through the runner (the element's mesh-devices path; --worker-path, else
 * $GST_DIT_WORKER, else the installed or PATH dit-worker) in the layout of
 * --mesh-parallel, with the weights of -m (a preset's synthetic weights of
 * --weights-seed, or the checkpoint path), so a mesh rollout can be
 * compared with the in-process one; --mesh-colocate runs mesh rank 0 on a
 * thread of this process (docs/mesh.md, "Co-location").
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_loader.h"
#include "dit_lora.h"
#include "dit_runner.h"
#include "dit_stage0.h"
#include "dit_stream.h"
#include "dit_weights.h"
#include "safetensors.h"
#include "tool_common.h"

static void
usage (FILE *f)
{
  fprintf (f,
      "Usage: dit-generate [OPTIONS] -o OUT.safetensors\n"
      "\n"
      "Run the streaming causal Wan2.1 DiT offline and write every chunk's latents.\n"
      "\n"
      "Model and prompt:\n"
      "  -m, --model PATH|PRESET  checkpoint (file, sharded index .json or directory)\n"
      "                           or a preset (tiny, wan-1.3b, wan-14b) with seeded\n"
      "                           synthetic weights (default: " DIT_DEFAULT_MODEL ")\n"
      "      --weights-seed N     seed of the synthetic weights (default 0)\n"
      "  -e, --embeds FILE        text embeddings: safetensors tensor 'embeds'\n"
      "                           [rows <= 512, text_dim]; default: the seeded default\n"
      "                           prompt rows the elements use\n"
      "Rollout:\n"
      "  -n, --chunks N           number of chunks (default 3)\n"
      "  -s, --seed N             noise seed (default 42)\n"
      "      --noise FILE         supplied noise: tensors noise.c<k>.s<j> [16,F,h,w]\n"
      "      --size WxH           frame size in pixels, multiples of 16 (default\n"
      "                           64x64, as the elements)\n"
      "      --latent-size HxW    the same as a latent grid (pixels / 8, height\n"
      "                           first), even: --latent-size 8x12 = --size 96x64\n"
      "      --frames-per-chunk N latent frames per chunk (default 3)\n"
      "      --context-frames N   KV recompute context frames (default 3)\n"
      "      --kv-window N        cache window in frames = context + chunk (default 6)\n"
      "      --kv-bias X          attention bias on context frames 1.. (default 0.3, 1 = off)\n"
      "      --steps LIST         denoising steps (default 1000,750,500,250)\n"
      "      --shift X            timestep shift (default 5)\n"
      "      --warp               warp the step list through the shifted table\n"
      "Execution:\n"
      "      --dtype f32|bf16|fp8 precision (default f32); fp8 = bf16 with the\n"
      "                           blocks' linear layers as FP8 GEMMs (docs/precision.md)\n"
      "      --device NAME[:N]    backend: cpu (default) or cuda:N\n"
      "      --lora LIST          LoRAs: PATH[:STRENGTH]|PATH[:STRENGTH]... (up to 8,\n"
      "                           strength 1 by default; \"@synthetic:R\" is a seeded\n"
      "                           rank-R LoRA on every linear)\n"
      "      --lora-mode MODE     merge (default: merged into the weights) or live\n"
      "                           (the low-rank term folded into each layer's GEMM)\n"
      "Mesh:\n"
      "      --mesh-devices LIST  run the DiT on dit-worker ranks, one per device\n"
      "                           (\"0,1\"): 1, 2, 4 or 8 with tp, 1 to 8 with\n"
      "                           sp, 4, 6 or 8 with hybrid; default: in this\n"
      "                           process\n"
      "      --mesh-backend NAME  the ranks' backend, cpu or cuda (default: cuda\n"
      "                           with --device cuda:N, else cpu)\n"
      "      --mesh-parallel L    layout: tp (tensor parallel, default), sp\n"
      "                           (sequence parallel) or hybrid (sp across groups\n"
      "                           of --mesh-tp ranks, tp inside; cpu or cuda\n"
      "                           ranks, on cuda the NCCL groups split off with\n"
      "                           ncclCommSplit)\n"
      "      --mesh-tp N          hybrid: tensor-parallel ranks per group (default 2)\n"
      "      --mesh-colocate M    where mesh rank 0 runs: off (a dit-worker), on\n"
      "                           (a thread of this process) or auto (the default:\n"
      "                           on when it shares --device's GPU)\n"
      "      --worker-path PATH   the dit-worker to spawn (default: $GST_DIT_WORKER,\n"
      "                           then the installed one, then PATH)\n"
      "  -o, --output FILE        output safetensors (latents.c<k>)\n"
      "  -q, --quiet              no per-chunk lines\n"
      "  -h, --help               this help\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

enum {
  OPT_WEIGHTS_SEED = 256, OPT_NOISE, OPT_SIZE, OPT_LATENT_SIZE, OPT_FPC, OPT_CTX,
  OPT_WINDOW, OPT_BIAS, OPT_STEPS, OPT_SHIFT, OPT_WARP, OPT_DTYPE, OPT_DEVICE,
  OPT_MESH_DEVICES, OPT_MESH_BACKEND, OPT_MESH_PARALLEL, OPT_MESH_TP,
  OPT_MESH_COLOCATE,
  OPT_WORKER_PATH,
  OPT_LORA, OPT_LORA_MODE,
};

typedef struct gen_args {
  const char *model;
  const char *embeds;
  const char *noise;
  const char *output;
  const char *device;
  uint64_t weights_seed;
  int chunks;
  int quiet;
  dit_gen_config cfg;
  dit_mesh_options mesh;
  dit_lora_spec lora;
  dit_lora_mode lora_mode;
} gen_args;

static int
parse_args (int argc, char **argv, gen_args *a)
{
  static const struct option opts[] = {
    { "model", required_argument, NULL, 'm' },
    { "weights-seed", required_argument, NULL, OPT_WEIGHTS_SEED },
    { "embeds", required_argument, NULL, 'e' },
    { "chunks", required_argument, NULL, 'n' },
    { "seed", required_argument, NULL, 's' },
    { "noise", required_argument, NULL, OPT_NOISE },
    { "size", required_argument, NULL, OPT_SIZE },
    { "latent-size", required_argument, NULL, OPT_LATENT_SIZE },
    { "frames-per-chunk", required_argument, NULL, OPT_FPC },
    { "context-frames", required_argument, NULL, OPT_CTX },
    { "kv-window", required_argument, NULL, OPT_WINDOW },
    { "kv-bias", required_argument, NULL, OPT_BIAS },
    { "steps", required_argument, NULL, OPT_STEPS },
    { "shift", required_argument, NULL, OPT_SHIFT },
    { "warp", no_argument, NULL, OPT_WARP },
    { "dtype", required_argument, NULL, OPT_DTYPE },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "mesh-devices", required_argument, NULL, OPT_MESH_DEVICES },
    { "mesh-backend", required_argument, NULL, OPT_MESH_BACKEND },
    { "mesh-parallel", required_argument, NULL, OPT_MESH_PARALLEL },
    { "mesh-tp", required_argument, NULL, OPT_MESH_TP },
    { "mesh-colocate", required_argument, NULL, OPT_MESH_COLOCATE },
    { "worker-path", required_argument, NULL, OPT_WORKER_PATH },
    { "lora", required_argument, NULL, OPT_LORA },
    { "lora-mode", required_argument, NULL, OPT_LORA_MODE },
    { "output", required_argument, NULL, 'o' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  memset (a, 0, sizeof *a);
  dit_mesh_options_init (&a->mesh);
  a->mesh.devices_name = "--mesh-devices";
  a->mesh.colocate_name = "--mesh-colocate";
  a->mesh.backend_name = "--mesh-backend";
  a->mesh.worker_name = "--worker-path";
  a->model = DIT_DEFAULT_MODEL;
  a->device = "cpu";
  a->chunks = 3;
  dit_gen_config_default (&a->cfg);
  /* the elements' default frame, 64x64 */
  a->cfg.latent_h = 8;
  a->cfg.latent_w = 8;
  int c;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "m:e:n:s:o:qh", opts, NULL)) != -1) {
    int ok = 1;
    switch (c) {
      case 'm': a->model = optarg; break;
      case OPT_WEIGHTS_SEED: ok = tool_parse_u64 (optarg, &a->weights_seed); break;
      case 'e': a->embeds = optarg; break;
      case 'n': ok = tool_parse_int (optarg, 1, 1000000, &a->chunks); break;
      case 's': ok = tool_parse_u64 (optarg, &a->cfg.seed); break;
      case OPT_NOISE: a->noise = optarg; break;
      case OPT_SIZE: {
        int width, height;
        ok = tool_parse_pixel_size (optarg, &width, &height);
        if (!ok) {
          fprintf (stderr, "dit-generate: --size %s: use WxH in pixels, "
              "positive multiples of 16\n", optarg);
          return 0;
        }
        a->cfg.latent_w = width / 8;
        a->cfg.latent_h = height / 8;
        break;
      }
      case OPT_LATENT_SIZE:
        ok = tool_parse_size (optarg, &a->cfg.latent_h, &a->cfg.latent_w);
        break;
      case OPT_FPC: ok = tool_parse_int (optarg, 1, 64, &a->cfg.frames_per_chunk); break;
      case OPT_CTX: ok = tool_parse_int (optarg, 1, 64, &a->cfg.context_frames); break;
      case OPT_WINDOW: ok = tool_parse_int (optarg, 2, 128, &a->cfg.kv_window); break;
      case OPT_BIAS: {
        double b;
        ok = tool_parse_double (optarg, &b);
        a->cfg.kv_bias = (float) b;
        break;
      }
      case OPT_STEPS:
        ok = dit_gen_config_parse_steps (&a->cfg, optarg) == DIT_OK;
        break;
      case OPT_SHIFT: ok = tool_parse_double (optarg, &a->cfg.shift); break;
      case OPT_WARP: a->cfg.warp_steps = 1; break;
      case OPT_DTYPE: {
        dit_precision p;
        ok = tool_parse_precision (optarg, &p);
        a->cfg.dtype = dit_precision_compute_dtype (p);
        a->cfg.fp8 = p == DIT_PRECISION_FP8;
        break;
      }
      case OPT_DEVICE: a->device = optarg; break;
      case OPT_MESH_DEVICES: a->mesh.devices = optarg; break;
      case OPT_MESH_BACKEND: a->mesh.backend = optarg; break;
      case OPT_MESH_PARALLEL: {
        dit_mesh_layout l;
        ok = dit_mesh_layout_parse (optarg, &l) == DIT_OK;
        a->mesh.layout = optarg;
        break;
      }
      case OPT_MESH_TP: ok = tool_parse_int (optarg, 1, 8, &a->mesh.mesh_tp); break;
      case OPT_MESH_COLOCATE: {
        dit_mesh_colocate cl;
        ok = dit_mesh_colocate_parse (optarg, &cl) == DIT_OK;
        a->mesh.colocate = optarg;
        break;
      }
      case OPT_WORKER_PATH: a->mesh.worker_path = optarg; break;
      case OPT_LORA:
        if (dit_lora_spec_parse (optarg, &a->lora) != DIT_OK) {
          fprintf (stderr, "dit-generate: --lora: %s\n", dit_last_error ());
          return 0;
        }
        break;
      case OPT_LORA_MODE:
        if (dit_lora_mode_parse (optarg, &a->lora_mode) != DIT_OK) {
          fprintf (stderr, "dit-generate: --lora-mode: %s\n", dit_last_error ());
          return 0;
        }
        break;
      case 'o': a->output = optarg; break;
      case 'q': a->quiet = 1; break;
      case 'h': usage (stdout); exit (0);
      default:
        fprintf (stderr, "dit-generate: unknown option '%s'\n", argv[optind - 1]);
        usage (stderr);
        return 0;
    }
    if (!ok) {
      fprintf (stderr, "dit-generate: bad value '%s' for %s\n", optarg,
          argv[optind - 1]);
      return 0;
    }
  }
  if (optind != argc) {
    fprintf (stderr, "dit-generate: unexpected argument '%s'\n", argv[optind]);
    return 0;
  }
  if (!a->output) {
    fprintf (stderr, "dit-generate: an output file is required (-o FILE)\n");
    return 0;
  }
  return 1;
}

/* Prompt embeddings from a file, or the seeded default rows the elements
 * use when no prompt is given. */
static dit_status
load_embeds (const gen_args *a, const dit_model_config *mc, float **data,
    int64_t *rows)
{
  int n;
  if (a->embeds) {
    DIT_TRY (dit_stream_load_embeds (a->embeds, mc->text_dim, mc->text_len,
        data, &n));
    *rows = n;
    return DIT_OK;
  }
  *rows = DIT_DEFAULT_PROMPT_ROWS;
  *data = malloc ((size_t) (*rows * mc->text_dim) * sizeof (float));
  if (!*data)
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  dit_stream_default_embeds ((int) *rows, mc->text_dim, *data);
  return DIT_OK;
}

int
main (int argc, char **argv)
{
  gen_args a;
  if (!parse_args (argc, argv, &a))
    return 2;

  dit_backend *be = NULL;
  dit_weights *w = NULL;
  dit_runner *r = NULL;
  dit_stage0 *s0 = NULL;
  dit_safetensors *noise = NULL;
  float *embeds = NULL, *out = NULL;
  dit_st_write_tensor *wt = NULL;
  char (*names)[32] = NULL;
  int ret = 1;
  dit_model_config mc;
  dit_runner_config rc;
  dit_stage0_config sc;

  dit_mesh_spec spec;
  int checkpoint = 0;
  char demo[4096];
  be = tool_backend (a.device);
  if (!be)
    goto fail;
  a.mesh.stage0_device = a.device;
  if (dit_mesh_spec_parse (&a.mesh, &spec) != DIT_OK)
    goto fail;
  dit_runner_config_default (&rc);
  if (spec.ranks > 0) {
    /* the workers load the weights (by path: the demo model's file for
     * "demo"); here only the config */
    if (dit_model_name_resolve (a.model, DIT_DEMO_DIT, demo, sizeof demo,
            &a.model) != DIT_OK
        || dit_model_config_resolve (a.model, &mc, &checkpoint) != DIT_OK)
      goto fail;
    rc.mesh = &spec;
    rc.preset = mc.name;
    rc.mesh_weights = checkpoint ? a.model : NULL;
    rc.synthetic_seed = a.weights_seed;
  } else if (tool_load_dit (a.model, a.weights_seed, dit_precision_of (a.cfg.dtype,
        a.cfg.fp8), be, &mc, &w) != DIT_OK) {
    goto fail;
  }
  rc.model = mc;
  rc.gen = a.cfg;
  rc.weights = w;
  rc.lora_mode = a.lora_mode;
  rc.lora_keep_base = 0;        /* the strengths never change here */
  if (dit_runner_create (&rc, be, &r) != DIT_OK)
    goto fail;
  if (a.lora.count > 0 && dit_runner_set_lora (r, &a.lora) != DIT_OK)
    goto fail;
  dit_stage0_config_default (&sc);
  sc.latent_h = a.cfg.latent_h;
  sc.latent_w = a.cfg.latent_w;
  sc.frames_per_chunk = a.cfg.frames_per_chunk;
  sc.context_frames = a.cfg.context_frames;
  sc.anchor = DIT_ANCHOR_LATENT;
  if (dit_stage0_create (&sc, be, &s0) != DIT_OK)
    goto fail;

  int64_t rows;
  if (load_embeds (&a, &mc, &embeds, &rows) != DIT_OK)
    goto fail;
  dit_tensor et = dit_tensor_2d (embeds, DIT_F32, DIT_DEVICE_CPU, rows, mc.text_dim);
  if (dit_runner_set_prompt (r, &et) != DIT_OK)
    goto fail;
  if (a.noise && dit_safetensors_open (a.noise, &noise) != DIT_OK)
    goto fail;

  const int F = a.cfg.frames_per_chunk;
  const int64_t fsz = (int64_t) a.cfg.latent_h * a.cfg.latent_w;
  const int64_t chunk_elems = 16 * F * fsz;
  out = malloc ((size_t) (chunk_elems * a.chunks) * sizeof (float));
  wt = calloc ((size_t) a.chunks, sizeof *wt);
  names = calloc ((size_t) a.chunks, sizeof *names);
  if (!out || !wt || !names) {
    dit_error (DIT_ERR_NOMEM, "out of memory");
    goto fail;
  }

  int64_t lshape[4] = { 16, F, a.cfg.latent_h, a.cfg.latent_w };
  double total_ms = 0, steady_ms = 0;
  int64_t frames_done = 0;
  for (int k = 0; k < a.chunks; k++) {
    dit_chunk_request req = { .chunk_index = k };
    dit_tensor ctx, x0, noise_t[DIT_MAX_STEPS];
    if (dit_stage0_context (s0, k, be, &ctx) != DIT_OK)
      goto fail;
    req.context = ctx.data ? &ctx : NULL;
    for (int s = 0; noise && s < a.cfg.num_steps; s++) {
      char key[64];
      snprintf (key, sizeof key, "noise.c%d.s%d", k, s);
      if (tool_find_tensor (noise, key, 4, lshape, &noise_t[s]) != DIT_OK)
        goto fail;
      req.noise[s] = &noise_t[s];
    }
    dit_chunk_timing tm;
    if (dit_runner_run_chunk (r, &req, &x0, &tm) != DIT_OK
        || dit_stage0_push_chunk (s0, k, &x0, be) != DIT_OK)
      goto fail;
    float *dst = out + (size_t) k * (size_t) chunk_elems;
    if (dit_download (be, dst, x0.data, dit_tensor_nbytes (&x0)) != DIT_OK)
      goto fail;
    frames_done += dit_stream_chunk_frames (k, F);
    total_ms += tm.total_ms;
    if (k > 0)
      steady_ms += tm.total_ms;
    if (!a.quiet)
      printf ("chunk %d: recompute %.1f ms, denoise %.1f ms, total %.1f ms\n",
          k, tm.recompute_ms, tm.denoise_ms, tm.total_ms);
    snprintf (names[k], sizeof names[k], "latents.c%d", k);
    wt[k] = (dit_st_write_tensor) { .name = names[k], .dtype = DIT_F32,
      .ndim = 4, .shape = lshape, .data = dst };
  }

  char seed_s[32], chunks_s[32];
  snprintf (seed_s, sizeof seed_s, "%llu", (unsigned long long) a.cfg.seed);
  snprintf (chunks_s, sizeof chunks_s, "%d", a.chunks);
  const char *meta[] = { "format", "gst-dit", "kind", "latents", "model",
    mc.name, "seed", seed_s, "chunks", chunks_s, NULL };
  if (dit_safetensors_write (a.output, wt, (size_t) a.chunks, meta) != DIT_OK)
    goto fail;
  printf ("%d chunks in %.1f ms (%.2f output frames/s overall", a.chunks,
      total_ms, 1e3 * (double) frames_done / total_ms);
  if (a.chunks > 1)
    printf (", %.2f in steady state", 1e3 * 4.0 * F * (a.chunks - 1) / steady_ms);
  printf ("); wrote %s\n", a.output);
  ret = 0;
  goto done;

fail:
  fprintf (stderr, "dit-generate: %s\n", dit_last_error ());
done:
  free (names);
  free (wt);
  free (out);
  free (embeds);
  dit_safetensors_close (noise);
  dit_stage0_free (s0);
  dit_runner_free (r);
  dit_weights_free (w);
  if (be && be != dit_backend_cpu ())
    dit_backend_destroy (be);
  return ret;
}
