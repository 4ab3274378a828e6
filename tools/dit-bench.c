/* dit-bench — steady-state speed of the whole chunk loop: KV recompute +
 * denoising forwards of the causal DiT, the streaming VAE decode of every
 * latent and the anchor re-encode, with seeded synthetic weights (no
 * checkpoint needed; on CUDA they are made on the device).  Four modes:
 *
 * The chunk loop is ditgenerate's own code: the generator behind a
 * dit_runner (mesh/dit_runner.h) on a backend instance of its own, and
 * Stage 0 a dit_stage0 (model/dit_stage0.h: the context rule, the anchor
 * path, the display decode queue).
 *
 * Engine (default), one device: chunk k >= 1, as Stage 0 and the generator
 * run it on one GPU (docs/DESIGN.md §2): recompute the cache from [anchor,
 * latent n-2, latent n-1], 4 denoise forwards, the anchor path (decode the
 * anchor latent, re-encode its last pixel frame), the display decode of
 * the other latents.  Stages are timed on the host clock with the backend
 * synchronised after each, after `--warmup` chunks, over `--chunks`
 * chunks (the serial pass).  Then `--chunks` more as the elements run them
 * (the overlapped pass, unless --overlap off): the generator's thread
 * takes the context, runs the chunk and pushes it into Stage 0 (anchor
 * path), while a display thread, as ditdecode behind its queue, decodes
 * the chunk's other latents and converts every frame to bytes on the host;
 * Stage 0 calls are serialised by one lock as GstDitSession serialises
 * them.  Its period (push to push) is the chunk period and gives the FPS;
 * it is what `--pipeline` measures at the sink.  Printed:
 * ms per forward (recompute, denoise), VAE decode ms per latent, streaming
 * encode ms per latent, anchor ms (decode 1 latent + encode 1 frame), chunk
 * period (serial and overlapped), FPS (pixel frames per second), time to first frame (first
 * request to the first decoded frame in bytes on the host, weights
 * loaded), achieved TFLOP/s of the DiT (FLOPs from dit_model_forward_flops,
 * DESIGN §8) and its fraction of the bf16 GEMM rate measured in the same
 * run, peak device memory.
 *
 * Mesh (--mesh-devices 1,2[,..]): the runner's DiT is a mesh of dit-worker
 * ranks (tensor parallel, one rank per listed device, backend of the same
 * kind as --device unless --mesh-backend says otherwise) while Stage 0 —
 * VAE decode and the anchor — runs on --device in this process.  Two
 * passes over `--chunks` chunks each, after `--warmup`:
 *   serial:     submit, collect (Stage 1 = the mesh round trip), then the
 *               anchor path (decode the anchor latent, encode its last
 *               frame) and the decode of the other latents (Stage 0);
 *               period = Stage 1 + Stage 0;
 *   overlapped: chunk k+1 is submitted as soon as its anchor is ready and
 *               the other latents of chunk k are decoded while the mesh
 *               works (one call in flight: chunk k+2 needs chunk k+1's
 *               anchor); period = time from one submit to the next.
 * Reported: per-forward times from the workers (dit_chunk_timing), Stage 0
 * and Stage 1 (medians of the serial pass), both periods against
 * max(Stage 0, Stage 1) and against their sum, the time hidden per chunk
 * (Stage 0 + Stage 1 - overlapped period) and the overlap score = median
 * hidden / min(Stage 0, Stage 1) (1 = the shorter stage is hidden
 * completely; the anchor can never be hidden, so the bound is below 1
 * when Stage 0 is the shorter one), FPS from the overlapped period, and
 * the all-reduce time of mesh rank 0 per chunk (dit_mesh_stats: wall time
 * in the calls on the CPU comm, CUDA events around each all-reduce on
 * NCCL, graph replays included; waiting for the slowest rank included)
 * with its share of recompute + denoise, medians over the serial pass.
 * On CUDA, Stage 0's backend is the mesh's world_backend (the world comm,
 * the data plane, runs on NCCL from its GPU when --device is not a mesh
 * device, on the CPU comm otherwise); the JSON says which (world_nccl),
 * and how many host copies of latents a chunk made (host_copies_per_chunk:
 * 0 on NCCL, where latents stay on the device; 2 on the CPU comm, the
 * context down and x0 up).
 *
 * Layouts: --mesh-parallel tp|sp|hybrid (and --mesh-tp N for hybrid) pick
 * how the ranks split the DiT (docs/mesh.md), in mesh and pipeline mode.
 * --mesh-colocate off|on|auto says where mesh rank 0 runs: a dit-worker
 * process, or a thread of this process beside Stage 0 with its own stream
 * on the same GPU (docs/mesh.md, "Co-location"); the report and the JSON
 * (mesh_colocated) say which ran.
 * --comm-only times just the collectives one chunk's forward makes in that
 * layout, ranks as threads of this process (tools/bench_comm.h; the CPU
 * comm with --mesh-backend cpu, NCCL on distinct GPUs otherwise).
 * --comm-overlap on|off (default on) passes the same to every dit-worker:
 * the collectives hidden behind compute or in the plain order (docs/mesh.md,
 * "Overlap"); the mesh report gives the collective time per chunk and the
 * exposed part of it, the time the compute waited for the collectives.
 *
 * Pipeline (--pipeline, only in builds with GStreamer): the elements in
 * this process, `ditgenerate num-chunks=W+N ! video/x-dit-latent ! queue ! ditdecode
 * ! fakesink sync=false` on --device (on a CUDA device the caps name
 * memory:DitDevice: latents stay on the GPU between the elements); FPS from ditgenerate's read-only
 * stats (fps, chunk-ms, chunks, read at EOS) and wall-clock FPS over the
 * frames after the W warm-up chunks (a pad probe on the sink counts them).
 * --mesh-devices is passed to ditgenerate's mesh-devices property.
 *
 * Text (--text, or --text-only without the chunk loop): encode time of a
 * 512-token prompt (ids 100, 101, ... then EOS) by the umT5 encoder
 * (--text-model: a preset with seeded synthetic weights, made on the
 * device like the DiT's, or a checkpoint), median and p90 of `--chunks`
 * encodes after max(1, --warmup) warm-up encodes, embeddings downloaded to
 * the host (as the prompt path uses them).  --text-layers N builds only
 * the first N layers (CPU runs of the real shape).
 *
 * Engine mode also keeps the text encoder as the pipeline does (umT5 of
 * --text-model, weights on the device, or with --text-residency host in
 * page-locked host memory between prompts, streamed layer by layer per
 * encode) and reports the device memory of every component (CUDA context
 * and workspaces, text encoder, DiT weights, DiT state with the KV cache,
 * VAE with its buffers: cudaMemGetInfo deltas between the setup steps), the
 * peak, and the peak projected with the FP8 linears (e4m3 + per-channel
 * scales) and with the encoder's weights on the host.  --breakdown adds
 * three eager steady chunks after everything else, every dispatched op
 * timed by a CUDA event recorded before it (bench_breakdown.h): each
 * forward kind's time as GEMM / attention / other, the other ops itemised.
 *
 * Cold start (--cold --model DIT --vae VAE --text-model UMT5): from process
 * start to the first decoded frame on the host with every weight read from
 * its checkpoint (dit_stream_load: large sequential reads overlapped with
 * the uploads): backend, text encoder load and prompt encode, DiT load,
 * generator and prompt K/V, VAE load, chunk 0 and its first frame, each
 * stage timed; the page-cache residency of each file at start (mincore) says
 * whether the disk or memory was read.
 *
 * --decoder MODEL (a TAEHV preset such as taew2_1, or a checkpoint) makes
 * the display decode a tiny decoder's, as ditdecode decoder-model does:
 * every latent of a chunk is decoded by it, and the anchor becomes the
 * full VAE's decode of the chunk's first latent (a full decoder stream that
 * sees only those) plus the encode of its last frame; decode ms are then
 * the tiny decoder's and anchor ms the full path's.
 *
 * --json prints one JSON object instead of the human report.  --worker-arg
 * passes one extra argument to every dit-worker (repeat it for more; the
 * tests slow the ranks down with --test-delay-ms to see the overlap).
 *
 * Usage: dit-bench --preset wan-14b --synthetic [--layers N]
 *   [--size 576x320|832x480] [--chunks 20] [--warmup 3] [--device cuda]
 *   [--dtype bf16|f32|fp8] [--vae wan|tiny|none] [--decoder taew2_1|PATH]
 *   [--gemm 8192] [--seed 42] [--json]
 *   [--graphs on|off] [--fused on|off]
 *   [--mesh-devices 1,2] [--mesh-backend cpu|cuda] [--worker-path PATH]
 *   [--mesh-parallel tp|sp|hybrid] [--mesh-tp N]
 *   [--mesh-colocate off|on|auto] [--comm-only]
 *   [--overlap on|off] [--comm-overlap on|off] [--worker-arg ARG]...
 *   [--pipeline] [--plugin-path DIR]
 *   [--text | --text-only] [--text-model umt5-xxl|tiny|PATH] [--text-layers N]
 *   [--lora-rank R] [--lora-mode merge|live]
 * --lora-rank R applies a seeded rank-R LoRA on every linear
 * (dit_lora_synthetic) before the first chunk, merged into the weights or
 * live beside them: the per-forward times against a run without it are
 * the LoRA's cost; lora_apply_ms is the first apply (the merge itself).
 * --graphs off runs every forward eagerly instead of replaying recorded
 * ones (CUDA graphs); --fused off runs the unfused op chains; both default
 * to on where the backend has them (the JSON echoes the request).
 * Exit status: 0 success, 1 failure, 2 usage error (also: --pipeline in a
 * build without GStreamer).
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_generator.h"
#include "dit_loader.h"
#include "bench_comm.h"
#include "dit_lora.h"
#include "dit_mesh_config.h"
#include "dit_runner.h"
#include "dit_stage0.h"
#include "dit_model.h"
#include "dit_umt5.h"
#include "dit_taehv.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "tool_common.h"
#include "bench_breakdown.h"
#include "dit_clock.h"

#if DIT_HAVE_CUDA
#include <cuda_runtime.h>
#include "cuda/dit_cuda.h"
#endif

#ifndef DIT_HAVE_GST
#define DIT_HAVE_GST 0
#endif
#if DIT_HAVE_GST
#include <gst/gst.h>
#endif

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEXT_TOKENS 512
/* dit_cuda_gemm_path_counts: see kernels/cuda/dit_cuda.h */
#define BENCH_GEMM_PATHS 6
#if DIT_HAVE_CUDA
_Static_assert (BENCH_GEMM_PATHS == DIT_CUDA_GEMM_PATH_COUNT,
    "dit-bench's GEMM path table is out of date");
#endif
#define BENCH_MAX_WORKER_ARGS 16

typedef struct bench_args {
  const char *preset, *device, *vae, *decoder;
  int synthetic, layers, height, width, chunks, warmup, json, gemm;
  int graphs, fused, fold, breakdown;
  dit_dtype dtype;             /* compute dtype */
  int fp8;                     /* --dtype fp8: FP8 linear layers */
  int dtype_set;
  uint64_t seed;
  /* mesh */
  const char *mesh_arg, *mesh_backend, *worker_path;
  const char *mesh_parallel;   /* tp, sp, hybrid (NULL = tp) */
  int mesh_tp;                 /* hybrid: TP ranks per group */
  const char *mesh_colocate;   /* off, on, auto (NULL = auto) */
  int comm_only;               /* --comm-only: the collectives alone */
  int comm_overlap;            /* --comm-overlap (workers' collectives) */
  const char *worker_args[BENCH_MAX_WORKER_ARGS + 1];
  int n_worker_args, worker_path_given;
  dit_mesh_spec mesh;           /* --mesh-* as parsed (mesh_ranks > 0) */
  int mesh_ranks, overlap;
  /* pipeline */
  int pipeline;
  const char *plugin_path;
  /* cold start: checkpoints from disk to the first frame */
  int cold;
  const char *model_path;
  /* text encoder */
  int text, text_only, text_layers;
  const char *text_model;
  int text_model_set;
  const char *text_residency;   /* engine mode: device, host or none */
  /* LoRA: a seeded rank-R LoRA on every linear (0 = none), applied */
  int lora_rank;
  dit_lora_mode lora_mode;
  char worker_buf[4096];
} bench_args;

/* Running statistics of one timed quantity (ms). */
typedef struct bench_stat {
  double sum, min, max;
  int n;
} bench_stat;

static void
stat_add (bench_stat *s, double v)
{
  if (s->n == 0 || v < s->min)
    s->min = v;
  if (s->n == 0 || v > s->max)
    s->max = v;
  s->sum += v;
  s->n++;
}

static double
stat_mean (const bench_stat *s)
{
  return s->n ? s->sum / s->n : 0.0;
}

/* Kept samples of one timed quantity (ms), for medians and percentiles. */
#define BENCH_MAX_SAMPLES 4096
typedef struct bench_samples {
  double v[BENCH_MAX_SAMPLES];
  int n;
} bench_samples;

static void
samples_add (bench_samples *s, double v)
{
  if (s->n < BENCH_MAX_SAMPLES)
    s->v[s->n++] = v;
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile (p in (0, 1]): the smallest sample with at
 * least p of the samples at or below it; 0 without samples. */
static double
samples_quantile (const bench_samples *s, double p)
{
  if (s->n == 0)
    return 0.0;
  double *tmp = malloc ((size_t) s->n * sizeof *tmp);
  if (!tmp)
    return 0.0;
  memcpy (tmp, s->v, (size_t) s->n * sizeof *tmp);
  qsort (tmp, (size_t) s->n, sizeof *tmp, compare_double);
  int k = (int) ceil (p * s->n) - 1;
  if (k < 0)
    k = 0;
  if (k >= s->n)
    k = s->n - 1;
  double v = tmp[k];
  free (tmp);
  return v;
}

static double
samples_median (const bench_samples *s)
{
  return samples_quantile (s, 0.5);
}

static double
samples_min (const bench_samples *s)
{
  double m = s->n ? s->v[0] : 0.0;
  for (int i = 1; i < s->n; i++)
    m = s->v[i] < m ? s->v[i] : m;
  return m;
}

static double
samples_max (const bench_samples *s)
{
  double m = s->n ? s->v[0] : 0.0;
  for (int i = 1; i < s->n; i++)
    m = s->v[i] > m ? s->v[i] : m;
  return m;
}

static int
fail (const char *what)
{
  fprintf (stderr, "dit-bench: %s: %s\n", what, dit_last_error ());
  return 1;
}

/* ---- JSON output: one object, fields in call order --------------------- */

static int json_fields;

static void
json_key (const char *k)
{
  printf ("%s\"%s\": ", json_fields++ ? ", " : "{", k);
}

static void
json_num (const char *k, double v, int decimals)
{
  json_key (k);
  if (isfinite (v))
    printf ("%.*f", decimals, v);
  else
    printf ("null");
}

static void
json_int (const char *k, long long v)
{
  json_key (k);
  printf ("%lld", v);
}

static void
json_str (const char *k, const char *v)
{
  json_key (k);
  putchar ('"');
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf ("\\%c", *p);
    else if ((unsigned char) *p < 0x20)
      printf ("\\u%04x", (unsigned) (unsigned char) *p);
    else
      putchar (*p);
  }
  putchar ('"');
}

static void
json_int_array (const char *k, const int *v, int n)
{
  json_key (k);
  putchar ('[');
  for (int i = 0; i < n; i++)
    printf ("%s%d", i ? ", " : "", v[i]);
  putchar (']');
}

static void
json_end (void)
{
  printf ("%s}\n", json_fields ? "" : "{");
}

/* ------------------------------------------------------------------------ */

static size_t peak_used;

/* Device memory in use now (all of the device, as cudaMemGetInfo sees it). */
static void
mem_sample (dit_backend *be)
{
#if DIT_HAVE_CUDA
  if (dit_backend_device (be) == DIT_DEVICE_CUDA) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo (&free_b, &total_b) == cudaSuccess
        && total_b - free_b > peak_used)
      peak_used = total_b - free_b;
  }
#else
  (void) be;
#endif
}

/* Device bytes in use now (0 on the CPU). */
static double
mem_used (dit_backend *be)
{
#if DIT_HAVE_CUDA
  if (dit_backend_device (be) == DIT_DEVICE_CUDA) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo (&free_b, &total_b) == cudaSuccess)
      return (double) (total_b - free_b);
  }
#else
  (void) be;
#endif
  return 0.0;
}

static void
usage (FILE *f)
{
  fprintf (f,
      "Usage: dit-bench --synthetic [OPTIONS]\n"
      "\n"
      "Steady-state speed of the chunk loop (KV recompute, denoising, VAE\n"
      "decode, anchor) with seeded synthetic weights, on one device, on a mesh\n"
      "of dit-worker ranks, or through the GStreamer elements; or the umT5\n"
      "encode time of a 512-token prompt.\n"
      "\n"
      "Model and size:\n"
      "  --synthetic            seeded synthetic weights (required: the only\n"
      "                         weights dit-bench makes; not with --text-only)\n"
      "  --preset NAME          wan-14b (default), wan-1.3b, tiny or tiny-tp\n"
      "  --layers N             keep only the first N DiT blocks\n"
      "  --size WxH             frame size in pixels, multiples of 16 (default\n"
      "                         576x320)\n"
      "  --vae NAME             wan, tiny or none (default: tiny for --preset\n"
      "                         tiny, else wan); a VAE checkpoint for --cold\n"
      "  --decoder MODEL        tiny display decoder: taew2_1, lighttaew2_1,\n"
      "                         taehv-tiny or a TAEHV checkpoint (the anchor\n"
      "                         stays the full VAE's)\n"
      "  --seed N               seed of the synthetic weights (default 42)\n"
      "  --lora-rank R          a seeded rank-R LoRA on every linear (timing:\n"
      "                         compare against a run without)\n"
      "  --lora-mode MODE       merge (default: merged once at setup) or live\n"
      "                         (the low-rank term folded into every linear's GEMM)\n"
      "Run:\n"
      "  --chunks N             chunks timed (default 20)\n"
      "  --warmup N             chunks run before timing (default 3)\n"
      "  --device NAME          cuda, cuda:N or cpu (default: cuda when built\n"
      "                         with CUDA, else cpu)\n"
      "  --dtype f32|bf16|fp8   weight and activation dtype (default bf16 on\n"
      "                         CUDA, f32 on the CPU); fp8: FP8 linear layers\n"
      "                         (docs/precision.md), compute capability 8.9+\n"
      "  --gemm N               measure the bf16 GEMM peak at N x N x N (default\n"
      "                         8192, 0 = skip)\n"
      "  --graphs on|off        replay recorded CUDA graphs (default on)\n"
      "  --fused on|off         fused op chains where the backend has them\n"
      "                         (default on)\n"
      "  --fold on|off          residual adds and bias passes folded into the\n"
      "                         GEMM epilogues (default on)\n"
      "  --overlap on|off       after the serial pass, time the chunks as the\n"
      "                         elements run them, display and generator\n"
      "                         overlapped (engine and mesh; default on)\n"
      "  --breakdown            after the timed chunks, eager chunks timed op\n"
      "                         by op: GEMM / attention / other per forward\n"
      "  --json                 one JSON object instead of the report\n"
      "Mesh:\n"
      "  --mesh-devices LIST    run the DiT on dit-worker ranks, one per device\n"
      "                         (e.g. 0,1): 1, 2, 4 or 8 of them with tp, 1 to\n"
      "                         8 with sp (dividing the heads and the chunk's\n"
      "                         tokens), 4, 6 or 8 with hybrid\n"
      "  --mesh-backend NAME    the ranks' backend, cpu or cuda (default: the\n"
      "                         kind of --device)\n"
      "  --worker-path PATH     dit-worker executable (default: the one next to\n"
      "                         dit-bench, else PATH)\n"
      "  --mesh-parallel L      layout: tp (default), sp or hybrid (docs/mesh.md)\n"
      "  --mesh-tp N            hybrid: tensor-parallel ranks per group\n"
      "  --mesh-colocate M      where mesh rank 0 runs: off (a dit-worker), on\n"
      "                         (a thread of this process beside Stage 0, its\n"
      "                         own stream on the same GPU) or auto (the\n"
      "                         default: on when it shares --device's GPU)\n"
      "  --comm-only            time only the collectives of one chunk's\n"
      "                         forward for the mesh (ranks as threads of\n"
      "                         this process; --chunks repetitions, medians)\n"
      "  --comm-overlap on|off  the workers hide collectives behind compute\n"
      "                         (default on; off = the plain order, to compare\n"
      "                         exposed collective time)\n"
      "  --worker-arg ARG       one more argument for every dit-worker\n"
      "                         (repeat it for more)\n"
      "Pipeline:\n"
      "  --pipeline             ditgenerate ! queue ! ditdecode ! fakesink in\n"
      "                         this process (builds with GStreamer only)\n"
      "  --plugin-path DIR      where the dit plugin is (default: the\n"
      "                         registry, then this build's gst/)\n"
      "Text encoder:\n"
      "  --text                 also time the umT5 encode of a 512-token prompt\n"
      "  --text-only            time only that\n"
      "  --text-model NAME      umt5-xxl (default), tiny or a checkpoint path\n"
      "  --text-layers N        build only the first N encoder layers\n"
      "  --text-residency device|host|none\n"
      "                         engine mode: the text encoder (--text-model,\n"
      "                         default umt5-xxl, tiny for the tiny preset)\n"
      "                         loaded as the pipeline does and kept: weights on\n"
      "                         the device, or on the host between prompts\n"
      "                         (layers streamed per encode) (default device)\n"
      "Cold start:\n"
      "  --cold                 process start to the first frame with the\n"
      "                         checkpoints read from disk (page-cache residency\n"
      "                         of each file is reported); needs --model, --vae\n"
      "                         and --text-model as files\n"
      "  --model PATH           the DiT checkpoint for --cold\n"
      "  -h, --help             this help\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error (also --pipeline in a\n"
      "build without GStreamer).\n");
}

/* dit-worker next to this executable (argv[0]'s directory), else on PATH. */
static void
default_worker_path (bench_args *a, const char *argv0)
{
  const char *slash = strrchr (argv0, '/');
  if (!slash) {
    snprintf (a->worker_buf, sizeof a->worker_buf, "dit-worker");
  } else {
    int dir = (int) (slash - argv0);
    snprintf (a->worker_buf, sizeof a->worker_buf, "%.*s/dit-worker", dir, argv0);
  }
  a->worker_path = a->worker_buf;
}

/* The mesh flags as the library's options. */
static void
mesh_options (const bench_args *a, dit_mesh_options *o)
{
  dit_mesh_options_init (o);
  o->devices = a->mesh_arg;
  o->backend = a->mesh_backend;
  o->layout = a->mesh_parallel;
  o->mesh_tp = a->mesh_tp;
  o->colocate = a->mesh_colocate;
  o->colocate_name = "--mesh-colocate";
  o->stage0_device = a->device;
  /* only the mesh mode spawns dit-worker from here: --comm-only spawns
   * nothing and --pipeline leaves it to ditgenerate's own lookup */
  o->worker_path = a->comm_only || a->pipeline ? "/bin/true"
      : a->worker_path;
  o->devices_name = "--mesh-devices";
  o->backend_name = "--mesh-backend";
  o->worker_name = "--worker-path";
  /* real-size shards and slow CPU chunks: generous deadlines (a failure
   * still ends the run, with the rank that caused it) */
  o->join_timeout_ms = 600000;
  o->timeout_ms = 300000;
  o->max_inflight = 2;
}

/* The --mesh-* flags checked once, when the arguments are read, by the
 * library's own rules (the element's and dit-generate's messages). */
static int
parse_mesh (bench_args *a)
{
  dit_mesh_options o;
  mesh_options (a, &o);
  if (dit_mesh_spec_parse (&o, &a->mesh) != DIT_OK) {
    fprintf (stderr, "dit-bench: %s\n", dit_last_error ());
    return 0;
  }
  a->mesh_ranks = a->mesh.n_devices;
  return 1;
}

static int
parse_args (int argc, char **argv, bench_args *a)
{
  memset (a, 0, sizeof *a);
  a->preset = "wan-14b";
  a->height = 320;
  a->width = 576;
  a->chunks = 20;
  a->warmup = 3;
  a->gemm = 8192;
  a->seed = 42;
  a->graphs = 1;
  a->comm_overlap = 1;
  a->fused = 1;
  a->fold = 1;
  a->overlap = 1;
  a->text_model = "umt5-xxl";
  a->text_residency = "device";
  a->device = DIT_HAVE_CUDA ? "cuda" : "cpu";
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1, takes = 1;
    if (strcmp (o, "--synthetic") == 0) {
      a->synthetic = 1;
      takes = 0;
    } else if (strcmp (o, "--json") == 0) {
      a->json = 1;
      takes = 0;
    } else if (strcmp (o, "--pipeline") == 0) {
      a->pipeline = 1;
      takes = 0;
    } else if (strcmp (o, "--text") == 0) {
      a->text = 1;
      takes = 0;
    } else if (strcmp (o, "--cold") == 0) {
      a->cold = 1;
      takes = 0;
    } else if (strcmp (o, "--breakdown") == 0) {
      a->breakdown = 1;
      takes = 0;
    } else if (strcmp (o, "--comm-only") == 0) {
      a->comm_only = 1;
      takes = 0;
    } else if (strcmp (o, "--text-only") == 0) {
      a->text = a->text_only = 1;
      takes = 0;
    } else if (strcmp (o, "--help") == 0 || strcmp (o, "-h") == 0) {
      usage (stdout);
      exit (0);
    } else if (!v) {
      ok = 0;
    } else if (strcmp (o, "--preset") == 0) {
      a->preset = v;
    } else if (strcmp (o, "--layers") == 0) {
      ok = tool_parse_int (v, 1, 1000, &a->layers);
    } else if (strcmp (o, "--size") == 0) {
      ok = tool_parse_pixel_size (v, &a->width, &a->height);
    } else if (strcmp (o, "--chunks") == 0) {
      ok = tool_parse_int (v, 1, BENCH_MAX_SAMPLES, &a->chunks);
    } else if (strcmp (o, "--warmup") == 0) {
      ok = tool_parse_int (v, 0, 100000, &a->warmup);
    } else if (strcmp (o, "--device") == 0) {
      a->device = v;
    } else if (strcmp (o, "--dtype") == 0) {
      dit_precision p;
      ok = tool_parse_precision (v, &p);
      a->dtype = dit_precision_compute_dtype (p);
      a->fp8 = p == DIT_PRECISION_FP8;
      a->dtype_set = 1;
    } else if (strcmp (o, "--vae") == 0) {
      a->vae = v;
    } else if (strcmp (o, "--decoder") == 0) {
      a->decoder = v;
    } else if (strcmp (o, "--gemm") == 0) {
      ok = tool_parse_int (v, 0, 65536, &a->gemm);
    } else if (strcmp (o, "--graphs") == 0 || strcmp (o, "--fused") == 0
        || strcmp (o, "--overlap") == 0 || strcmp (o, "--fold") == 0) {
      int on = strcmp (v, "on") == 0;
      ok = on || strcmp (v, "off") == 0;
      if (o[2] == 'g')
        a->graphs = on;
      else if (strcmp (o, "--fold") == 0)
        a->fold = on;
      else if (o[2] == 'f')
        a->fused = on;
      else
        a->overlap = on;
    } else if (strcmp (o, "--seed") == 0) {
      ok = tool_parse_u64 (v, &a->seed);
    } else if (strcmp (o, "--lora-rank") == 0) {
      ok = tool_parse_int (v, 1, 4096, &a->lora_rank);
    } else if (strcmp (o, "--lora-mode") == 0) {
      ok = dit_lora_mode_parse (v, &a->lora_mode) == DIT_OK;
    } else if (strcmp (o, "--mesh-devices") == 0) {
      a->mesh_arg = v;
    } else if (strcmp (o, "--mesh-backend") == 0) {
      a->mesh_backend = v;
      ok = strcmp (v, "cpu") == 0 || strcmp (v, "cuda") == 0;
    } else if (strcmp (o, "--mesh-parallel") == 0) {
      dit_mesh_layout l;
      a->mesh_parallel = v;
      ok = v && dit_mesh_layout_parse (v, &l) == DIT_OK;
    } else if (strcmp (o, "--mesh-colocate") == 0) {
      dit_mesh_colocate cl;
      a->mesh_colocate = v;
      ok = v && dit_mesh_colocate_parse (v, &cl) == DIT_OK;
    } else if (strcmp (o, "--mesh-tp") == 0) {
      ok = tool_parse_int (v, 1, DIT_MESH_MAX_RANKS, &a->mesh_tp);
    } else if (strcmp (o, "--worker-path") == 0) {
      a->worker_path = v;
      a->worker_path_given = 1;
    } else if (strcmp (o, "--comm-overlap") == 0) {
      a->comm_overlap = strcmp (v, "on") == 0;
      ok = a->comm_overlap || strcmp (v, "off") == 0;
      if (ok && !a->comm_overlap) {
        ok = a->n_worker_args + 2 <= BENCH_MAX_WORKER_ARGS;
        if (ok) {
          a->worker_args[a->n_worker_args++] = "--comm-overlap";
          a->worker_args[a->n_worker_args++] = "off";
        }
      }
    } else if (strcmp (o, "--worker-arg") == 0) {
      ok = a->n_worker_args < BENCH_MAX_WORKER_ARGS;
      if (ok)
        a->worker_args[a->n_worker_args++] = v;
    } else if (strcmp (o, "--plugin-path") == 0) {
      a->plugin_path = v;
    } else if (strcmp (o, "--model") == 0) {
      a->model_path = v;
    } else if (strcmp (o, "--text-model") == 0) {
      a->text_model = v;
      a->text_model_set = 1;
    } else if (strcmp (o, "--text-residency") == 0) {
      a->text_residency = v;
      ok = strcmp (v, "device") == 0 || strcmp (v, "host") == 0
          || strcmp (v, "none") == 0;
    } else if (strcmp (o, "--text-layers") == 0) {
      ok = tool_parse_int (v, 1, 1000, &a->text_layers);
    } else {
      fprintf (stderr, "dit-bench: unknown option '%s'\n", o);
      usage (stderr);
      return 0;
    }
    if (!ok) {
      if (strcmp (o, "--size") == 0 && v)
        fprintf (stderr, "dit-bench: --size %s: use WxH in pixels, positive "
            "multiples of 16\n", v);
      else
        fprintf (stderr, "dit-bench: bad or missing value for %s\n", o);
      usage (stderr);
      return 0;
    }
    i += takes;
  }
  if (a->cold && (!a->model_path || !a->vae || !a->text_model_set)) {
    fprintf (stderr, "dit-bench: --cold needs --model DIT.safetensors, --vae "
        "VAE.safetensors and --text-model UMT5.safetensors\n");
    return 0;
  }
  if (a->cold && (a->pipeline || a->mesh_arg || a->text_only)) {
    fprintf (stderr, "dit-bench: --cold runs alone (no --pipeline, "
        "--mesh-devices or --text-only)\n");
    return 0;
  }
  if (a->comm_only && (!a->mesh_arg || a->pipeline || a->cold || a->text)) {
    fprintf (stderr, "dit-bench: --comm-only needs --mesh-devices and runs "
        "alone (no --pipeline, --cold or --text)\n");
    return 0;
  }
  if (!a->synthetic && !a->text_only && !a->cold && !a->comm_only) {
    fprintf (stderr, "dit-bench: only --synthetic weights are supported\n");
    usage (stderr);
    return 0;
  }
  if (a->pipeline && a->text_only) {
    fprintf (stderr, "dit-bench: --pipeline and --text-only exclude each other\n");
    return 0;
  }
  if (!a->vae)
    a->vae = strcmp (a->preset, "tiny") == 0 ? "tiny" : "wan";
  if (a->decoder && strcmp (a->vae, "none") == 0) {
    fprintf (stderr, "dit-bench: --decoder needs a VAE for the anchor (not "
        "--vae none)\n");
    return 0;
  }
  if (!a->worker_path)
    default_worker_path (a, argv[0]);
  if (a->mesh_arg && !parse_mesh (a))
    return 0;
  return 1;
}

/* A 4-D view with explicit strides. */
static dit_tensor
view4 (void *data, dit_dtype dt, dit_device dev, const int64_t shape[4],
    const int64_t stride[4])
{
  dit_tensor t = dit_tensor_make (data, dt, dev, 4, shape);
  for (int i = 0; i < 4; i++)
    t.stride[i] = stride[i];
  return t;
}

/* Frame f of a channels-first [C, T, h, w] tensor as [C, 1, h, w]. */
static dit_tensor
frame_of (const dit_tensor *t, int64_t f)
{
  int64_t shape[4] = { t->shape[0], 1, t->shape[2], t->shape[3] };
  return view4 ((char *) t->data + (size_t) (f * t->stride[1])
      * dit_dtype_size (t->dtype), t->dtype, t->device, shape, t->stride);
}

/* The first decoded frame as bytes on the host (what a sink would get). */
static dit_status
frame_to_host (dit_backend *be, const dit_tensor *pix, void *dev_bytes,
    uint8_t *host, int h, int w)
{
  int64_t s[3] = { 3, h, w };
  dit_tensor f = dit_tensor_make (pix->data, pix->dtype, pix->device, 3, s);
  f.stride[0] = pix->stride[0];
  f.stride[1] = pix->stride[2];
  dit_vae_pixels_params pp = { .format = DIT_PIXEL_RGBX, .width = w,
    .height = h, .plane = { dev_bytes }, .stride = { 4 * (int64_t) w },
    .tensor = &f };
  DIT_TRY (dit_tensor_to_pixels (be, &pp));
  return dit_download (be, host, dev_bytes, (size_t) 4 * w * h);
}

/* Rate of a large bf16 GEMM ([n, n] x [n, n]ᵀ, random inputs) in TFLOP/s. */
static dit_status
gemm_peak (dit_backend *be, int n, double *tflops)
{
  dit_tensor x, w, y;
  int64_t s[2] = { n, n };
  *tflops = 0.0;
  DIT_TRY (dit_tensor_alloc (be, &x, DIT_BF16, 2, s));
  DIT_TRY (dit_tensor_alloc (be, &w, DIT_BF16, 2, s));
  DIT_TRY (dit_tensor_alloc (be, &y, DIT_BF16, 2, s));
  dit_noise_params nx = { .y = &x, .seed = 7, .stream = 1 };
  dit_noise_params nw = { .y = &w, .seed = 7, .stream = 2 };
  dit_status st = dit_noise (be, &nx);
  if (st == DIT_OK)
    st = dit_noise (be, &nw);
  dit_gemm_params gp = { .x = &x, .w = &w, .y = &y };
  for (int i = 0; st == DIT_OK && i < 3; i++)
    st = dit_gemm (be, &gp);
  if (st == DIT_OK)
    st = dit_synchronize (be);
  const int reps = dit_backend_device (be) == DIT_DEVICE_CPU ? 1 : 20;
  double t0 = dit_now_ms ();
  for (int i = 0; st == DIT_OK && i < reps; i++)
    st = dit_gemm (be, &gp);
  if (st == DIT_OK)
    st = dit_synchronize (be);
  double ms = (dit_now_ms () - t0) / reps;
  if (st == DIT_OK)
    *tflops = 2.0 * n * (double) n * n / (ms * 1e-3) / 1e12;
  mem_sample (be);
  dit_tensor_free (be, &x);
  dit_tensor_free (be, &w);
  dit_tensor_free (be, &y);
  return st;
}

/* The chunk loop is the element's: the generator behind a dit_runner (in
 * this process or on the mesh), Stage 0 a dit_stage0 (context rule, anchor
 * path, display decode queue) on the same backend.  This process runs
 * both on one thread, one after the other. */
typedef struct bench_state {
  bench_args a;
  dit_backend *be;
  dit_model_config cfg;
  dit_gen_config gc;
  dit_weights *weights;
  dit_runner *runner;
  dit_backend *gen_be;          /* engine mode: the generator's own backend
                                   (ditgenerate's private one), NULL = be */
  dit_stage0 *s0;               /* NULL with --vae none */
  dit_vae *enc;                 /* the streaming encoder of encode_bench */
  dit_tensor pix, enc_lat;
  void *dev_bytes;
  uint8_t *host_bytes;
  int64_t chunk_index;
  float *prompt;                /* host [prompt_rows, text_dim] */
  int prompt_rows;
  /* engine mode: the text encoder, kept as the pipeline keeps it */
  dit_umt5 *t5;
  dit_umt5_config t5_cfg;
  dit_weights *t5_weights;      /* device residency: the encoder's weights */
  double lora_apply_ms;         /* --lora-rank: the first apply (merge: the
                                   merge itself), NaN without */
} bench_state;

typedef struct bench_result {
  bench_stat recompute, denoise, decode, anchor_enc, anchor, period, encode;
  bench_stat stage0;            /* push + display decode, both streams done */
  bench_stat period_ovl;        /* the overlapped pass, push to push */
  double ttff_cold, ttff_warm, weights_ms, vae_weights_ms, gemm_tflops;
  int64_t gemm_paths[BENCH_GEMM_PATHS];
  char gemm_fp8_paths[4096];   /* JSON array: FP8 GEMM shape -> path */
  /* memory: device bytes in use after each setup step (cudaMemGetInfo,
   * the whole device), and the tensor bytes of the components */
  double mem_base, mem_text, mem_dit_weights, mem_dit_state, mem_vae;
  double dit_weight_bytes, dit_fp8_weight_bytes, kv_cache_bytes;
  double text_weight_bytes, text_host_bytes, text_encode_ms, text_setup_ms;
  /* --breakdown: eager chunks, per op */
  int breakdown_chunks;
  bench_split bd_recompute, bd_denoise, bd_outside;
} bench_result;

/* Mesh mode: per-chunk samples (ms) of the serial and overlapped passes. */
typedef struct mesh_result {
  bench_samples recompute, denoise, dit;          /* worker timing */
  bench_samples allreduce, allreduce_share;       /* rank 0, measured chunks */
  bench_samples exposed;                          /* rank 0: of allreduce,
                                                     what the compute waited */
  int allreduce_unmeasured;                       /* chunks a rank reported -1 */
  int world_nccl;                                 /* the data plane's transport */
  int colocated;                                  /* rank 0 in this process */
  bench_samples stage0, anchor, decode_rest, stage1, period_serial;
  bench_samples period, stage0_ovl, stage1_ovl, hidden;
  bench_samples host_copies;                      /* per chunk, serial pass */
  double setup_ms;
} mesh_result;

typedef struct text_result {
  bench_samples encode;
  double weights_ms;
  int tokens, layers, dim, warmup;
  char model[64];
} text_result;

typedef struct pipe_result {
  double element_fps, element_chunk_ms, wall_fps, steady_ms, first_frame_ms,
      total_ms;
  unsigned long long element_chunks;
  double stage0_ms, stage1_ms, period_ms, hidden_ms, overlap_score;
  long long frames, steady_frames, warm_frames;
  int frames_per_chunk;
  char device[64];
} pipe_result;

/* A new stream: chunk 0 next, on the runner and in Stage 0. */
static void
stream_reset (bench_state *st)
{
  dit_runner_reset (st->runner);
  if (st->s0)
    dit_stage0_reset (st->s0);
  st->chunk_index = 0;
}

/* Chunk k's context from Stage 0 (nothing for chunk 0) into req. */
static dit_status
chunk_request (bench_state *st, dit_chunk_request *req, dit_tensor *ctx)
{
  memset (req, 0, sizeof *req);
  req->chunk_index = st->chunk_index;
  DIT_TRY (dit_stage0_context (st->s0, st->chunk_index,
      dit_runner_backend (st->runner), ctx));
  req->context = ctx->data ? ctx : NULL;
  return DIT_OK;
}

/* Stage 0 on the critical path: x0 into the history and the decode queue,
 * the anchor path for the next chunk. */
static dit_status
stage0_head (bench_state *st, const dit_tensor *x0, double *ms)
{
  double t0 = dit_now_ms ();
  DIT_TRY (dit_stage0_push_chunk (st->s0, st->chunk_index, x0,
      dit_runner_backend (st->runner)));
  st->chunk_index++;
  *ms = dit_now_ms () - t0;
  return DIT_OK;
}

/* The display: decode the chunk's other latents and release them. */
static dit_status
stage0_tail (bench_state *st, int64_t chunk, double *ms)
{
  double t0 = dit_now_ms ();
  const int64_t last = (chunk + 1) * st->gc.frames_per_chunk - 1;
  if (dit_stage0_has_decoder (st->s0)) {
    DIT_TRY (dit_stage0_decode_to (st->s0, last));
    dit_stage0_release (st->s0, last);
  }
  *ms = dit_now_ms () - t0;
  return DIT_OK;
}

/* Chunk 0 of a new stream up to its first decoded frame on the host, then
 * the rest of the chunk.  Returns the TTFF. */
static dit_status
first_chunk (bench_state *st, double *ttff)
{
  dit_chunk_request req;
  dit_tensor ctx, x0, pv;
  double head, tail;
  stream_reset (st);
  double t0 = dit_now_ms ();
  DIT_TRY (chunk_request (st, &req, &ctx));
  DIT_TRY (dit_runner_run_chunk (st->runner, &req, &x0, NULL));
  DIT_TRY (stage0_head (st, &x0, &head));
  if (dit_stage0_has_decoder (st->s0)) {
    DIT_TRY (dit_stage0_decode_to (st->s0, 0));
    DIT_TRY (dit_stage0_frames (st->s0, 0, &pv));
    DIT_TRY (frame_to_host (st->be, &pv, st->dev_bytes, st->host_bytes,
        st->a.height, st->a.width));
  } else {
    DIT_TRY (dit_synchronize (st->be));
  }
  *ttff = dit_now_ms () - t0;
  DIT_TRY (stage0_tail (st, 0, &tail));
  return dit_synchronize (st->be);
}

/* One steady-state chunk; adds its stage times to r when `record`. */
static dit_status
steady_chunk (bench_state *st, bench_result *r, int record)
{
  const int F = st->gc.frames_per_chunk;
  dit_chunk_request req;
  dit_chunk_timing tm;
  dit_tensor ctx, x0;
  dit_stage0_stats s0, s1, s2;
  double head, tail;
  double t0 = dit_now_ms ();
  int64_t k = st->chunk_index;
  DIT_TRY (chunk_request (st, &req, &ctx));
  DIT_TRY (dit_runner_run_chunk (st->runner, &req, &x0, &tm));
  DIT_TRY (dit_synchronize (dit_runner_backend (st->runner)));
  dit_stage0_get_stats (st->s0, &s0);
  double ts0 = dit_now_ms ();
  DIT_TRY (stage0_head (st, &x0, &head));
  dit_stage0_get_stats (st->s0, &s1);
  DIT_TRY (stage0_tail (st, k, &tail));
  /* both streams: the anchor path may run on its own beside the display
   * decode (dit_stage0_anchor_on_own_stream); its time is then known */
  DIT_TRY (dit_stage0_sync (st->s0));
  dit_stage0_get_stats (st->s0, &s2);
  double period = dit_now_ms () - t0, stage0 = dit_now_ms () - ts0;
  if (!record)
    return DIT_OK;
  stat_add (&r->recompute, tm.recompute_ms);
  stat_add (&r->denoise, tm.denoise_ms / st->gc.num_steps);
  if (dit_stage0_has_decoder (st->s0)) {
    /* the anchor path decoded one latent (the anchor latent) and encoded
     * its last frame; the display decoded the others.  Beside a tiny
     * display decoder (--decoder) the anchor path is the full VAE's decode
     * of the anchor latent and the encode, and the display decodes all. */
    const int tiny = dit_stage0_has_display_decoder (st->s0);
    double dec_a = s1.anchors > s0.anchors && !tiny ? s1.last_decode_ms : 0.0;
    double enc = s1.anchors > s0.anchors ? s2.last_anchor_ms - dec_a : 0.0;
    int rest = (int) (s1.decoded > s0.decoded ? F - (s1.decoded - s0.decoded)
        : F);
    if (s1.anchors > s0.anchors) {
      if (!tiny)
        stat_add (&r->decode, dec_a);
      stat_add (&r->anchor_enc, enc);
      stat_add (&r->anchor, s2.last_anchor_ms);
    }
    for (int f = 0; f < rest; f++)
      stat_add (&r->decode, tail / rest);
  }
  stat_add (&r->period, period);
  stat_add (&r->stage0, stage0);
  (void) head;
  return DIT_OK;
}

/* ---- the overlapped pass: the element's two threads --------------------- */

/* The display side, as ditdecode runs it behind its queue: the chunks the
 * generator pushed, decoded in order, every frame converted to bytes on
 * the host (a fakesink's system memory), then released.  Stage 0 calls of
 * both threads hold `lock`, as GstDitSession's hold its decode lock. */
typedef struct bench_display {
  bench_state *st;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int64_t pushed, shown;        /* chunks pushed by the generator / shown */
  int stop;
  dit_status status;
  char error[512];
} bench_display;

static dit_status
display_chunk (bench_state *st, int64_t k)
{
  const int F = st->gc.frames_per_chunk;
  if (!dit_stage0_has_decoder (st->s0))
    return DIT_OK;
  DIT_TRY (dit_stage0_decode_to (st->s0, (k + 1) * F - 1));
  for (int64_t l = k * F; l < (k + 1) * F; l++) {
    dit_tensor pv;
    DIT_TRY (dit_stage0_frames (st->s0, l, &pv));
    for (int64_t t = 0; t < pv.shape[1]; t++) {
      dit_tensor f = pv;
      f.data = (char *) pv.data + (size_t) (t * pv.stride[1])
          * dit_dtype_size (pv.dtype);
      DIT_TRY (frame_to_host (st->be, &f, st->dev_bytes, st->host_bytes,
          st->a.height, st->a.width));
    }
  }
  dit_stage0_release (st->s0, (k + 1) * F - 1);
  return DIT_OK;
}

static void *
display_main (void *arg)
{
  bench_display *d = arg;
  pthread_mutex_lock (&d->lock);
  for (;;) {
    while (d->shown >= d->pushed && !d->stop)
      pthread_cond_wait (&d->cond, &d->lock);
    if (d->shown >= d->pushed || d->status != DIT_OK)
      break;
    d->status = display_chunk (d->st, d->shown);
    if (d->status != DIT_OK) {
      snprintf (d->error, sizeof d->error, "%s", dit_last_error ());
      d->stop = 1;
    } else {
      d->shown++;
    }
    pthread_cond_broadcast (&d->cond);
  }
  pthread_mutex_unlock (&d->lock);
  return NULL;
}

/* One chunk on the generator's thread: context, run, push (waiting for
 * room in the decode queue as ditgenerate waits on the session). */
static dit_status
overlapped_chunk (bench_display *d)
{
  bench_state *st = d->st;
  dit_chunk_request req;
  dit_tensor ctx, x0;
  double head;
  pthread_mutex_lock (&d->lock);
  dit_status s = chunk_request (st, &req, &ctx);
  pthread_mutex_unlock (&d->lock);
  if (s == DIT_OK)
    s = dit_runner_run_chunk (st->runner, &req, &x0, NULL);
  if (s != DIT_OK)
    return s;
  pthread_mutex_lock (&d->lock);
  while (!d->stop && !dit_stage0_has_room (st->s0, st->gc.frames_per_chunk))
    pthread_cond_wait (&d->cond, &d->lock);
  if (d->stop)
    s = dit_error (d->status, "display: %s", d->error);
  else
    s = stage0_head (st, &x0, &head);
  d->pushed = st->chunk_index;
  pthread_cond_broadcast (&d->cond);
  pthread_mutex_unlock (&d->lock);
  return s;
}

/* `n` chunks timed push to push (one more starts the clock). */
static dit_status
run_overlapped (bench_state *st, bench_result *r, int n)
{
  bench_display d;
  pthread_t display;
  memset (&d, 0, sizeof d);
  d.st = st;
  d.pushed = d.shown = st->chunk_index;
  pthread_mutex_init (&d.lock, NULL);
  pthread_cond_init (&d.cond, NULL);
  if (pthread_create (&display, NULL, display_main, &d) != 0)
    return dit_error (DIT_ERR_NOMEM, "cannot start the display thread");
  dit_status s = DIT_OK;
  double last = 0.0;
  for (int i = 0; i <= n && s == DIT_OK; i++) {
    s = overlapped_chunk (&d);
    double t = dit_now_ms ();
    if (s == DIT_OK && i > 0)
      stat_add (&r->period_ovl, t - last);
    last = t;
  }
  pthread_mutex_lock (&d.lock);
  d.stop = 1;                   /* after the last pushed chunk is shown */
  pthread_cond_broadcast (&d.cond);
  pthread_mutex_unlock (&d.lock);
  pthread_join (display, NULL);
  if (s == DIT_OK && d.status != DIT_OK)
    s = dit_error (d.status, "display: %s", d.error);
  pthread_mutex_destroy (&d.lock);
  pthread_cond_destroy (&d.cond);
  if (s == DIT_OK)
    s = dit_synchronize (st->be);
  return s;
}

/* Streaming encode of 4-frame chunks (video-to-video input path). */
static dit_status
encode_bench (bench_state *st, bench_result *r, int n)
{
  dit_vae_reset_encoder (st->enc);
  dit_tensor first = frame_of (&st->pix, 0);
  DIT_TRY (dit_vae_encode (st->enc, &first, &st->enc_lat));
  for (int i = 0; i < n + 2; i++) {
    DIT_TRY (dit_synchronize (st->be));
    double t0 = dit_now_ms ();
    DIT_TRY (dit_vae_encode (st->enc, &st->pix, &st->enc_lat));
    DIT_TRY (dit_synchronize (st->be));
    if (i >= 2)
      stat_add (&r->encode, dit_now_ms () - t0);
  }
  return DIT_OK;
}

/* ---- setup -------------------------------------------------------------- */

static int
setup_backend (bench_state *st)
{
  bench_args *a = &st->a;
  st->be = tool_backend (a->device);
  if (!st->be)
    return fail ("backend");
  if (!a->dtype_set)
    a->dtype = dit_backend_device (st->be) == DIT_DEVICE_CPU ? DIT_F32 : DIT_BF16;
  return 0;
}

/* Model and generator configs, and the prompt (seeded normal embeddings,
 * 64 rows, padded to text_len by the generator). */
static int
setup_configs (bench_state *st)
{
  bench_args *a = &st->a;
  if (dit_model_config_preset (a->preset, &st->cfg) != DIT_OK)
    return fail ("preset");
  if (a->layers)
    st->cfg.num_layers = a->layers;
  dit_gen_config_default (&st->gc);
  st->gc.latent_h = a->height / 8;
  st->gc.latent_w = a->width / 8;
  st->gc.dtype = a->dtype;
  st->gc.fp8 = a->fp8;
  st->gc.seed = a->seed;
  if (st->gc.context_frames > st->gc.frames_per_chunk + 1) {
    fprintf (stderr, "dit-bench: %d context frames need at least %d frames "
        "per chunk\n", st->gc.context_frames, st->gc.context_frames - 1);
    return 1;
  }
  st->prompt_rows = 64;
  st->prompt = malloc ((size_t) st->prompt_rows * st->cfg.text_dim
      * sizeof *st->prompt);
  if (!st->prompt)
    return fail ("prompt");
  tool_fill_normal (st->prompt, (size_t) st->prompt_rows * st->cfg.text_dim,
      a->seed, 99);
  return 0;
}

/* Whether a DiT parameter is one of the linears the FP8 path quantizes
 * (self q, k, v, o, cross q, o, FFN up and down; issue 14). */
static int
fp8_linear (const char *name)
{
  static const char *const parts[] = { ".self_attn.q.weight",
    ".self_attn.k.weight", ".self_attn.v.weight", ".self_attn.o.weight",
    ".cross_attn.q.weight", ".cross_attn.o.weight", ".ffn.0.weight",
    ".ffn.2.weight" };
  size_t n = strlen (name);
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    size_t m = strlen (parts[i]);
    if (n >= m && strcmp (name + n - m, parts[i]) == 0)
      return 1;
  }
  return 0;
}

/* Bytes of a parameter list in dtype dt, and (fp8 != NULL) with the FP8
 * linears as e4m3 plus one f32 scale per output channel. */
static double
spec_bytes (const dit_param_spec *specs, size_t count, dit_dtype dt,
    double *fp8)
{
  double b = 0.0, f = 0.0;
  for (size_t i = 0; i < count; i++) {
    double n = 1.0;
    for (int d = 0; d < specs[i].ndim; d++)
      n *= (double) specs[i].shape[d];
    b += n * dit_dtype_size (dt);
    f += fp8_linear (specs[i].name) ? n + 4.0 * (double) specs[i].shape[0]
        : n * dit_dtype_size (dt);
  }
  if (fp8)
    *fp8 = f;
  return b;
}

/* The text encoder as the pipeline keeps it (engine mode): umT5 of
 * --text-model (default: umt5-xxl, tiny for the tiny preset), synthetic
 * weights made on the backend, the encoder kept for the whole run with its
 * weights on the device or (--text-residency host) on the host; the bench
 * prompt (64 ids) is encoded by it, and the encode is timed. */
#define BENCH_PROMPT_IDS 64

static int
setup_text_engine (bench_state *st, bench_result *r, int repeats)
{
  bench_args *a = &st->a;
  if (strcmp (a->text_residency, "none") == 0)
    return 0;
  const char *model = a->text_model_set ? a->text_model
      : strcmp (a->preset, "tiny") == 0 ? "tiny" : "umt5-xxl";
  const int host = strcmp (a->text_residency, "host") == 0;
  dit_weights *w = NULL;
  double t0 = dit_now_ms ();
  if (dit_umt5_load_weights (model, a->seed + 2, a->dtype, st->be, &st->t5_cfg,
        &w) != DIT_OK)
    return fail ("text model");
  if (st->t5_cfg.dim != st->cfg.text_dim) {
    fprintf (stderr, "dit-bench: text model '%s' has d_model %d, the DiT's "
        "text_dim is %d\n", model, st->t5_cfg.dim, st->cfg.text_dim);
    dit_weights_free (w);
    return 1;
  }
  r->text_weight_bytes = spec_bytes (w->specs, w->count, w->dtype, NULL);
  dit_status s = host
      ? dit_umt5_create_host_resident (&st->t5_cfg, w, st->be, &st->t5)
      : dit_umt5_create (&st->t5_cfg, w, st->be, &st->t5);
  if (s == DIT_OK && host) {
    /* the weights live on the host now: the device copies go */
    dit_weights_free (w);
    w = NULL;
    r->text_host_bytes = (double) dit_umt5_host_bytes (st->t5);
  }
  st->t5_weights = w;
  if (s != DIT_OK)
    return fail ("text encoder");
  r->text_setup_ms = dit_now_ms () - t0;
  /* the bench prompt: 64 ids through the encoder, three times (median) */
  int32_t ids[BENCH_PROMPT_IDS];
  for (int i = 0; i < BENCH_PROMPT_IDS - 1; i++)
    ids[i] = st->t5_cfg.vocab > 2 ? 2 + (98 + i) % (st->t5_cfg.vocab - 2) : 1;
  ids[BENCH_PROMPT_IDS - 1] = 1;
  dit_tensor et = dit_tensor_2d (st->prompt, DIT_F32, DIT_DEVICE_CPU,
      BENCH_PROMPT_IDS, st->cfg.text_dim);
  double ms[3];
  repeats = repeats < 1 ? 1 : repeats > 3 ? 3 : repeats;
  for (int i = 0; i < repeats; i++) {
    double e0 = dit_now_ms ();
    if (dit_umt5_encode (st->t5, ids, BENCH_PROMPT_IDS, &et) != DIT_OK)
      return fail ("text encode");
    ms[i] = dit_now_ms () - e0;
  }
  qsort (ms, (size_t) repeats, sizeof ms[0], compare_double);
  r->text_encode_ms = ms[repeats / 2];
  st->prompt_rows = BENCH_PROMPT_IDS;
  mem_sample (st->be);
  return 0;
}

/* The runner (a mesh when spec says so) and the prompt. */
static int
setup_runner (bench_state *st, dit_weights *w, const dit_mesh_spec *spec)
{
  bench_args *a = &st->a;
  dit_runner_config rc;
  dit_runner_config_default (&rc);
  rc.model = st->cfg;
  rc.gen = st->gc;
  rc.weights = w;
  rc.graphs = a->graphs;
  rc.fused = a->fused;
  rc.gemm_fold = a->fold;
  rc.mesh = spec;
  rc.preset = a->preset;
  rc.synthetic_seed = a->seed;
  rc.layers = a->layers;
  rc.worker_args = a->worker_args;
  rc.lora_mode = a->lora_mode;
  rc.lora_keep_base = 0;        /* one strength for the whole run */
  if (dit_runner_create (&rc, st->gen_be ? st->gen_be : st->be, &st->runner)
      != DIT_OK)
    return fail (spec ? "mesh" : "generator");
  if (a->lora_rank > 0) {
    /* every forward after this carries the LoRA (live: the side GEMMs;
     * merge: nothing, the weights changed once here) */
    dit_lora_spec ls = { .count = 1 };
    snprintf (ls.items[0].path, sizeof ls.items[0].path, "%s%d",
        DIT_LORA_SYNTHETIC_PREFIX, a->lora_rank);
    ls.items[0].strength = 1.0f;
    double t0 = dit_now_ms ();
    if (dit_runner_set_lora (st->runner, &ls) != DIT_OK
        || dit_synchronize (st->gen_be ? st->gen_be : st->be) != DIT_OK)
      return fail ("lora");
    st->lora_apply_ms = dit_now_ms () - t0;
  }
  dit_tensor et = dit_tensor_2d (st->prompt, DIT_F32, DIT_DEVICE_CPU,
      st->prompt_rows, st->cfg.text_dim);
  if (dit_runner_set_prompt (st->runner, &et) != DIT_OK)
    return fail ("prompt");
  return 0;
}

/* The DiT in this process: synthetic weights and the runner. */
static int
setup_local_dit (bench_state *st, bench_result *r)
{
  bench_args *a = &st->a;
  dit_param_spec *specs = NULL;
  size_t count = 0;
  if (dit_model_config_params (&st->cfg, &specs, &count) != DIT_OK)
    return fail ("parameter list");
  double t0 = dit_now_ms ();
  dit_status s = a->fp8 ? dit_fp8_check (st->be) : DIT_OK;
  if (s == DIT_OK)
    s = dit_weights_synthetic (specs, count, a->seed, a->dtype, st->be,
        &st->weights);
  free (specs);
  /* fp8: the linear weights quantized per output channel on the device */
  if (s == DIT_OK && a->fp8)
    s = dit_weights_to_fp8 (st->weights, dit_model_fp8_select);
  if (s != DIT_OK || dit_synchronize (st->be) != DIT_OK)
    return fail ("synthetic weights");
  r->weights_ms = dit_now_ms () - t0;
  mem_sample (st->be);
  const dit_weights *w = st->weights;
  r->dit_weight_bytes = spec_bytes (w->specs, w->count, w->dtype,
      &r->dit_fp8_weight_bytes);
  /* --dtype fp8: the weights are FP8 already (the measured figures show
   * it), nothing left to project */
  if (a->fp8)
    r->dit_weight_bytes = r->dit_fp8_weight_bytes;
  r->kv_cache_bytes = 2.0 * st->cfg.num_layers * st->gc.kv_window
      * (double) (st->gc.latent_h / 2) * (st->gc.latent_w / 2) * st->cfg.dim
      * dit_dtype_size (a->dtype);
  r->mem_dit_weights = mem_used (st->be);

  /* the generator runs on its own backend instance, as in ditgenerate:
   * its thread must not share a stream with Stage 0's */
  if (!(st->gen_be = tool_backend (a->device)))
    return fail ("generator backend");
  if (setup_runner (st, st->weights, NULL) != 0)
    return 1;
  if (dit_synchronize (st->be) != DIT_OK)
    return fail ("prompt");
  r->mem_dit_state = mem_used (st->be);
  mem_sample (st->be);
  return 0;
}

/* Stage 0 (the VAE's decoder for the display and the anchor path), a
 * streaming encoder for the encode timing, frame buffers. */
static int
setup_stage0 (bench_state *st, bench_result *r)
{
  bench_args *a = &st->a;
  dit_stage0_config sc;
  dit_vae_config vc;
  dit_taehv_config tc;
  dit_weights *vw = NULL, *tw = NULL;
  dit_stage0_config_default (&sc);
  sc.latent_h = st->gc.latent_h;
  sc.latent_w = st->gc.latent_w;
  sc.frames_per_chunk = st->gc.frames_per_chunk;
  sc.context_frames = st->gc.context_frames;
  sc.capacity = 2 * st->gc.frames_per_chunk;
  if (strcmp (a->vae, "none") != 0) {
    double t0 = dit_now_ms ();
    /* a preset: synthetic weights on the backend; a path: the checkpoint */
    dit_status s = dit_load_vae (a->vae, a->seed + 1, a->dtype, st->be, &vc,
        &vw);
    if (s != DIT_OK)
      return fail ("vae weights");
    sc.vae_config = &vc;
    sc.vae_weights = vw;
    sc.vae_dtype = a->dtype;
    /* --decoder: a TAEHV displays, the full VAE keeps the anchor */
    if (a->decoder && dit_load_taehv (a->decoder, a->seed + 2, a->dtype,
            st->be, &tc, &tw) != DIT_OK) {
      dit_weights_free (vw);
      return fail ("decoder weights");
    }
    sc.display_config = tw ? &tc : NULL;
    sc.display_weights = tw;
    s = dit_stage0_create (&sc, st->be, &st->s0);
    if (s == DIT_OK)
      s = dit_vae_create (&vc, vw, a->width, a->height, a->dtype, st->be,
          &st->enc);
    dit_weights_free (vw);
    dit_weights_free (tw);
    if (s != DIT_OK)
      return fail ("stage 0");
    r->vae_weights_ms = dit_now_ms () - t0;
  } else {
    sc.anchor = DIT_ANCHOR_LATENT;
    if (dit_stage0_create (&sc, st->be, &st->s0) != DIT_OK)
      return fail ("stage 0");
  }
  int64_t ps[4] = { 3, 4, a->height, a->width };
  int64_t ls[4] = { 16, 1, st->gc.latent_h, st->gc.latent_w };
  if (dit_tensor_alloc (st->be, &st->pix, DIT_F32, 4, ps) != DIT_OK
      || dit_tensor_alloc (st->be, &st->enc_lat, DIT_F32, 4, ls) != DIT_OK)
    return fail ("buffers");
  st->dev_bytes = dit_backend_alloc (st->be, (size_t) 4 * a->width * a->height);
  st->host_bytes = malloc ((size_t) 4 * a->width * a->height);
  if (!st->dev_bytes || !st->host_bytes)
    return fail ("frame buffers");
  if (dit_synchronize (st->be) != DIT_OK)
    return fail ("vae");
  r->mem_vae = mem_used (st->be);
  mem_sample (st->be);
  return 0;
}

/* ---- mesh mode ---------------------------------------------------------- */

/* Spawn the workers (synthetic weights of the same seed and shape) through
 * the runner. */
static int
setup_mesh (bench_state *st, mesh_result *mr)
{
  double t0 = dit_now_ms ();
  int rc = setup_runner (st, NULL, &st->a.mesh);
  mr->setup_ms = dit_now_ms () - t0;
  return rc;
}

static dit_status
mesh_submit (bench_state *st)
{
  dit_chunk_request req;
  dit_tensor ctx;
  DIT_TRY (chunk_request (st, &req, &ctx));
  return dit_runner_submit (st->runner, &req);
}

static dit_status
mesh_serial_chunk (bench_state *st, mesh_result *mr, int record)
{
  dit_chunk_timing tm;
  dit_tensor x0;
  double head, tail;
  int64_t k = st->chunk_index;
  double t0 = dit_now_ms ();
  DIT_TRY (mesh_submit (st));
  DIT_TRY (dit_runner_collect (st->runner, &x0, &tm));
  double t1 = dit_now_ms ();
  dit_runner_stats rs;
  dit_stage0_stats a0, a1;
  dit_runner_get_stats (st->runner, &rs);
  dit_stage0_get_stats (st->s0, &a0);
  DIT_TRY (stage0_head (st, &x0, &head));
  DIT_TRY (stage0_tail (st, k, &tail));
  /* an anchor path on its own stream is done (and timed) only here */
  DIT_TRY (dit_stage0_sync (st->s0));
  double t2 = dit_now_ms ();
  dit_stage0_get_stats (st->s0, &a1);
  const double anchor = dit_stage0_anchor_on_own_stream (st->s0)
      && a1.anchors > a0.anchors ? a1.last_anchor_ms : head;
  if (record) {
    mr->world_nccl = rs.world_nccl;
    mr->colocated = rs.colocated;
    if (rs.allreduce_ms[0] >= 0) {
      samples_add (&mr->allreduce, rs.allreduce_ms[0]);
      if (rs.exposed_ms[0] >= 0)
        samples_add (&mr->exposed, rs.exposed_ms[0]);
      if (tm.recompute_ms + tm.denoise_ms > 0)
        samples_add (&mr->allreduce_share, rs.allreduce_ms[0]
            / (tm.recompute_ms + tm.denoise_ms));
    } else {
      mr->allreduce_unmeasured++;
    }
    samples_add (&mr->recompute, tm.recompute_ms);
    samples_add (&mr->denoise, tm.denoise_ms / st->gc.num_steps);
    samples_add (&mr->dit, tm.total_ms);
    samples_add (&mr->stage1, t1 - t0);
    samples_add (&mr->anchor, anchor);
    samples_add (&mr->decode_rest, tail);
    samples_add (&mr->stage0, t2 - t1);
    samples_add (&mr->period_serial, t2 - t0);
    samples_add (&mr->host_copies, (double) (rs.last_copies.uploads
            + rs.last_copies.downloads));
  }
  return DIT_OK;
}

/* Chunk 0 and the warm-up chunks, the serial pass, the overlapped pass. */
static dit_status
run_mesh (bench_state *st, mesh_result *mr)
{
  const bench_args *a = &st->a;
  double head, tail;
  dit_tensor x0;
  stream_reset (st);
  DIT_TRY (mesh_serial_chunk (st, mr, 0));
  for (int i = 0; i < a->warmup; i++)
    DIT_TRY (mesh_serial_chunk (st, mr, 0));
  for (int i = 0; i < a->chunks; i++)
    DIT_TRY (mesh_serial_chunk (st, mr, 1));
  if (!a->overlap)
    return DIT_OK;

  /* Prime: chunk k in, its anchor done, its other latents pending. */
  int64_t k = st->chunk_index;
  DIT_TRY (mesh_submit (st));
  DIT_TRY (dit_runner_collect (st->runner, &x0, NULL));
  DIT_TRY (stage0_head (st, &x0, &head));
  for (int i = 0; i < a->chunks; i++, k++) {
    dit_chunk_timing tm;
    double t0 = dit_now_ms ();
    DIT_TRY (mesh_submit (st));                  /* chunk k + 1 */
    DIT_TRY (stage0_tail (st, k, &tail));        /* chunk k, mesh busy */
    DIT_TRY (dit_runner_collect (st->runner, &x0, &tm));
    double t1 = dit_now_ms ();
    DIT_TRY (stage0_head (st, &x0, &head));      /* anchor of chunk k + 1 */
    double t2 = dit_now_ms ();
    samples_add (&mr->period, t2 - t0);
    samples_add (&mr->stage1_ovl, t1 - t0);
    samples_add (&mr->stage0_ovl, head + tail);
  }
  DIT_TRY (stage0_tail (st, k, &tail));
  /* hidden: what the overlapped period saves against the serial stages */
  const double s0 = samples_median (&mr->stage0), s1 = samples_median (&mr->stage1);
  for (int i = 0; i < mr->period.n; i++) {
    double h = s0 + s1 - mr->period.v[i];
    samples_add (&mr->hidden, h > 0 ? h : 0.0);
  }
  return DIT_OK;
}

/* ---- text encoder ------------------------------------------------------- */

static int
run_text (const bench_args *a, dit_backend *be, text_result *tr)
{
  dit_umt5_config cfg;
  dit_weights *w = NULL;
  dit_umt5 *t5 = NULL;
  float *emb = NULL;
  int32_t ids[TEXT_TOKENS];
  int rc = 1, preset = 0;
  dit_status s;

  for (const char *const *p = dit_umt5_config_preset_names (); *p; p++)
    preset |= strcmp (*p, a->text_model) == 0;
  double t0 = dit_now_ms ();
  if (preset) {
    /* only the layers that run are made */
    dit_param_spec *specs = NULL;
    size_t count = 0;
    s = dit_umt5_config_preset (a->text_model, &cfg);
    if (s == DIT_OK && a->text_layers && a->text_layers < cfg.num_layers)
      cfg.num_layers = a->text_layers;
    if (s == DIT_OK)
      s = dit_umt5_config_params (&cfg, &specs, &count);
    if (s == DIT_OK)
      s = dit_weights_synthetic (specs, count, a->seed, a->dtype, be, &w);
    free (specs);
  } else {
    s = dit_umt5_load_weights (a->text_model, a->seed, a->dtype, be, &cfg, &w);
  }
  if (s == DIT_OK)
    s = dit_synchronize (be);
  if (s != DIT_OK) {
    rc = fail ("text model");
    goto out;
  }
  tr->weights_ms = dit_now_ms () - t0;
  if (dit_umt5_create (&cfg, w, be, &t5) != DIT_OK) {
    rc = fail ("text encoder");
    goto out;
  }
  tr->layers = cfg.num_layers;
  if (a->text_layers && a->text_layers < cfg.num_layers) {
    dit_umt5_set_layer_limit (t5, a->text_layers);
    tr->layers = a->text_layers;
  }
  tr->dim = cfg.dim;
  snprintf (tr->model, sizeof tr->model, "%s", cfg.name);
  /* a full prompt: ids 100, 101, ... (wrapped below the vocabulary), EOS */
  const int n = cfg.max_tokens < TEXT_TOKENS ? cfg.max_tokens : TEXT_TOKENS;
  for (int i = 0; i < n - 1; i++)
    ids[i] = cfg.vocab > 2 ? 2 + (98 + i) % (cfg.vocab - 2) : 1;
  ids[n - 1] = 1;
  tr->tokens = n;
  emb = malloc ((size_t) n * cfg.dim * sizeof *emb);
  if (!emb) {
    fprintf (stderr, "dit-bench: out of memory\n");
    goto out;
  }
  dit_tensor et = dit_tensor_2d (emb, DIT_F32, DIT_DEVICE_CPU, n, cfg.dim);
  tr->warmup = a->warmup > 0 ? a->warmup : 1;
  for (int i = 0; i < tr->warmup + a->chunks; i++) {
    double e0 = dit_now_ms ();
    if (dit_umt5_encode (t5, ids, n, &et) != DIT_OK) {
      rc = fail ("text encode");
      goto out;
    }
    if (i >= tr->warmup)
      samples_add (&tr->encode, dit_now_ms () - e0);
  }
  for (size_t i = 0; i < (size_t) n * cfg.dim; i++)
    if (!isfinite (emb[i])) {
      fprintf (stderr, "dit-bench: text encoder output is not finite\n");
      goto out;
    }
  rc = 0;
out:
  free (emb);
  dit_umt5_free (t5);
  dit_weights_free (w);
  return rc;
}

/* ---- pipeline mode ------------------------------------------------------ */

#ifndef DIT_BENCH_GST_PLUGIN_DIR
#define DIT_BENCH_GST_PLUGIN_DIR ""
#endif

#if DIT_HAVE_GST

/* "cuda" -> "cuda:0" (the elements want an index), others as given. */
static void
element_device (const char *device, char *buf, size_t n)
{
  if (strcmp (device, "cuda") == 0)
    snprintf (buf, n, "cuda:0");
  else
    snprintf (buf, n, "%s", device);
}

typedef struct pipe_probe {
  long long frames, warm_frames;
  double t_first, t_warm, t_last;
} pipe_probe;

/* Runs on the sink's streaming thread; the main thread reads the counts
 * after EOS came through the bus (a lock in between orders them). */
static GstPadProbeReturn
pipe_frame_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
  pipe_probe *p = user;
  guint n = 1;
  double t = dit_now_ms ();
  (void) pad;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = gst_buffer_list_length (GST_PAD_PROBE_INFO_BUFFER_LIST (info));
  for (guint i = 0; i < n; i++) {
    p->frames++;
    if (p->frames == 1)
      p->t_first = t;
    if (p->frames == p->warm_frames)
      p->t_warm = t;
  }
  p->t_last = t;
  return GST_PAD_PROBE_OK;
}

/* The dit plugin: already on the registry path (GST_PLUGIN_PATH), else
 * from --plugin-path, else from this build tree. */
static int
pipe_find_plugin (const bench_args *a)
{
  const char *dirs[2] = { a->plugin_path, DIT_BENCH_GST_PLUGIN_DIR };
  GstElementFactory *f = gst_element_factory_find ("ditgenerate");
  for (int i = 0; !f && i < 2; i++) {
    if (dirs[i] && *dirs[i]) {
      gst_registry_scan_path (gst_registry_get (), dirs[i]);
      f = gst_element_factory_find ("ditgenerate");
    }
  }
  if (!f) {
    fprintf (stderr, "dit-bench: the GStreamer element 'ditgenerate' was not "
        "found; point GST_PLUGIN_PATH or --plugin-path at the directory of "
        "libgstdit.so\n");
    return 0;
  }
  gst_object_unref (f);
  return 1;
}

/* Set an optional property from its string form; a clear error when the
 * element does not have it (an older plugin). */
static int
pipe_set_optional (GstElement *e, const char *prop, const char *value,
    const char *option)
{
  if (!g_object_class_find_property (G_OBJECT_GET_CLASS (e), prop)) {
    fprintf (stderr, "dit-bench: %s needs ditgenerate's '%s' property, which "
        "this plugin does not have\n", option, prop);
    return 0;
  }
  gst_util_set_object_arg (G_OBJECT (e), prop, value);
  return 1;
}

static int
run_pipeline (const bench_args *a, pipe_result *pr)
{
  const int warmup = a->warmup, total = a->warmup + a->chunks;
  dit_gen_config gc;
  pipe_probe probe;
  int rc = 1;
  GError *err = NULL;
  GstElement *pipe = NULL, *gen = NULL, *sink = NULL;
  GstBus *bus = NULL;
  GstMessage *msg = NULL;

  gst_init (NULL, NULL);
  if (!pipe_find_plugin (a))
    return 1;
  if (strcmp (a->vae, "none") == 0) {
    fprintf (stderr, "dit-bench: --pipeline needs a VAE (ditdecode)\n");
    return 2;
  }
  dit_gen_config_default (&gc);
  pr->frames_per_chunk = gc.frames_per_chunk;
  element_device (a->device, pr->device, sizeof pr->device);
  /* frames of the warm-up chunks: chunk 0 has 1 + 4 (F - 1), the others
   * 4 F; without warm-up the window starts at the first frame */
  memset (&probe, 0, sizeof probe);
  probe.warm_frames = warmup == 0 ? 1
      : 1 + 4LL * (gc.frames_per_chunk - 1) + (warmup - 1) * 4LL * gc.frames_per_chunk;
  pr->warm_frames = probe.warm_frames;

  /* --dtype reaches the element as its dtype property (else its auto) */
  const char *dtype = a->dtype_set
      ? dit_precision_name (dit_precision_of (a->dtype, a->fp8)) : "auto";
  gchar *desc = g_strdup_printf ("ditgenerate name=gen model=%s device=%s "
      "dtype=%s vae-model=%s num-chunks=%d seed=%" G_GUINT64_FORMAT " "
      "! video/x-dit-latent%s,width=%d,height=%d,frames=%d "
      "! queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 "
      "! ditdecode name=dec device=%s vae-model=%s %s%s "
      "! fakesink name=sink sync=false", a->preset, pr->device, dtype, a->vae,
      total, (guint64) a->seed,
      /* on a GPU the latents stay in device memory between the elements */
      g_str_has_prefix (pr->device, "cuda") ? "(memory:DitDevice)" : "",
      a->width / 8, a->height / 8, gc.frames_per_chunk,
      pr->device, a->vae, a->decoder ? "decoder-model=" : "",
      a->decoder ? a->decoder : "");
  pipe = gst_parse_launch (desc, &err);
  if (!pipe || err) {
    fprintf (stderr, "dit-bench: pipeline '%s': %s\n", desc,
        err ? err->message : "could not be made");
    g_free (desc);
    goto out;
  }
  g_free (desc);
  gen = gst_bin_get_by_name (GST_BIN (pipe), "gen");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  if (a->mesh_arg) {
    if (a->mesh_parallel && !pipe_set_optional (gen, "mesh-parallel",
            a->mesh_parallel, "--mesh-parallel"))
      return 1;
    if (a->mesh_tp > 0)
      g_object_set (gen, "mesh-tp", a->mesh_tp, NULL);
    if (a->mesh_colocate && !pipe_set_optional (gen, "mesh-colocate",
            a->mesh_colocate, "--mesh-colocate"))
      goto out;
    if (!pipe_set_optional (gen, "mesh-devices", a->mesh_arg, "--mesh-devices"))
      goto out;
    if (a->mesh_backend && !pipe_set_optional (gen, "mesh-backend",
            a->mesh_backend, "--mesh-backend"))
      goto out;
    /* the dit-worker of this build, unless the element is told otherwise */
    if ((a->worker_path_given || access (a->worker_path, X_OK) == 0)
        && !pipe_set_optional (gen, "worker-path", a->worker_path,
            "--worker-path"))
      goto out;
  }
  if (a->layers) {
    char v[16];
    snprintf (v, sizeof v, "%d", a->layers);
    if (!pipe_set_optional (gen, "layers", v, "--layers"))
      goto out;
  }
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER
      | GST_PAD_PROBE_TYPE_BUFFER_LIST, pipe_frame_probe, &probe, NULL);
  gst_object_unref (pad);

  bus = gst_element_get_bus (pipe);
  double t0 = dit_now_ms ();
  GstStateChangeReturn sr = gst_element_set_state (pipe, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, sr == GST_STATE_CHANGE_FAILURE
      ? 5 * GST_SECOND : GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  double t1 = dit_now_ms ();
  if (!msg || GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;
    GError *e = NULL;
    if (msg)
      gst_message_parse_error (msg, &e, &dbg);
    fprintf (stderr, "dit-bench: pipeline failed: %s%s%s\n",
        e ? e->message : "state change failed", dbg ? " — " : "",
        dbg ? dbg : "");
    g_clear_error (&e);
    g_free (dbg);
    goto out;
  }
  gdouble fps = 0, chunk_ms = 0;
  guint64 chunks = 0;
  g_object_get (gen, "fps", &fps, "chunk-ms", &chunk_ms, "chunks", &chunks,
      NULL);
  pr->element_fps = fps;
  pr->element_chunk_ms = chunk_ms;
  pr->element_chunks = chunks;
  /* The element's overlap statistics (last chunk; the score is a median
   * over its last 32 chunks). */
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (gen), "overlap-score"))
    g_object_get (gen, "stage0-ms", &pr->stage0_ms, "stage1-ms",
        &pr->stage1_ms, "period-ms", &pr->period_ms, "hidden-ms",
        &pr->hidden_ms, "overlap-score", &pr->overlap_score, NULL);
  pr->frames = probe.frames;
  pr->total_ms = t1 - t0;
  pr->first_frame_ms = probe.frames ? probe.t_first - t0 : 0.0;
  pr->steady_frames = probe.frames - probe.warm_frames;
  pr->steady_ms = probe.t_last - probe.t_warm;
  if (pr->steady_frames <= 0 || pr->steady_ms <= 0) {
    fprintf (stderr, "dit-bench: only %lld frames reached the sink (%lld "
        "warm-up frames); nothing to time\n", probe.frames, probe.warm_frames);
    goto out;
  }
  pr->wall_fps = pr->steady_frames / (pr->steady_ms * 1e-3);
  rc = 0;
out:
  if (msg)
    gst_message_unref (msg);
  if (bus)
    gst_object_unref (bus);
  if (pipe)
    gst_element_set_state (pipe, GST_STATE_NULL);
  if (gen)
    gst_object_unref (gen);
  if (sink)
    gst_object_unref (sink);
  if (pipe)
    gst_object_unref (pipe);
  g_clear_error (&err);
  return rc;
}

#else

static int
run_pipeline (const bench_args *a, pipe_result *pr)
{
  (void) a;
  (void) pr;
  fprintf (stderr, "dit-bench: --pipeline needs GStreamer, and this build has "
      "none (configured with -Dgst=disabled or without gstreamer-1.0)\n");
  return 2;
}

#endif

/* ---- reports ------------------------------------------------------------ */

static void
device_name (const bench_state *st, char *dev, size_t n)
{
  snprintf (dev, n, "%s", st->a.device);
#if DIT_HAVE_CUDA
  if (st->be && dit_backend_device (st->be) == DIT_DEVICE_CUDA) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties (&prop, st->be->device_index) == cudaSuccess)
      snprintf (dev, n, "%s", prop.name);
  }
#endif
}

static void
json_common (const bench_state *st, const char *mode, const char *dev)
{
  const bench_args *a = &st->a;
  const int64_t fs = (int64_t) (st->gc.latent_h / 2) * (st->gc.latent_w / 2);
  json_str ("mode", mode);
  json_str ("preset", a->preset);
  json_int ("layers", st->cfg.num_layers);
  json_int ("height", a->height);
  json_int ("width", a->width);
  json_str ("device", dev);
  json_str ("dtype", dit_precision_name (dit_precision_of (a->dtype, a->fp8)));
  json_str ("vae", a->vae);
  json_str ("decoder", a->decoder ? a->decoder : "full");
  json_int ("chunks", a->chunks);
  json_int ("warmup", a->warmup);
  json_int ("tokens_per_frame", fs);
  json_int ("lora_rank", a->lora_rank);
  json_str ("lora_mode", a->lora_rank > 0 ? dit_lora_mode_name (a->lora_mode)
      : "none");
  json_num ("lora_apply_ms", st->lora_apply_ms, 2);
}

static void
report_text (const bench_state *st, const text_result *tr)
{
  const bench_args *a = &st->a;
  if (a->json) {
    json_str ("text_model", tr->model);
    json_int ("text_layers", tr->layers);
    json_int ("text_tokens", tr->tokens);
    json_str ("text_dtype", dit_dtype_name (a->dtype));
    json_int ("text_repeats", tr->encode.n);
    json_num ("text_encode_ms_median", samples_median (&tr->encode), 3);
    json_num ("text_encode_ms_p90", samples_quantile (&tr->encode, 0.9), 3);
    json_num ("text_encode_ms_min", samples_min (&tr->encode), 3);
    json_num ("text_encode_ms_max", samples_max (&tr->encode), 3);
    json_num ("text_weights_ms", tr->weights_ms, 1);
    return;
  }
  printf ("  umT5 encode (%s, %d layers, %s, %d tokens, d_model %d)\n",
      tr->model, tr->layers, dit_dtype_name (a->dtype), tr->tokens, tr->dim);
  printf ("    median %9.2f ms  p90 %.2f ms  (min %.2f, max %.2f; %d runs after "
      "%d warm-up)\n", samples_median (&tr->encode),
      samples_quantile (&tr->encode, 0.9), samples_min (&tr->encode),
      samples_max (&tr->encode), tr->encode.n, tr->warmup);
  printf ("    weights made in %.1f ms\n", tr->weights_ms);
}

/* One forward kind of --breakdown: per-forward means. */
static void
json_split (const char *key, const bench_split *s)
{
  const double n = s->forwards > 0 ? s->forwards : 1;
  json_key (key);
  printf ("{\"forwards\": %d, \"ms\": %.3f, \"gemm_ms\": %.3f, "
      "\"attention_ms\": %.3f, \"other_ms\": %.3f, \"gemm_share\": %.4f, "
      "\"attention_share\": %.4f, \"other_share\": %.4f, \"ops\": {",
      s->forwards, s->total_ms / n, s->gemm_ms / n, s->attention_ms / n,
      s->other_ms / n, s->total_ms > 0 ? s->gemm_ms / s->total_ms : 0.0,
      s->total_ms > 0 ? s->attention_ms / s->total_ms : 0.0,
      s->total_ms > 0 ? s->other_ms / s->total_ms : 0.0);
  int first = 1;
  for (int op = 0; op < BENCH_OPS; op++) {
    if (!s->op_calls[op])
      continue;
    const char *name = bench_op_name (op);
    char unknown[16];
    snprintf (unknown, sizeof unknown, "op%d", op);
    printf ("%s\"%s\": {\"ms\": %.3f, \"calls\": %.1f}", first ? "" : ", ",
        name ? name : unknown, s->op_ms[op] / n, (double) s->op_calls[op] / n);
    first = 0;
  }
  printf ("}}");
}

static void
print_split (const char *label, const bench_split *s)
{
  const double n = s->forwards > 0 ? s->forwards : 1;
  const double t = s->total_ms > 0 ? s->total_ms : 1;
  printf ("    %-18s %8.2f ms: GEMM %.2f ms (%.1f%%), attention %.2f ms "
      "(%.1f%%), other %.2f ms (%.1f%%)\n", label, s->total_ms / n,
      s->gemm_ms / n, 100.0 * s->gemm_ms / t, s->attention_ms / n,
      100.0 * s->attention_ms / t, s->other_ms / n, 100.0 * s->other_ms / t);
  printf ("      other by op:");
  for (int op = 0; op < BENCH_OPS; op++) {
    if (!s->op_calls[op] || op == DIT_OP_GEMM || op == DIT_OP_ATTENTION)
      continue;
    const char *name = bench_op_name (op);
    if (name)
      printf (" %s %.2f ms (%.0f calls)", name, s->op_ms[op] / n,
          (double) s->op_calls[op] / n);
    else
      printf (" op%d %.2f ms (%.0f calls)", op, s->op_ms[op] / n,
          (double) s->op_calls[op] / n);
  }
  printf ("\n");
}

/* The memory figures of the engine run (MiB), deltas of cudaMemGetInfo
 * between the setup steps: [0] CUDA context + backend workspaces (in use
 * before anything was made), [1] text encoder, [2] DiT weights, [3] DiT
 * state (KV cache, activations, cross-attention K/V), [4] VAE + latent and
 * pixel buffers; then the peak over the run, and the projections. */
typedef struct bench_mem {
  double context, text, dit_weights, dit_state, vae, peak;
  double fp8_saving, peak_fp8, peak_fp8_text_host;
} bench_mem;

static void
mem_figures (const bench_state *st, const bench_result *r, bench_mem *m)
{
  const double mib = 1048576.0;
  m->context = r->mem_base / mib;
  m->text = (r->mem_text - r->mem_base) / mib;
  m->dit_weights = (r->mem_dit_weights - r->mem_text) / mib;
  m->dit_state = (r->mem_dit_state - r->mem_dit_weights) / mib;
  m->vae = (r->mem_vae - r->mem_dit_state) / mib;
  m->peak = (double) peak_used / mib;
  /* projections (not measured): the DiT's FP8 linears as e4m3 + scales,
   * and the text encoder's weights on the host */
  m->fp8_saving = (r->dit_weight_bytes - r->dit_fp8_weight_bytes) / mib;
  m->peak_fp8 = m->peak - m->fp8_saving;
  m->peak_fp8_text_host = m->peak_fp8;
  if (st->t5 && !r->text_host_bytes)
    m->peak_fp8_text_host -= r->text_weight_bytes / mib;
  if (dit_backend_device (st->be) == DIT_DEVICE_CPU)   /* no device memory to count */
    m->context = m->text = m->dit_weights = m->dit_state = m->vae = m->peak
        = m->peak_fp8 = m->peak_fp8_text_host = NAN;
}

static void
report_memory_json (const bench_state *st, const bench_result *r)
{
  bench_mem m;
  mem_figures (st, r, &m);
  json_str ("text_residency", st->t5 ? st->a.text_residency : "none");
  if (st->t5) {
    json_str ("text_model_engine", st->t5_cfg.name);
    json_num ("text_encode_ms", r->text_encode_ms, 3);
    json_num ("text_setup_ms", r->text_setup_ms, 1);
    json_num ("text_weight_mib", r->text_weight_bytes / 1048576.0, 1);
    json_num ("text_host_mib", r->text_host_bytes / 1048576.0, 1);
  }
  json_num ("mem_context_mib", m.context, 1);
  json_num ("mem_text_mib", m.text, 1);
  json_num ("mem_dit_weights_mib", m.dit_weights, 1);
  json_num ("mem_dit_state_mib", m.dit_state, 1);
  json_num ("mem_vae_mib", m.vae, 1);
  json_num ("dit_weight_mib", r->dit_weight_bytes / 1048576.0, 1);
  json_num ("kv_cache_mib", r->kv_cache_bytes / 1048576.0, 1);
  json_num ("projected_fp8_dit_weight_mib", r->dit_fp8_weight_bytes / 1048576.0, 1);
  json_num ("projected_peak_fp8_mib", m.peak_fp8, 0);
  json_num ("projected_peak_fp8_text_host_mib", m.peak_fp8_text_host, 0);
}

static void
report_memory_text (const bench_state *st, const bench_result *r)
{
  bench_mem m;
  mem_figures (st, r, &m);
  const double gib = 1024.0;
  if (st->t5)
    printf ("  text encoder %s, weights %s (%.0f MiB), encode of %d ids "
        "%.1f ms\n", st->t5_cfg.name, st->a.text_residency,
        r->text_weight_bytes / 1048576.0, BENCH_PROMPT_IDS, r->text_encode_ms);
  if (dit_backend_device (st->be) == DIT_DEVICE_CPU)
    return;
  printf ("  device memory by component (cudaMemGetInfo deltas, MiB):\n");
  printf ("    CUDA context + workspaces %9.0f\n", m.context);
  if (st->t5)
    printf ("    text encoder (%s, %s) %9.0f  (weights %.0f MiB%s%.0f MiB; "
        "encode of %d ids %.1f ms)\n", st->t5_cfg.name, st->a.text_residency,
        m.text, r->text_weight_bytes / 1048576.0,
        r->text_host_bytes ? ", on the host: " : "", r->text_host_bytes
        / 1048576.0, BENCH_PROMPT_IDS, r->text_encode_ms);
  else
    printf ("    text encoder              (none)\n");
  printf ("    DiT weights               %9.0f  (tensors %.0f MiB)\n",
      m.dit_weights, r->dit_weight_bytes / 1048576.0);
  printf ("    DiT state                 %9.0f  (KV cache %.0f MiB, "
      "activations, cross K/V)\n", m.dit_state, r->kv_cache_bytes / 1048576.0);
  printf ("    VAE + latent/pixel buffers %8.0f\n", m.vae);
  printf ("    peak over the run         %9.0f  (%.2f GiB)\n", m.peak,
      m.peak / gib);
  printf ("    projected with FP8 DiT linears (e4m3 + per-channel scales, "
      "%.0f MiB instead of %.0f): peak %.0f MiB (%.2f GiB)\n",
      r->dit_fp8_weight_bytes / 1048576.0, r->dit_weight_bytes / 1048576.0,
      m.peak_fp8, m.peak_fp8 / gib);
  if (st->t5 && !r->text_host_bytes)
    printf ("    ... and the text encoder's weights on the host: peak %.0f MiB "
        "(%.2f GiB)\n", m.peak_fp8_text_host, m.peak_fp8_text_host / gib);
}

static void
report_engine (const bench_state *st, const bench_result *r, const char *dev)
{
  const bench_args *a = &st->a;
  const int F = st->gc.frames_per_chunk, C = st->gc.context_frames;
  const int64_t fs = (int64_t) (st->gc.latent_h / 2) * (st->gc.latent_w / 2);
  const double rec_flops = dit_model_forward_flops (&st->cfg, C * fs, C * fs);
  const double den_flops = dit_model_forward_flops (&st->cfg, F * fs,
      (C + F) * fs);
  const double rec = stat_mean (&r->recompute), den = stat_mean (&r->denoise);
  const double dit_ms = rec + st->gc.num_steps * den;
  const double dit_tflops = (rec_flops + st->gc.num_steps * den_flops)
      / (dit_ms * 1e-3) / 1e12;
  const double den_tflops = den_flops / (den * 1e-3) / 1e12;
  const bench_stat *per = a->overlap ? &r->period_ovl : &r->period;
  const double period = stat_mean (per);
  const int frames = 4 * F;
  const double fps = frames / (period * 1e-3);
  const double frac = r->gemm_tflops > 0 ? dit_tflops / r->gemm_tflops : 0.0;

  if (a->json) {
    json_common (st, "engine", dev);
    json_num ("recompute_ms", rec, 3);
    json_num ("denoise_ms", den, 3);
    json_num ("recompute_tflops", rec_flops / (rec * 1e-3) / 1e12, 1);
    json_num ("denoise_tflops", den_tflops, 1);
    json_num ("dit_tflops", dit_tflops, 1);
    json_num ("gemm_peak_tflops", r->gemm_tflops, 1);
    json_num ("fraction_of_bound", frac, 3);
    json_num ("vae_decode_ms_per_latent", stat_mean (&r->decode), 3);
    json_num ("vae_encode_ms_per_latent", stat_mean (&r->encode), 3);
    json_num ("anchor_encode_ms", stat_mean (&r->anchor_enc), 3);
    json_num ("anchor_ms", stat_mean (&r->anchor), 3);
    json_num ("stage0_per_chunk_ms", stat_mean (&r->stage0), 3);
    json_int ("anchor_own_stream", st->s0 ? dit_stage0_anchor_on_own_stream
        (st->s0) : 0);
    json_int ("overlap", a->overlap);
    json_num ("chunk_period_serial_ms", stat_mean (&r->period), 3);
    json_num ("chunk_period_ms", period, 3);
    json_num ("chunk_period_min_ms", per->min, 3);
    json_num ("chunk_period_max_ms", per->max, 3);
    json_num ("fps", fps, 2);
    json_num ("ttff_ms", r->ttff_warm, 1);
    json_num ("ttff_cold_ms", r->ttff_cold, 1);
    json_num ("weights_ms", r->weights_ms, 1);
    json_num ("vae_setup_ms", r->vae_weights_ms, 1);
    json_num ("peak_device_mib", (double) peak_used / 1048576.0, 0);
    report_memory_json (st, r);
    json_int ("graphs", a->graphs);
    json_int ("fused", a->fused);
    json_int ("fold", a->fold);
    json_key ("gemm_paths");
    for (int i = 0; i < BENCH_GEMM_PATHS; i++)
      printf ("%s%lld", i ? ", " : "[", (long long) r->gemm_paths[i]);
    printf ("]");
    json_key ("gemm_fp8_paths");
    printf ("%s", r->gemm_fp8_paths[0] ? r->gemm_fp8_paths : "[]");
    if (r->breakdown_chunks) {
      json_int ("breakdown_chunks", r->breakdown_chunks);
      json_split ("breakdown_denoise", &r->bd_denoise);
      json_split ("breakdown_recompute", &r->bd_recompute);
      json_num ("breakdown_outside_forwards_ms", r->bd_outside.total_ms
          / r->breakdown_chunks, 3);
    }
    return;
  }
  printf ("dit-bench: %s (%d layers) %dx%d, %s, %s, vae %s, %d chunks after %d "
      "warm-up, graphs %s, fused %s\n", a->preset, st->cfg.num_layers,
      a->height, a->width, dev, dit_precision_name (dit_precision_of (a->dtype, a->fp8)), a->vae, a->chunks,
      a->warmup, a->graphs ? "on" : "off", a->fused ? "on" : "off");
  printf ("  weights made in            %9.1f ms (vae setup %.1f ms)\n",
      r->weights_ms, r->vae_weights_ms);
  if (a->lora_rank > 0)
    printf ("  LoRA rank %-4d %-5s        %9.1f ms to apply (forwards below "
        "carry it)\n", a->lora_rank, dit_lora_mode_name (a->lora_mode),
        st->lora_apply_ms);
  printf ("  bf16 GEMM peak (%d^3)    %9.1f TFLOP/s\n", a->gemm, r->gemm_tflops);
  printf ("  recompute forward          %9.2f ms  (L=%lld N=%lld, %.1f TFLOP/s)\n",
      rec, (long long) (C * fs), (long long) (C * fs),
      rec_flops / (rec * 1e-3) / 1e12);
  printf ("  denoise forward            %9.2f ms  (L=%lld N=%lld, %.1f TFLOP/s)\n",
      den, (long long) (F * fs), (long long) ((C + F) * fs), den_tflops);
  printf ("  DiT per chunk              %9.2f ms  %.1f TFLOP/s = %.1f%% of the "
      "GEMM peak\n", dit_ms, dit_tflops, 100.0 * frac);
  printf ("  %-27s%9.2f ms\n", a->decoder ? "tiny decode per latent"
      : "VAE decode per latent", stat_mean (&r->decode));
  printf ("  VAE encode per latent      %9.2f ms (streaming, 4 frames)\n",
      stat_mean (&r->encode));
  if (a->decoder)
    printf ("  anchor (full VAE decode 1 + encode 1 frame) %6.2f ms\n",
        stat_mean (&r->anchor));
  else
    printf ("  anchor (decode 1 + encode 1 frame) %6.2f ms (encode %.2f)\n",
        stat_mean (&r->anchor), stat_mean (&r->anchor_enc));
  printf ("  Stage 0 per chunk          %9.2f ms  (anchor path%s + display "
      "decode, measured)\n", stat_mean (&r->stage0), st->s0
      && dit_stage0_anchor_on_own_stream (st->s0) ? " on its own stream" : "");
  printf ("  chunk period, serial       %9.2f ms  (min %.2f, max %.2f)\n",
      stat_mean (&r->period), r->period.min, r->period.max);
  if (a->overlap)
    printf ("  chunk period, overlapped   %9.2f ms  (min %.2f, max %.2f; the "
        "elements' schedule)\n", period, per->min, per->max);
  printf ("  FPS                        %9.2f  (%d frames per chunk)\n", fps,
      frames);
  printf ("  time to first frame        %9.1f ms  (cold, first call: %.1f ms)\n",
      r->ttff_warm, r->ttff_cold);
  printf ("  peak device memory         %9.0f MiB\n",
      (double) peak_used / 1048576.0);
  report_memory_text (st, r);
  printf ("  GEMM paths: cuBLASLt %lld, cuBLASLt+bias pass %lld, skinny %lld, "
      "fallback %lld, gated alpha vector %lld, gated via scratch %lld\n",
      (long long) r->gemm_paths[0], (long long) r->gemm_paths[1],
      (long long) r->gemm_paths[2], (long long) r->gemm_paths[3],
      (long long) r->gemm_paths[4], (long long) r->gemm_paths[5]);
  if (r->gemm_fp8_paths[0] && strcmp (r->gemm_fp8_paths, "[]") != 0)
    printf ("  FP8 GEMM paths: %s\n", r->gemm_fp8_paths);
  if (r->breakdown_chunks) {
    printf ("  breakdown (%d eager chunks, every op timed; GEMM folds %s):\n",
        r->breakdown_chunks, a->fold ? "on" : "off");
    print_split ("denoise forward", &r->bd_denoise);
    print_split ("recompute forward", &r->bd_recompute);
    printf ("    outside the forwards %.2f ms per chunk (noise, flow updates, "
        "latent copies)\n", r->bd_outside.total_ms / r->breakdown_chunks);
  }
}

static void
report_mesh (const bench_state *st, const bench_result *r,
    const mesh_result *mr, const char *dev)
{
  const bench_args *a = &st->a;
  const int F = st->gc.frames_per_chunk, C = st->gc.context_frames;
  const int64_t fs = (int64_t) (st->gc.latent_h / 2) * (st->gc.latent_w / 2);
  const double flops = dit_model_forward_flops (&st->cfg, C * fs, C * fs)
      + st->gc.num_steps * dit_model_forward_flops (&st->cfg, F * fs,
          (C + F) * fs);
  const double rec = samples_median (&mr->recompute);
  const double den = samples_median (&mr->denoise);
  const double dit = samples_median (&mr->dit);
  const double s0 = samples_median (&mr->stage0), s1 = samples_median (&mr->stage1);
  const double anchor = samples_median (&mr->anchor);
  const double rest = samples_median (&mr->decode_rest);
  const double serial = samples_median (&mr->period_serial);
  const bench_samples *per = a->overlap ? &mr->period : &mr->period_serial;
  const double period = samples_median (per);
  const double mx = s0 > s1 ? s0 : s1, mn = s0 < s1 ? s0 : s1;
  const double hidden = a->overlap ? samples_median (&mr->hidden) : 0.0;
  const double score = mn > 0 ? hidden / mn : 0.0;
  const double fps = 4 * F / (period * 1e-3);
  const double tflops = dit > 0 ? flops / (dit * 1e-3) / 1e12 : 0.0;
  const char *mesh_be = a->mesh_backend ? a->mesh_backend
      : dit_backend_device (st->be) == DIT_DEVICE_CPU ? "cpu" : "cuda";
  /* Only measured chunks count; none measured is reported as such. */
  const int ar_ok = mr->allreduce.n > 0;
  const double ar = ar_ok ? samples_median (&mr->allreduce) : NAN;
  const double ar_share = mr->allreduce_share.n > 0
      ? samples_median (&mr->allreduce_share) : NAN;
  const char *ar_how = strcmp (mesh_be, "cuda") == 0
      ? "CUDA events around each collective, graph replays included"
      : st->a.mesh.sp > 1 ? "wall time inside the CPU comm's all-reduce and "
      "all-to-all calls" : "wall time inside the CPU comm's all-reduce calls";
  const int ex_ok = mr->exposed.n > 0;
  const double ex = ex_ok ? samples_median (&mr->exposed) : NAN;
  const char *ex_how = strcmp (mesh_be, "cuda") == 0
      ? "compute-stream waits on the collectives' events plus collectives on "
      "the compute stream" : "the CPU comm is synchronous: all of it";

  if (a->json) {
    json_common (st, "mesh", dev);
    json_str ("mesh_backend", mesh_be);
    json_int_array ("mesh_devices", a->mesh.devices, a->mesh_ranks);
    json_int ("mesh_ranks", a->mesh_ranks);
    json_str ("mesh_parallel", dit_mesh_layout_name (st->a.mesh.layout));
    json_int ("mesh_sp", st->a.mesh.sp);
    json_int ("mesh_tp", st->a.mesh.tp);
    json_int ("overlap", a->overlap);
    json_num ("mesh_setup_ms", mr->setup_ms, 1);
    json_num ("recompute_ms", rec, 3);
    json_num ("denoise_ms", den, 3);
    json_num ("dit_ms", dit, 3);
    json_num ("dit_tflops", tflops, 1);
    json_num ("allreduce_ms", ar, 3);
    json_num ("allreduce_share", ar_share, 4);
    json_int ("allreduce_chunks", mr->allreduce.n);
    json_int ("allreduce_unmeasured_chunks", mr->allreduce_unmeasured);
    json_num ("comm_exposed_ms", ex, 3);
    json_int ("comm_overlap", a->comm_overlap);
    json_int ("world_nccl", mr->world_nccl);
    json_int ("mesh_colocated", mr->colocated);
    json_num ("host_copies_per_chunk", samples_median (&mr->host_copies), 1);
    json_num ("stage0_ms", s0, 3);
    json_num ("stage0_anchor_ms", anchor, 3);
    json_num ("stage0_decode_rest_ms", rest, 3);
    json_num ("stage1_ms", s1, 3);
    json_num ("stage1_overhead_ms", s1 - dit, 3);
    json_num ("chunk_period_serial_ms", serial, 3);
    json_num ("chunk_period_ms", period, 3);
    json_num ("chunk_period_min_ms", samples_min (per), 3);
    json_num ("chunk_period_max_ms", samples_max (per), 3);
    json_num ("stage_max_ms", mx, 3);
    json_num ("stage_sum_ms", s0 + s1, 3);
    json_num ("period_over_max", mx > 0 ? period / mx : 0.0, 3);
    json_num ("period_over_sum", s0 + s1 > 0 ? period / (s0 + s1) : 0.0, 3);
    json_num ("hidden_ms", hidden, 3);
    json_num ("hideable_ms", rest < s1 ? rest : s1, 3);
    json_num ("overlap_score", score, 3);
    json_num ("fps", fps, 2);
    json_num ("vae_setup_ms", r->vae_weights_ms, 1);
    json_num ("peak_device_mib", (double) peak_used / 1048576.0, 0);
    return;
  }
  printf ("dit-bench: %s (%d layers) %dx%d, DiT on a mesh of %d %s ranks "
      "(devices %s, layout %s: sp %d x tp %d), Stage 0 on %s, %s, vae %s, %d "
      "chunks per pass after %d warm-up\n", a->preset, st->cfg.num_layers,
      a->height, a->width, a->mesh_ranks, mesh_be, a->mesh_arg,
      dit_mesh_layout_name (st->a.mesh.layout), st->a.mesh.sp, st->a.mesh.tp, dev, dit_precision_name (dit_precision_of (a->dtype, a->fp8)),
      a->vae, a->chunks, a->warmup);
  printf ("  mesh up in                 %9.1f ms (vae setup %.1f ms)\n",
      mr->setup_ms, r->vae_weights_ms);
  printf ("  recompute forward          %9.2f ms  (rank 0, median)\n", rec);
  printf ("  denoise forward            %9.2f ms\n", den);
  printf ("  DiT per chunk              %9.2f ms  %.1f TFLOP/s (all ranks)\n",
      dit, tflops);
  if (ar_ok)
    printf ("  all-reduce per chunk       %9.2f ms  %.3f of recompute + denoise "
        "(rank 0, median of %d chunks; %s; includes waiting for the slowest "
        "rank)\n", ar, ar_share, mr->allreduce.n, ar_how);
  else
    printf ("  all-reduce per chunk             n/a  (not measured: the ranks "
        "reported no time for %d chunks)\n", mr->allreduce_unmeasured);
  if (ex_ok)
    printf ("  exposed of it              %9.2f ms  (comm overlap %s; %s)\n",
        ex, a->comm_overlap ? "on" : "off", ex_how);
  else
    printf ("  exposed of it                    n/a  (comm overlap %s; not "
        "measured)\n", a->comm_overlap ? "on" : "off");
  printf ("  Stage 1 (mesh round trip)  %9.2f ms  (%.2f ms beyond the DiT; %.0f "
      "host copies of latents per chunk, data plane on %s)\n", s1, s1 - dit,
      samples_median (&mr->host_copies), mr->colocated ? (mr->world_nccl
          ? "an in-process hand-off to rank 0, NCCL beyond"
          : "an in-process hand-off to rank 0, the CPU comm beyond")
      : mr->world_nccl ? "NCCL" : "the CPU comm");
  printf ("  Stage 0 (anchor + decode)  %9.2f ms  (anchor %.2f, decode of "
      "latents 1..%d %.2f)\n", s0, anchor, F - 1, rest);
  printf ("  chunk period, serial       %9.2f ms  (%.3f of the sum, %.3f of the "
      "max)\n", serial, s0 + s1 > 0 ? serial / (s0 + s1) : 0.0,
      mx > 0 ? serial / mx : 0.0);
  if (a->overlap) {
    printf ("  chunk period, overlapped   %9.2f ms  (%.3f of the sum, %.3f of "
        "the max; min %.2f, max %.2f)\n", period,
        s0 + s1 > 0 ? period / (s0 + s1) : 0.0, mx > 0 ? period / mx : 0.0,
        samples_min (per), samples_max (per));
    printf ("  hidden per chunk           %9.2f ms  overlap score %.3f "
        "(hidden / min(stage 0, stage 1)); at most %.2f ms can hide (the "
        "anchor cannot)\n", hidden, score, rest < s1 ? rest : s1);
  }
  printf ("  FPS                        %9.2f  (%d frames per chunk)\n", fps,
      4 * F);
  printf ("  peak device memory (Stage 0) %7.0f MiB\n",
      (double) peak_used / 1048576.0);
}

static void
report_pipeline (const bench_state *st, const pipe_result *pr)
{
  const bench_args *a = &st->a;
  if (a->json) {
    json_str ("mode", "pipeline");
    json_str ("preset", a->preset);
    json_int ("height", a->height);
    json_int ("width", a->width);
    json_str ("device", pr->device);
    json_str ("vae", a->vae);
    json_str ("decoder", a->decoder ? a->decoder : "full");
    json_int ("chunks", a->chunks);
    json_int ("warmup", a->warmup);
    if (a->mesh_arg) {
      json_int_array ("mesh_devices", a->mesh.devices, a->mesh_ranks);
      json_int ("mesh_ranks", a->mesh_ranks);
      json_str ("mesh_parallel", a->mesh_parallel ? a->mesh_parallel : "tp");
    }
    json_int ("frames_per_chunk", 4 * pr->frames_per_chunk);
    json_int ("frames", pr->frames);
    json_int ("warmup_frames", pr->warm_frames);
    json_int ("steady_frames", pr->steady_frames);
    json_num ("steady_ms", pr->steady_ms, 3);
    json_num ("fps", pr->wall_fps, 2);
    /* the engine mode's figure: one chunk's frames over the wall FPS */
    json_num ("chunk_period_ms", pr->wall_fps > 0 ? 4e3 * pr->frames_per_chunk
        / pr->wall_fps : 0.0, 3);
    json_num ("element_fps", pr->element_fps, 2);
    json_num ("element_chunk_ms", pr->element_chunk_ms, 3);
    json_int ("element_chunks", (long long) pr->element_chunks);
    json_num ("stage0_ms", pr->stage0_ms, 3);
    json_num ("stage1_ms", pr->stage1_ms, 3);
    json_num ("period_ms", pr->period_ms, 3);
    json_num ("hidden_ms", pr->hidden_ms, 3);
    json_num ("overlap_score", pr->overlap_score, 3);
    json_num ("first_frame_ms", pr->first_frame_ms, 1);
    json_num ("total_ms", pr->total_ms, 1);
    return;
  }
  printf ("dit-bench: pipeline ditgenerate model=%s ! queue ! ditdecode ! fakesink, "
      "%dx%d, device %s, vae %s%s%s, %d chunks after %d warm-up\n", a->preset,
      a->height, a->width, pr->device, a->vae,
      a->mesh_arg ? ", mesh-devices " : "", a->mesh_arg ? a->mesh_arg : "",
      a->chunks, a->warmup);
  printf ("  frames at the sink         %9lld  (%lld after warm-up, over %.1f ms)\n",
      pr->frames, pr->steady_frames, pr->steady_ms);
  printf ("  FPS (wall clock, steady)   %9.2f  (chunk period %.2f ms)\n",
      pr->wall_fps, pr->wall_fps > 0 ? 4e3 * pr->frames_per_chunk
      / pr->wall_fps : 0.0);
  printf ("  FPS (ditgenerate, last chunk) %6.2f  chunk-ms %.2f, chunks %llu\n",
      pr->element_fps, pr->element_chunk_ms, pr->element_chunks);
  printf ("  stage 0 / stage 1 / period  %.1f / %.1f / %.1f ms, hidden %.1f ms, "
      "overlap score %.3f\n", pr->stage0_ms, pr->stage1_ms, pr->period_ms,
      pr->hidden_ms, pr->overlap_score);
  printf ("  first frame at the sink    %9.1f ms after PLAYING (weights "
      "included)\n", pr->first_frame_ms);
}

/* ---- main --------------------------------------------------------------- */

static void
cleanup (bench_state *st)
{
  dit_runner_free (st->runner);
  if (st->gen_be)
    dit_backend_destroy (st->gen_be);
  dit_umt5_free (st->t5);
  dit_weights_free (st->t5_weights);
  dit_stage0_free (st->s0);
  dit_vae_free (st->enc);
  dit_weights_free (st->weights);
  if (st->be) {
    dit_tensor_free (st->be, &st->pix);
    dit_tensor_free (st->be, &st->enc_lat);
    dit_backend_free (st->be, st->dev_bytes);
  }
  free (st->host_bytes);
  free (st->prompt);
}

/* --breakdown: steady chunks without the VAE and without graphs, every
 * dispatched op timed (bench_breakdown.h). */
#define BENCH_BREAKDOWN_CHUNKS 3
#define BENCH_BREAKDOWN_MARKS 32768

static dit_status
breakdown_chunks (bench_state *st, bench_result *r)
{
  dit_generator *gen = dit_runner_generator (st->runner);
  bench_breakdown *b = NULL;
  dit_generator_set_graphs (gen, 0);
  DIT_TRY (bench_breakdown_new (dit_runner_backend (st->runner),
      BENCH_BREAKDOWN_MARKS, &b));
  dit_status s = DIT_OK;
  /* chunks k >= 1 of the stream (first_chunk ran chunk 0): a recompute
   * and the denoising forwards each; Stage 0 outside the timed part */
  for (int i = 0; i < BENCH_BREAKDOWN_CHUNKS + 1 && s == DIT_OK; i++) {
    dit_chunk_request req;
    dit_tensor ctx, x0;
    double head, tail;
    const int64_t k = st->chunk_index;
    s = chunk_request (st, &req, &ctx);
    if (s != DIT_OK)
      break;
    /* the first chunk is an eager warm-up (plans, first-call costs) */
    bench_split skip[3];
    memset (skip, 0, sizeof skip);
    bench_breakdown_begin_chunk (b);
    s = dit_runner_run_chunk (st->runner, &req, &x0, NULL);
    dit_status e = bench_breakdown_end_chunk (b, 1 + st->gc.num_steps, 1,
        i ? &r->bd_recompute : &skip[0], i ? &r->bd_denoise : &skip[1],
        i ? &r->bd_outside : &skip[2]);
    if (s == DIT_OK)
      s = e;
    if (s == DIT_OK)
      s = stage0_head (st, &x0, &head);
    if (s == DIT_OK)
      s = stage0_tail (st, k, &tail);
  }
  if (s == DIT_OK)
    r->breakdown_chunks = BENCH_BREAKDOWN_CHUNKS;
  bench_breakdown_free (b);
  dit_generator_set_graphs (gen, st->a.graphs);
  return s;
}

/* The single-device chunk loop (engine mode). */
static int
run_engine (bench_state *st, bench_result *r)
{
  r->mem_base = mem_used (st->be);
  if (setup_text_engine (st, r, 3))
    return 1;
  r->mem_text = mem_used (st->be);
  if (setup_local_dit (st, r) || setup_stage0 (st, r))
    return 1;
  if (first_chunk (st, &r->ttff_cold) != DIT_OK)
    return fail ("first chunk");
  for (int i = 0; i < st->a.warmup; i++)
    if (steady_chunk (st, r, 0) != DIT_OK)
      return fail ("warm-up chunk");
  for (int i = 0; i < st->a.chunks; i++)
    if (steady_chunk (st, r, 1) != DIT_OK)
      return fail ("chunk");
  if (st->a.overlap && run_overlapped (st, r, st->a.chunks) != DIT_OK)
    return fail ("overlapped chunks");
  mem_sample (st->be);
#if DIT_HAVE_CUDA
  dit_cuda_gemm_path_counts (dit_runner_backend (st->runner), r->gemm_paths);
  dit_cuda_gemm_fp8_report (dit_runner_backend (st->runner), r->gemm_fp8_paths,
      sizeof r->gemm_fp8_paths);
#endif
  if (st->enc && encode_bench (st, r, st->a.chunks < 10 ? st->a.chunks : 10)
      != DIT_OK)
    return fail ("encode");
  if (first_chunk (st, &r->ttff_warm) != DIT_OK)
    return fail ("first chunk (warm)");
  mem_sample (st->be);
  if (st->a.gemm > 0 && gemm_peak (st->be, st->a.gemm, &r->gemm_tflops) != DIT_OK)
    return fail ("gemm peak");
  if (st->a.breakdown && breakdown_chunks (st, r) != DIT_OK)
    return fail ("breakdown");
  return 0;
}

/* ---- cold start -------------------------------------------------------- */

typedef struct cold_result {
  double at_main, backend, text_load, text_encode, dit_load, generator,
      vae_load, first_chunk, first_frame;   /* ms; at_* since process start */
  double bytes[3], cached[3];               /* DiT, VAE, text: file size, page-cache fraction */
  double peak_mib;
} cold_result;

/* ms since this process started: /proc/self/stat field 22 (clock ticks
 * since boot) against CLOCK_BOOTTIME; -1 where unknown. */
static double
since_process_start_ms (void)
{
  FILE *f = fopen ("/proc/self/stat", "r");
  if (!f)
    return -1.0;
  char buf[1024];
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  buf[n] = 0;
  const char *p = strrchr (buf, ')');   /* after the command name */
  if (!p)
    return -1.0;
  /* fields 3.. follow; starttime is field 22 */
  unsigned long long start = 0;
  int field = 2;
  for (const char *q = p + 1; *q && field < 22; q++)
    if (*q == ' ' && q[1] != ' ') {
      field++;
      if (field == 22)
        start = strtoull (q + 1, NULL, 10);
    }
  long hz = sysconf (_SC_CLK_TCK);
  struct timespec ts;
  if (field != 22 || hz <= 0 || clock_gettime (CLOCK_BOOTTIME, &ts) != 0)
    return -1.0;
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec * 1e-6
      - (double) start * 1e3 / (double) hz;
}

/* Size of a file and the fraction of its pages in the page cache
 * (mincore over a read-only mapping; nothing is read). */
static void
page_cache_state (const char *path, double *bytes, double *fraction)
{
  *bytes = 0.0;
  *fraction = -1.0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0)
    return;
  if (fstat (fd, &sb) != 0 || !S_ISREG (sb.st_mode) || sb.st_size == 0) {
    close (fd);
    return;
  }
  *bytes = (double) sb.st_size;
  void *m = mmap (NULL, (size_t) sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close (fd);
  if (m == MAP_FAILED)
    return;
  long page = sysconf (_SC_PAGESIZE);
  size_t pages = ((size_t) sb.st_size + (size_t) page - 1) / (size_t) page;
  unsigned char *vec = malloc (pages);
  if (vec && mincore (m, (size_t) sb.st_size, vec) == 0) {
    size_t in = 0;
    for (size_t i = 0; i < pages; i++)
      in += vec[i] & 1;
    *fraction = (double) in / (double) pages;
  }
  free (vec);
  munmap (m, (size_t) sb.st_size);
}

/* Process start to the first decoded frame on the host, every weight read
 * from its checkpoint: the text encoder (--text-model, kept as
 * --text-residency says) encodes the bench prompt, the DiT (--model) and the
 * VAE (--vae) load, chunk 0 runs, its first latent is decoded and the frame
 * downloaded.  Stages run one after another; each is timed. */
static int
run_cold (bench_state *st, bench_result *r, cold_result *cr)
{
  bench_args *a = &st->a;
  cr->at_main = since_process_start_ms ();
  const char *paths[3] = { a->model_path, a->vae, a->text_model };
  for (int i = 0; i < 3; i++)
    page_cache_state (paths[i], &cr->bytes[i], &cr->cached[i]);

  double t0 = dit_now_ms ();
  if (setup_backend (st))
    return 1;
  cr->backend = dit_now_ms () - t0;

  /* the DiT's config comes from its file; the text encoder needs text_dim */
  if (dit_checkpoint_detect_preset (a->model_path, &st->cfg) != DIT_OK)
    return fail ("DiT checkpoint");
  dit_gen_config_default (&st->gc);
  st->gc.latent_h = a->height / 8;
  st->gc.latent_w = a->width / 8;
  st->gc.dtype = a->dtype;
  st->gc.fp8 = a->fp8;
  st->gc.seed = a->seed;
  st->prompt_rows = BENCH_PROMPT_IDS;
  st->prompt = calloc ((size_t) st->prompt_rows * st->cfg.text_dim,
      sizeof *st->prompt);
  if (!st->prompt)
    return fail ("prompt");

  r->mem_base = mem_used (st->be);
  if (setup_text_engine (st, r, 1))
    return 1;
  cr->text_load = r->text_setup_ms;
  cr->text_encode = r->text_encode_ms;

  t0 = dit_now_ms ();
  dit_weights *w = NULL;
  if (dit_load_model_precision (a->model_path, a->seed,
        dit_precision_of (a->dtype, a->fp8), st->be, &st->cfg, &w)
      != DIT_OK || dit_synchronize (st->be) != DIT_OK)
    return fail ("DiT weights");
  st->weights = w;
  cr->dit_load = dit_now_ms () - t0;

  t0 = dit_now_ms ();
  if (setup_runner (st, w, NULL) != 0)
    return 1;
  if (dit_synchronize (st->be) != DIT_OK)
    return fail ("prompt");
  cr->generator = dit_now_ms () - t0;

  t0 = dit_now_ms ();
  if (setup_stage0 (st, r))
    return 1;
  cr->vae_load = dit_now_ms () - t0;

  double at_chunk = since_process_start_ms ();
  if (first_chunk (st, &cr->first_chunk) != DIT_OK)
    return fail ("first chunk");
  cr->first_frame = at_chunk + cr->first_chunk;
  mem_sample (st->be);
  cr->peak_mib = (double) peak_used / 1048576.0;
  return 0;
}

static void
report_cold (const bench_state *st, const cold_result *cr, const char *dev)
{
  const bench_args *a = &st->a;
  static const char *const names[3] = { "dit", "vae", "text" };
  const double load_ms[3] = { cr->dit_load, cr->vae_load, cr->text_load };
  double total_bytes = 0.0;
  for (int i = 0; i < 3; i++)
    total_bytes += cr->bytes[i];
  if (a->json) {
    json_str ("mode", "cold");
    json_str ("device", dev);
    json_str ("dtype", dit_precision_name (dit_precision_of (a->dtype, a->fp8)));
    json_int ("height", a->height);
    json_int ("width", a->width);
    json_str ("text_residency", a->text_residency);
    json_num ("at_main_ms", cr->at_main, 1);
    json_num ("backend_ms", cr->backend, 1);
    json_num ("text_load_ms", cr->text_load, 1);
    json_num ("text_encode_ms", cr->text_encode, 1);
    json_num ("dit_load_ms", cr->dit_load, 1);
    json_num ("generator_ms", cr->generator, 1);
    json_num ("vae_load_ms", cr->vae_load, 1);
    json_num ("first_chunk_ms", cr->first_chunk, 1);
    json_num ("first_frame_ms", cr->first_frame, 1);
    for (int i = 0; i < 3; i++) {
      char k[64];
      snprintf (k, sizeof k, "%s_bytes", names[i]);
      json_num (k, cr->bytes[i], 0);
      snprintf (k, sizeof k, "%s_page_cache_at_start", names[i]);
      json_num (k, cr->cached[i], 4);
      snprintf (k, sizeof k, "%s_load_gbps", names[i]);
      json_num (k, load_ms[i] > 0 ? cr->bytes[i] / (load_ms[i] * 1e6) : 0.0, 3);
    }
    json_num ("total_bytes", total_bytes, 0);
    json_num ("peak_device_mib", cr->peak_mib, 0);
    return;
  }
  printf ("dit-bench: cold start, %s, %s, %dx%d, text encoder %s\n", dev,
      dit_precision_name (dit_precision_of (a->dtype, a->fp8)), a->height,
      a->width, a->text_residency);
  for (int i = 0; i < 3; i++)
    printf ("  %-4s %s: %.2f GB, %.1f%% in the page cache at start%s\n",
        names[i], i == 0 ? a->model_path : i == 1 ? a->vae : a->text_model,
        cr->bytes[i] / 1e9, 100.0 * cr->cached[i],
        cr->cached[i] > 0.01 ? " (reads partly from memory, not the disk)" : "");
  printf ("  main() reached          %9.1f ms after process start\n",
      cr->at_main);
  printf ("  backend                 %9.1f ms\n", cr->backend);
  printf ("  text encoder load       %9.1f ms  (%.2f GB/s)\n", cr->text_load,
      cr->text_load > 0 ? cr->bytes[2] / (cr->text_load * 1e6) : 0.0);
  printf ("  prompt encode           %9.1f ms\n", cr->text_encode);
  printf ("  DiT load                %9.1f ms  (%.2f GB/s)\n", cr->dit_load,
      cr->dit_load > 0 ? cr->bytes[0] / (cr->dit_load * 1e6) : 0.0);
  printf ("  generator + prompt K/V  %9.1f ms\n", cr->generator);
  printf ("  VAE load + buffers      %9.1f ms\n", cr->vae_load);
  printf ("  chunk 0 to first frame  %9.1f ms\n", cr->first_chunk);
  printf ("  first frame             %9.1f ms after process start (%.2f GB of "
      "checkpoints)\n", cr->first_frame, total_bytes / 1e9);
  printf ("  peak device memory      %9.0f MiB\n", cr->peak_mib);
}

/* The DiT on the mesh, Stage 0 here. */
static int
run_mesh_mode (bench_state *st, bench_result *r, mesh_result *mr)
{
  int rc = setup_stage0 (st, r);
  if (rc == 0)
    rc = setup_mesh (st, mr);
  if (rc)
    return rc;
  if (run_mesh (st, mr) != DIT_OK)
    return fail ("mesh chunk");
  mem_sample (st->be);
  if (dit_runner_shutdown (st->runner) != DIT_OK)
    return fail ("mesh shutdown");
  return 0;
}

/* --comm-only: the collectives of one chunk's forward for the configured
 * mesh (tools/bench_comm.h), ranks as threads of this process. */
static int
run_comm_only (const bench_args *a)
{
  bench_comm_config c;
  bench_comm_result r;
  const dit_mesh_spec *spec = &a->mesh;
  memset (&c, 0, sizeof c);
  if (dit_model_config_preset (a->preset, &c.model) != DIT_OK
      || dit_mesh_spec_check_model (spec, &c.model) != DIT_OK) {
    fprintf (stderr, "dit-bench: %s\n", dit_last_error ());
    return 1;
  }
  if (a->layers > 0 && a->layers < c.model.num_layers)
    c.model.num_layers = a->layers;
  c.latent_h = a->height / 8;
  c.latent_w = a->width / 8;
  c.frames = 3;
  c.dtype = a->dtype_set ? a->dtype : strcmp (spec->backend, "cuda") == 0
      ? DIT_BF16 : DIT_F32;
  c.ranks = spec->ranks;
  c.layout = spec->layout;
  c.mesh_tp = spec->tp;
  c.backend = spec->backend;
  c.devices = spec->devices;
  c.warmup = a->warmup;
  c.reps = a->chunks;
  if (bench_comm_run (&c, &r) != DIT_OK) {
    fprintf (stderr, "dit-bench: %s\n", dit_last_error ());
    return 1;
  }
  const char *layout = dit_mesh_layout_name (spec->layout);
  if (a->json) {
    json_str ("mode", "comm-only");
    json_str ("preset", a->preset);
    json_str ("layout", layout);
    json_str ("backend", spec->backend);
    json_int ("ranks", spec->ranks);
    json_int ("sp", r.sp);
    json_int ("tp", r.tp);
    json_int ("layers", c.model.num_layers);
    json_int ("tokens", r.tokens);
    json_str ("dtype", dit_dtype_name (c.dtype));
    json_num ("allreduce_bytes", r.act_bytes, 0);
    json_num ("alltoall_bytes", r.a2a_bytes, 0);
    json_num ("allreduce_ms", r.allreduce_act_ms, 4);
    json_num ("allreduce_stats_ms", r.allreduce_stats_ms, 4);
    json_num ("alltoall_ms", r.alltoall_ms, 4);
    json_num ("gather_ms", r.gather_ms, 4);
    json_num ("comm_per_forward_ms", r.forward_ms, 4);
    json_end ();
    return 0;
  }
  printf ("dit-bench --comm-only: %s, layout %s (sp %d x tp %d) on %d %s "
      "ranks, %lld tokens per chunk, %s, %d layers; medians of %d after %d\n",
      a->preset, layout, r.sp, r.tp, spec->ranks, spec->backend,
      (long long) r.tokens, dit_dtype_name (c.dtype), c.model.num_layers,
      c.reps, c.warmup);
  printf ("  all-reduce of [L/sp, D] (%.2f MB per rank):  %8.3f ms\n",
      r.act_bytes / 1e6, r.allreduce_act_ms);
  printf ("  all-reduce of the norm statistics:         %8.3f ms\n",
      r.allreduce_stats_ms);
  printf ("  all-to-all of [L/sp, D/tp] (%.2f MB per rank): %8.3f ms\n",
      r.a2a_bytes / 1e6, r.alltoall_ms);
  printf ("  head gather:                               %8.3f ms\n", r.gather_ms);
  printf ("  per forward (layers x (3 + stats all-reduces + 4 all-to-alls) + "
      "gather): %.3f ms\n", r.forward_ms);
  return 0;
}

int
main (int argc, char **argv)
{
  static bench_state st;
  static bench_result r;
  static mesh_result mr;
  static text_result tr;
  static pipe_result pr;
  static cold_result cr;
  char dev[320];
  int rc = 0;

  if (!parse_args (argc, argv, &st.a))
    return 2;
  const bench_args *a = &st.a;
  st.lora_apply_ms = NAN;
  if (a->lora_rank > 0 && (a->pipeline || a->text_only || a->cold
      || a->comm_only)) {
    fprintf (stderr, "dit-bench: --lora-rank times the engine and mesh "
        "modes only\n");
    return 2;
  }
  if (a->comm_only)
    return run_comm_only (a);
  if (a->cold) {
    rc = run_cold (&st, &r, &cr);
    if (rc == 0) {
      device_name (&st, dev, sizeof dev);
      json_fields = 0;
      report_cold (&st, &cr, dev);
      if (a->json)
        json_end ();
    }
    cleanup (&st);
    return rc;
  }
  if (a->pipeline) {
    rc = run_pipeline (a, &pr);
    if (rc == 0 && a->text)
      rc = setup_backend (&st) ? 1 : run_text (a, st.be, &tr);
  } else {
    rc = setup_backend (&st);
    if (rc == 0 && !a->text_only)
      rc = setup_configs (&st);
    if (rc == 0 && !a->text_only)
      rc = a->mesh_ranks ? run_mesh_mode (&st, &r, &mr) : run_engine (&st, &r);
    if (rc == 0 && a->text)
      rc = run_text (a, st.be, &tr);
  }
  if (rc == 0) {
    device_name (&st, dev, sizeof dev);
    json_fields = 0;
    if (a->pipeline)
      report_pipeline (&st, &pr);
    else if (a->text_only && a->json) {
      json_str ("mode", "text");
      json_str ("device", dev);
      json_str ("dtype", dit_precision_name (dit_precision_of (a->dtype, a->fp8)));
    } else if (a->text_only)
      printf ("dit-bench: text encoder on %s\n", dev);
    else if (a->mesh_ranks)
      report_mesh (&st, &r, &mr, dev);
    else
      report_engine (&st, &r, dev);
    if (a->text)
      report_text (&st, &tr);
    if (a->json)
      json_end ();
  }
  cleanup (&st);
  return rc;
}
