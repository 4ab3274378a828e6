/* dit-text — prompts to umT5 embeddings from the command line.
 *
 *   dit-text "a koi pond at dawn, drone shot" -o emb.safetensors
 *   dit-text encode --model umt5.safetensors --tokenizer spiece.model \
 *       --device cuda "a koi pond" -o emb.safetensors
 *   dit-text tokenize "a koi pond"          ids on one line
 *   dit-text tokenize --file prompts.txt    one line of ids per input line
 *   dit-text clean "Tom &amp;amp; Jerry"    the cleaned text
 *
 * encode writes tensor 'embeds' [L_txt, d_model] F32 (L_txt = number of
 * ids including EOS), the format ditgenerate's prompt-embeds and
 * dit-generate --embeds read, with metadata text_model and tokens.
 * --ids 5,17,1 encodes given ids instead of a prompt (no tokenizer).
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool_common.h"
#include "dit_loader.h"
#include "dit_tokenizer.h"
#include "dit_umt5.h"

#define EXIT_USAGE 2

typedef struct opts {
  const char *cmd;
  const char *model;
  const char *tokenizer;
  const char *output;
  const char *device;
  const char *file;
  const char *ids;
  const char *prompt;
  uint64_t seed;
  dit_dtype dtype;
  int layers;
  int repeat;
} opts;

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: dit-text [COMMAND] [options] [PROMPT]\n"
      "\n"
      "commands:\n"
      "  encode        PROMPT -> 'embeds' [L_txt, d_model] F32 safetensors (default)\n"
      "  tokenize      print the ids of PROMPT (or of each line of --file)\n"
      "  clean         print PROMPT after Wan's cleaning (HTML unescape, spaces)\n"
      "\n"
      "options:\n"
      "  --model tiny|umt5-xxl|PATH  text encoder: preset (seeded synthetic\n"
      "                        weights) or umT5 safetensors (default "
      DIT_DEFAULT_TEXT_MODEL ")\n"
      "  --tokenizer FILE      SentencePiece model (default: the shipped tiny\n"
      "                        model, %s)\n"
      "  --seed N              seed of synthetic weights (default 0)\n"
      "  --device cpu|cuda:N   backend (default cpu)\n"
      "  --dtype f32|bf16      weight/activation dtype (default f32)\n"
      "  --ids LIST            encode comma-separated ids instead of a prompt\n"
      "  --file FILE           tokenize: one prompt per line\n"
      "  --layers N            encode with only the first N layers (tests)\n"
      "  --repeat N            encode N more times and print the latency\n"
      "  -o, --output FILE     output file\n"
      "  -h, --help            this text\n"
      "\n"
      "exit status: 0 success, 1 failure, 2 usage error\n",
      dit_tokenizer_default_path ());
}

static int
fail (const char *what)
{
  fprintf (stderr, "dit-text: %s: %s\n", what, dit_last_error ());
  return 1;
}

static int
print_ids (const dit_tokenizer *tok, const char *text)
{
  int32_t ids[DIT_TOKENIZER_MAX_IDS];
  int n = 0;
  if (dit_tokenizer_encode (tok, text, ids, DIT_TOKENIZER_MAX_IDS, &n) != DIT_OK)
    return fail ("tokenize");
  for (int i = 0; i < n; i++)
    printf ("%s%d", i ? " " : "", (int) ids[i]);
  printf ("\n");
  return 0;
}

static int
cmd_tokenize (const opts *o)
{
  dit_tokenizer *tok;
  if (dit_tokenizer_load (o->tokenizer, &tok) != DIT_OK)
    return fail ("load tokenizer");
  int rc = 0;
  if (o->file) {
    FILE *f = fopen (o->file, "rb");
    if (!f) {
      fprintf (stderr, "dit-text: cannot open %s\n", o->file);
      dit_tokenizer_free (tok);
      return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (rc == 0 && (len = getline (&line, &cap, f)) >= 0) {
      if (len > 0 && line[len - 1] == '\n')
        line[len - 1] = '\0';
      rc = print_ids (tok, line);
    }
    free (line);
    fclose (f);
  } else {
    rc = print_ids (tok, o->prompt);
  }
  dit_tokenizer_free (tok);
  return rc;
}

static int
parse_ids (const char *s, int32_t *ids, int max, int *n)
{
  *n = 0;
  while (*s) {
    char *end;
    long v = strtol (s, &end, 10);
    if (end == s || v < 0 || v > 0x7fffffff || *n >= max)
      return 0;
    ids[(*n)++] = (int32_t) v;
    s = end;
    if (*s == ',')
      s++;
    else if (*s)
      return 0;
  }
  return *n > 0;
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Time `repeat` more encodes of the same ids (the first one warmed up the
 * GEMM plans): the latency of prompt -> embeddings on the host, including
 * the download.  Prints the median and the range. */
static dit_status
time_encodes (dit_umt5 *t5, const int32_t *ids, int n, dit_tensor *out,
    int repeat)
{
  double *ms = malloc ((size_t) repeat * sizeof *ms);
  if (!ms)
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  for (int i = 0; i < repeat; i++) {
    struct timespec a, b;
    clock_gettime (CLOCK_MONOTONIC, &a);
    dit_status s = dit_umt5_encode (t5, ids, n, out);
    clock_gettime (CLOCK_MONOTONIC, &b);
    if (s != DIT_OK) {
      free (ms);
      return s;
    }
    ms[i] = (double) (b.tv_sec - a.tv_sec) * 1e3
        + (double) (b.tv_nsec - a.tv_nsec) * 1e-6;
  }
  qsort (ms, (size_t) repeat, sizeof *ms, compare_double);
  printf ("encode: %d tokens, median %.2f ms (min %.2f, max %.2f) over %d runs\n",
      n, ms[repeat / 2], ms[0], ms[repeat - 1], repeat);
  free (ms);
  return DIT_OK;
}

static int
cmd_encode (const opts *o)
{
  int32_t ids[DIT_TOKENIZER_MAX_IDS];
  int n = 0;
  if (o->ids) {
    if (!parse_ids (o->ids, ids, DIT_TOKENIZER_MAX_IDS, &n)) {
      fprintf (stderr, "dit-text: --ids wants 1 to %d comma-separated ids\n",
          DIT_TOKENIZER_MAX_IDS);
      return EXIT_USAGE;
    }
  } else {
    dit_tokenizer *tok;
    if (dit_tokenizer_load (o->tokenizer, &tok) != DIT_OK)
      return fail ("load tokenizer");
    dit_status s = dit_tokenizer_encode (tok, o->prompt, ids,
        DIT_TOKENIZER_MAX_IDS, &n);
    dit_tokenizer_free (tok);
    if (s != DIT_OK)
      return fail ("tokenize");
  }
  dit_backend *be = tool_backend (o->device);
  if (!be)
    return fail ("backend");
  dit_umt5_config cfg;
  dit_weights *w = NULL;
  dit_umt5 *t5 = NULL;
  float *emb = NULL;
  int rc = 1;
  if (dit_umt5_load_weights (o->model, o->seed, o->dtype, be, &cfg, &w) != DIT_OK) {
    rc = fail ("load text model");
    goto out;
  }
  if (dit_umt5_create (&cfg, w, be, &t5) != DIT_OK) {
    rc = fail ("text encoder");
    goto out;
  }
  if (o->layers > 0)
    dit_umt5_set_layer_limit (t5, o->layers);
  emb = malloc ((size_t) n * (size_t) cfg.dim * sizeof (float));
  if (!emb) {
    fprintf (stderr, "dit-text: out of memory\n");
    goto out;
  }
  dit_tensor et = dit_tensor_2d (emb, DIT_F32, DIT_DEVICE_CPU, n, cfg.dim);
  if (dit_umt5_encode (t5, ids, n, &et) != DIT_OK) {
    rc = fail ("encode");
    goto out;
  }
  if (o->repeat > 0 && time_encodes (t5, ids, n, &et, o->repeat) != DIT_OK) {
    rc = fail ("encode");
    goto out;
  }
  int64_t shape[2] = { n, cfg.dim };
  dit_st_write_tensor wt = { "embeds", DIT_F32, 2, shape, emb };
  char tokens[16];
  snprintf (tokens, sizeof tokens, "%d", n);
  const char *meta[] = { "text_model", cfg.name, "tokens", tokens, NULL };
  if (dit_safetensors_write (o->output, &wt, 1, meta) != DIT_OK) {
    rc = fail ("write");
    goto out;
  }
  rc = 0;
out:
  free (emb);
  dit_umt5_free (t5);
  dit_weights_free (w);
  dit_backend_destroy (be);
  return rc;
}

int
main (int argc, char **argv)
{
  opts o = { .model = DIT_DEFAULT_TEXT_MODEL, .device = "cpu", .dtype = DIT_F32 };
  static const struct option lo[] = {
    { "model", required_argument, NULL, 'm' },
    { "tokenizer", required_argument, NULL, 't' },
    { "seed", required_argument, NULL, 's' },
    { "device", required_argument, NULL, 'd' },
    { "dtype", required_argument, NULL, 'T' },
    { "ids", required_argument, NULL, 'i' },
    { "file", required_argument, NULL, 'f' },
    { "layers", required_argument, NULL, 'l' },
    { "repeat", required_argument, NULL, 'r' },
    { "output", required_argument, NULL, 'o' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  /* GNU getopt permutes: options may come before or after the command and
   * the prompt (a prompt starting with '-' goes after "--") */
  while ((c = getopt_long (argc, argv, "o:h", lo, NULL)) != -1) {
    switch (c) {
      case 'm': o.model = optarg; break;
      case 't': o.tokenizer = optarg; break;
      case 's':
        if (!tool_parse_u64 (optarg, &o.seed)) {
          fprintf (stderr, "dit-text: bad --seed '%s'\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case 'd': o.device = optarg; break;
      case 'T':
        if (!tool_parse_dtype (optarg, &o.dtype)) {
          fprintf (stderr, "dit-text: bad --dtype '%s' (f32, bf16)\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case 'i': o.ids = optarg; break;
      case 'f': o.file = optarg; break;
      case 'l':
        if (!tool_parse_int (optarg, 1, 1000, &o.layers)) {
          fprintf (stderr, "dit-text: bad --layers '%s'\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case 'r':
        if (!tool_parse_int (optarg, 1, 100000, &o.repeat)) {
          fprintf (stderr, "dit-text: bad --repeat '%s'\n", optarg);
          return EXIT_USAGE;
        }
        break;
      case 'o': o.output = optarg; break;
      case 'h': usage (stdout); return 0;
      default: usage (stderr); return EXIT_USAGE;
    }
  }
  int argi = optind;
  static const char *const cmds[] = { "encode", "tokenize", "clean",
    NULL };
  o.cmd = "encode";
  if (argi < argc) {
    for (int i = 0; cmds[i]; i++)
      if (strcmp (argv[argi], cmds[i]) == 0) {
        o.cmd = cmds[i];
        argi++;
        break;
      }
  }
  if (argi < argc)
    o.prompt = argv[argi++];
  if (argi < argc) {
    fprintf (stderr, "dit-text: one prompt expected (quote it); extra "
        "argument '%s'\n", argv[argi]);
    return EXIT_USAGE;
  }

  if (strcmp (o.cmd, "clean") == 0) {
    if (!o.prompt) {
      fprintf (stderr, "dit-text clean: a prompt is required\n");
      return EXIT_USAGE;
    }
    char *clean;
    if (dit_text_clean (o.prompt, &clean) != DIT_OK)
      return fail ("clean");
    printf ("%s\n", clean);
    free (clean);
    return 0;
  }
  if (strcmp (o.cmd, "tokenize") == 0) {
    if (!o.prompt == !o.file) {
      fprintf (stderr, "dit-text tokenize: give a prompt or --file\n");
      return EXIT_USAGE;
    }
    return cmd_tokenize (&o);
  }
  if (!o.output) {
    fprintf (stderr, "dit-text %s: -o FILE is required\n", o.cmd);
    usage (stderr);
    return EXIT_USAGE;
  }
  if (!o.prompt && !o.ids) {
    fprintf (stderr, "dit-text encode: a prompt (possibly \"\") or --ids is "
        "required\n");
    return EXIT_USAGE;
  }
  if (o.prompt && o.ids) {
    fprintf (stderr, "dit-text encode: give a prompt or --ids, not both\n");
    return EXIT_USAGE;
  }
  return cmd_encode (&o);
}
