/* make_corpus — writes valid frames of every envelope type into a
 * directory, the seed corpus of fuzz_envelope.  Since protocol version 3
 * frames carry tensor specs only (the bytes go over the world comm), so
 * the tensor seeds are short; version 4 INFER plans carry the recompute's
 * causal block and the bias frames; version 7 INFERs the LoRA list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

static int
put (const char *dir, const char *name, const dit_envelope *e)
{
  unsigned char *f;
  size_t n;
  char path[1024];
  if (dit_env_encode (e, &f, &n) != DIT_OK) {
    fprintf (stderr, "make_corpus: %s: %s\n", name, dit_last_error ());
    return 1;
  }
  snprintf (path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen (path, "wb");
  if (!fp || fwrite (f, 1, n, fp) != n) {
    fprintf (stderr, "make_corpus: cannot write %s\n", path);
    free (f);
    return 1;
  }
  fclose (fp);
  free (f);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc != 2)
    return 2;
  static float lat[16 * 3 * 2 * 2], prompt[3 * 8];
  dit_envelope e;
  int bad = 0;
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_NOOP;
  bad |= put (argv[1], "noop", &e);
  e.type = DIT_ENV_SHUTDOWN;
  e.call_id = 9;
  bad |= put (argv[1], "shutdown", &e);
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_INFER;
  e.call_id = 3;
  e.chunk_index = 2;
  e.cache_epoch = 1;
  e.plan.do_recompute = 1;
  e.plan.num_steps = 4;
  for (int i = 0; i < 4; i++) {
    e.plan.steps[i] = 1000 - 250 * i;
    e.plan.sigmas[i] = 1.0 - 0.2 * i;
  }
  e.plan.expected_calls = 5;
  e.plan.seed = 42;
  e.plan.rope_start = 3;
  e.plan.kv_bias = 0.3f;
  e.plan.causal_frames = 3;
  e.plan.bias_begin = 1;
  e.plan.bias_end = 3;
  e.prompt_epoch = 2;
  e.n_tensors = 2;
  snprintf (e.tensors[0].name, 32, "context");
  e.tensors[0].dtype = DIT_F32;
  e.tensors[0].ndim = 4;
  int64_t s4[4] = { 16, 3, 2, 2 };
  memcpy (e.tensors[0].shape, s4, sizeof s4);
  e.tensors[0].data = lat;
  snprintf (e.tensors[1].name, 32, "prompt");
  e.tensors[1].dtype = DIT_BF16;
  e.tensors[1].ndim = 2;
  e.tensors[1].shape[0] = 3;
  e.tensors[1].shape[1] = 4;
  e.tensors[1].data = prompt;
  bad |= put (argv[1], "infer", &e);
  /* version 7: a new LoRA list with its text */
  e.lora_epoch = 1;
  e.lora_mode = 1;
  e.lora_digest = 0x5eed;
  snprintf (e.lora, sizeof e.lora, "style.safetensors:0.8|detail.safetensors:0.4");
  bad |= put (argv[1], "infer-lora", &e);
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_RESULT;
  e.call_id = 3;
  e.rank = 1;
  e.digest = 0x1234;
  snprintf (e.text, sizeof e.text, "an error");
  bad |= put (argv[1], "result", &e);
  /* mesh rank 0's ok RESULT: five timings (the last the all-reduce time)
   * and the spec of x0, whose bytes follow on the world comm */
  e.rank = 0;
  e.text[0] = '\0';
  for (int i = 0; i < DIT_ENV_TIMINGS; i++)
    e.timing_ms[i] = 1.5 * (i + 1);
  e.n_tensors = 1;
  snprintf (e.tensors[0].name, 32, "x0");
  e.tensors[0].dtype = DIT_F32;
  e.tensors[0].ndim = 4;
  int64_t s0[4] = { 16, 3, 2, 2 };
  memcpy (e.tensors[0].shape, s0, sizeof s0);
  e.tensors[0].data = lat;
  bad |= put (argv[1], "result-x0", &e);
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_JOIN;
  e.join.tp = 2;
  e.join.rank = 1;
  snprintf (e.join.preset, sizeof e.join.preset, "tiny");
  snprintf (e.join.backend, sizeof e.join.backend, "cpu");
  e.join.layers = 2;
  e.join.layout = 0;     /* tp: the TP degree is the mesh size */
  e.join.mesh_tp = 2;
  bad |= put (argv[1], "join", &e);
  e.join.layout = 1;     /* sp: full weights on every rank */
  e.join.mesh_tp = 1;
  bad |= put (argv[1], "join-sp", &e);
  e.join.tp = 4;         /* hybrid: SP 2 x TP 2, 2 ranks per group */
  snprintf (e.join.preset, sizeof e.join.preset, "tiny-tp");
  e.join.layout = 2;
  e.join.mesh_tp = 2;
  bad |= put (argv[1], "join-hybrid", &e);
  e.join.tp = 2;
  snprintf (e.join.preset, sizeof e.join.preset, "tiny");
  e.join.layout = 0;
  e.join.mesh_tp = 2;
  /* mesh rank 0 on the NCCL transport: the id rides along */
  e.join.rank = 0;
  snprintf (e.join.backend, sizeof e.join.backend, "cuda");
  e.join.has_nccl_id = 1;
  for (int i = 0; i < DIT_ENV_NCCL_ID_BYTES; i++)
    e.join.nccl_id[i] = (unsigned char) (i * 7 + 1);
  bad |= put (argv[1], "join-nccl", &e);
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_ACCEPT;
  e.accept.num_steps = 2;
  snprintf (e.accept.comm_host, sizeof e.accept.comm_host, "127.0.0.1");
  bad |= put (argv[1], "accept", &e);
  e.accept.has_nccl_id = 1;
  for (int i = 0; i < DIT_ENV_NCCL_ID_BYTES; i++)
    e.accept.nccl_id[i] = (unsigned char) (255 - i);
  bad |= put (argv[1], "accept-nccl", &e);
  /* the world comm: a CPU port, or Stage 0's NCCL id */
  e.accept.world_port = 40123;
  bad |= put (argv[1], "accept-world", &e);
  e.accept.world_port = 0;
  e.accept.has_world_nccl_id = 1;
  for (int i = 0; i < DIT_ENV_NCCL_ID_BYTES; i++)
    e.accept.world_nccl_id[i] = (unsigned char) (i * 3);
  bad |= put (argv[1], "accept-world-nccl", &e);
  /* v8: the co-located layout relays the world comm through mesh rank 0 */
  e.accept.has_world_nccl_id = 0;
  e.accept.world_relay = 1;
  bad |= put (argv[1], "accept-world-relay", &e);
  memset (&e, 0, sizeof e);
  e.type = DIT_ENV_REFUSE;
  snprintf (e.text, sizeof e.text, "parity check failed");
  bad |= put (argv[1], "refuse", &e);
  return bad;
}
