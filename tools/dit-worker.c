/* dit-worker — one rank of the generator mesh.
 *
 *   dit-worker --connect HOST:PORT --rank R --tp N [--device D]
 *              [--mesh-parallel tp|sp|hybrid] [--mesh-tp T]
 *              [--backend cpu|cuda] [--preset NAME] [--layers N]
 *              [--weights PATH | --seed S] [--dtype f32|bf16|fp8]
 *              [--timeout-ms MS] [--graphs on|off] [--comm-overlap on|off]
 *
 * Joins rank 0 at HOST:PORT (ditgenerate mesh-listen=, or a mesh that
 * spawned it), passes the parity check (layout and degrees included),
 * loads only its tensor-parallel shard (all weights under sequence
 * parallelism) and serves envelopes until SHUTDOWN (exit 0).  With --backend cuda
 * the collectives and the data plane (the world communicator with Stage 0)
 * run on NCCL (the NCCL_* environment applies, docs/mesh.md); --graphs
 * (default on) records the forwards, collectives included, as CUDA graphs;
 * --comm-overlap (default on) issues the collectives in the overlapped
 * order, beside the compute on NCCL (docs/mesh.md, "Overlap").  --layers N keeps the first N blocks of the
 * preset (tests, benchmarks); Stage 0 must use the same N.  --dtype fp8
 * quantizes the shard's linear weights to FP8 (docs/precision.md); a GPU
 * without FP8 tensor cores refuses it, naming the device.  Exits by itself
 * when rank 0 goes away (exit 3), when refused at join (exit 2, as a usage
 * error) or on any other failure (exit 1), with the reason on stderr.
 * --mesh-parallel is the layout option's name as in dit-generate and
 * dit-bench; --parallel, its older name, is still accepted (older
 * launchers and meshes spawn workers with it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_mesh.h"

static void
usage (FILE *f)
{
  fprintf (f,
      "Usage: dit-worker --connect HOST:PORT --rank R --tp N [OPTIONS]\n"
      "\n"
      "One rank of the generator mesh: join Stage 0 (ditgenerate mesh-listen=,\n"
      "or a mesh that spawned this process), load this rank's tensor-parallel\n"
      "shard of the DiT and serve chunk requests until told to shut down.\n"
      "\n"
      "  --connect HOST:PORT    Stage 0's address (required)\n"
      "  --rank R               this rank, 0 .. N-1 (required)\n"
      "  --tp N                 ranks in the mesh (default 1); with\n"
      "                         --mesh-parallel tp the tensor-parallel degree:\n"
      "                         1, 2, 4 or 8\n"
      "  --ranks N              the same as --tp\n"
      "  --mesh-parallel L      layout: tp (tensor parallel, default), sp\n"
      "                         (sequence parallel: all weights on every rank,\n"
      "                         tokens split; N must divide the heads and the\n"
      "                         chunk's tokens) or hybrid (sp across groups of\n"
      "                         --mesh-tp ranks, tp inside)\n"
      "  --parallel L           the same as --mesh-parallel (its older name)\n"
      "  --mesh-tp T            hybrid: tensor-parallel ranks per group\n"
      "                         (default 2)\n"
      "  --backend cpu|cuda     compute backend (default cpu)\n"
      "  --device D             CUDA device index with --backend cuda (default 0)\n"
      "  --preset NAME          model preset: tiny (default), tiny-tp, wan-1.3b\n"
      "                         or wan-14b (also the config of --weights)\n"
      "  --weights PATH         checkpoint to take the shard from (default:\n"
      "                         seeded synthetic weights of the preset)\n"
      "  --seed S               seed of the synthetic weights (default 42)\n"
      "  --layers N             keep only the first N blocks (tests, benchmarks;\n"
      "                         Stage 0 must use the same N)\n"
      "  --dtype f32|bf16|fp8   weight and activation dtype (default f32); fp8:\n"
      "                         FP8 linear layers, compute capability 8.9+\n"
      "  --timeout-ms MS        deadline of the join, the comm setup and every\n"
      "                         collective (default 10000)\n"
      "  --graphs on|off        record the forwards as CUDA graphs (default on)\n"
      "  --comm-overlap on|off  hide collectives behind compute: TP outputs in\n"
      "                         two token halves, SP k/v before q (default on;\n"
      "                         off = the plain order, for comparisons)\n"
      "  --test-delay-ms MS     sleep MS before each chunk (tests of the overlap)\n"
      "  --test-cut-world 1     rank 0 closes its world link instead of sending\n"
      "                         the first result (tests)\n"
      "  -h, --help             this help\n"
      "\n"
      "Exit status: 0 success (shut down by Stage 0), 1 failure, 2 usage error\n"
      "or refused at join, 3 Stage 0 went away.\n");
}

int
main (int argc, char **argv)
{
  dit_worker_config c;
  memset (&c, 0, sizeof c);
  c.rank = -1;
  c.tp = 1;
  c.backend = "cpu";
  c.preset = "tiny";
  c.synthetic_seed = 42;
  c.dtype = DIT_F32;
  c.timeout_ms = 10000;
  c.graphs = 1;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
      usage (stdout);
      return 0;
    }
    if (!v) {
      fprintf (stderr, "dit-worker: %s needs a value\n", a);
      usage (stderr);
      return 2;
    }
    i++;
    if (strcmp (a, "--connect") == 0) c.connect = v;
    else if (strcmp (a, "--rank") == 0) c.rank = atoi (v);
    else if (strcmp (a, "--tp") == 0 || strcmp (a, "--ranks") == 0) c.tp = atoi (v);
    else if (strcmp (a, "--mesh-tp") == 0) c.mesh_tp = atoi (v);
    else if (strcmp (a, "--mesh-parallel") == 0
        || strcmp (a, "--parallel") == 0) {
      if (dit_mesh_layout_parse (v, &c.layout) != DIT_OK) {
        fprintf (stderr, "dit-worker: %s: %s\n", a, dit_last_error ());
        return 2;
      }
    }
    else if (strcmp (a, "--device") == 0) c.device = atoi (v);
    else if (strcmp (a, "--backend") == 0) c.backend = v;
    else if (strcmp (a, "--preset") == 0) c.preset = v;
    else if (strcmp (a, "--weights") == 0) c.weights = v;
    else if (strcmp (a, "--seed") == 0) c.synthetic_seed = strtoull (v, NULL, 10);
    else if (strcmp (a, "--timeout-ms") == 0) c.timeout_ms = atoi (v);
    else if (strcmp (a, "--test-delay-ms") == 0) c.test_delay_ms = atoi (v);
    else if (strcmp (a, "--test-cut-world") == 0) c.test_cut_world = atoi (v);
    else if (strcmp (a, "--layers") == 0) c.layers = atoi (v);
    else if (strcmp (a, "--graphs") == 0) {
      if (strcmp (v, "on") == 0) c.graphs = 1;
      else if (strcmp (v, "off") == 0) c.graphs = 0;
      else {
        fprintf (stderr, "dit-worker: --graphs '%s' (on or off)\n", v);
        return 2;
      }
    }
    else if (strcmp (a, "--comm-overlap") == 0) {
      if (strcmp (v, "on") == 0) c.comm_overlap_off = 0;
      else if (strcmp (v, "off") == 0) c.comm_overlap_off = 1;
      else {
        fprintf (stderr, "dit-worker: --comm-overlap '%s' (on or off)\n", v);
        return 2;
      }
    }
    else if (strcmp (a, "--dtype") == 0) {
      dit_precision p;
      if (dit_precision_parse (v, &p) != DIT_OK) {
        fprintf (stderr, "dit-worker: %s\n", dit_last_error ());
        return 2;
      }
      c.dtype = dit_precision_compute_dtype (p);
      c.fp8 = p == DIT_PRECISION_FP8;
    } else {
      fprintf (stderr, "dit-worker: unknown option %s\n", a);
      usage (stderr);
      return 2;
    }
  }
  if (!c.connect || c.rank < 0) {
    fprintf (stderr, "dit-worker: --connect and --rank are required\n");
    usage (stderr);
    return 2;
  }
  dit_status st = dit_worker_run (&c);
  if (st == DIT_OK)
    return 0;
  const char *msg = dit_last_error ();
  fprintf (stderr, "dit-worker: %s\n", msg);
  if (strstr (msg, "refused by Stage 0"))
    return 2;
  if (strstr (msg, "lost Stage 0"))
    return 3;
  return 1;
}
