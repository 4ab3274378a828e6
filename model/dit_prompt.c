/* dit_prompt — weighted prompt lists, the transition blend and the
 * background prompt encoder (see dit_prompt.h).
 *
 * Threading: one worker thread per encoder owns the umT5 activations; the
 * tokenizer and weights are read-only.  A mutex guards the request slot
 * (latest spec wins: a spec submitted while another waits replaces it) and
 * the result slot (latest finished result; an older untaken result is
 * dropped), so the caller's streaming thread only ever takes a lock for a
 * pointer swap.  Synchronous dit_prompt_encode shares the encoder with the
 * thread under a second mutex.
 */
#include "dit_prompt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_loader.h"
#include "dit_tokenizer.h"
#include "dit_umt5.h"

void
dit_prompt_parts_free (dit_prompt_part *parts, int n)
{
  for (int i = 0; parts && i < n; i++)
    free (parts[i].text);
  free (parts);
}

/* "text:NUMBER" -> weight NUMBER, text cut; returns 1 when a weight was read */
static int
split_weight (char *part, double *w)
{
  char *colon = strrchr (part, ':');
  if (!colon)
    return 0;
  char *end;
  errno = 0;
  double v = strtod (colon + 1, &end);
  while (*end == ' ' || *end == '\t')
    end++;
  if (end == colon + 1 || *end || errno)
    return 0;
  *w = v;
  *colon = '\0';
  return 1;
}

dit_status
dit_prompt_parse (const char *spec, dit_prompt_part **parts, int *n)
{
  *parts = NULL;
  *n = 0;
  if (!spec)
    spec = "";
  int count = 1;
  for (const char *p = spec; *p; p++)
    count += *p == '|';
  if (count > DIT_PROMPT_MAX_PARTS)
    return dit_error (DIT_ERR_INVALID, "prompt list has %d parts; at most %d",
        count, DIT_PROMPT_MAX_PARTS);
  dit_prompt_part *v = calloc ((size_t) count, sizeof *v);
  if (!v)
    return dit_error (DIT_ERR_NOMEM, "prompt: out of memory");
  const char *p = spec;
  double sum = 0.0;
  for (int i = 0; i < count; i++) {
    const char *bar = strchr (p, '|');
    size_t len = bar ? (size_t) (bar - p) : strlen (p);
    v[i].text = strndup (p, len);
    if (!v[i].text) {
      dit_prompt_parts_free (v, count);
      return dit_error (DIT_ERR_NOMEM, "prompt: out of memory");
    }
    v[i].weight = 1.0;
    if (count > 1)
      split_weight (v[i].text, &v[i].weight);
    if (!(v[i].weight >= 0.0) || v[i].weight > 1e6) {
      double bad = v[i].weight;
      dit_prompt_parts_free (v, count);
      return dit_error (DIT_ERR_INVALID, "prompt list part %d has weight %g; "
          "weights must be >= 0", i + 1, bad);
    }
    sum += v[i].weight;
    p = bar ? bar + 1 : p + len;
  }
  if (!(sum > 0.0)) {
    dit_prompt_parts_free (v, count);
    return dit_error (DIT_ERR_INVALID, "prompt list weights sum to 0");
  }
  for (int i = 0; i < count; i++)
    v[i].weight /= sum;
  *parts = v;
  *n = count;
  return DIT_OK;
}

void
dit_prompt_blend (const float *a, int na, const float *b, int nb, int dim,
    float wb, float *out, int *nout)
{
  int n = na > nb ? na : nb;
  for (int r = 0; r < n; r++)
    for (int c = 0; c < dim; c++) {
      float va = r < na ? a[(size_t) r * dim + c] : 0.0f;
      float vb = r < nb ? b[(size_t) r * dim + c] : 0.0f;
      out[(size_t) r * dim + c] = (1.0f - wb) * va + wb * vb;
    }
  *nout = n;
}

float
dit_prompt_transition_weight (int j, int n)
{
  if (n <= 0 || j >= n)
    return 1.0f;
  if (j <= 0)
    return 0.0f;
  return (float) j / (float) n;
}

/* ------------------------------------------------------------------------ */

struct dit_prompt_encoder {
  dit_tokenizer *tok;
  dit_weights *w;
  dit_umt5 *t5;
  int dim;
  pthread_mutex_t encode_lock;   /* the umT5 activations */

  pthread_t thread;
  int thread_started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int quit;
  char *pending;                 /* spec waiting for the thread */
  uint64_t pending_id, next_id, done_id;
  /* finished, not taken */
  int have_result;
  uint64_t result_id;
  float *result_rows;
  int result_n;
  dit_status result_status;
  char result_err[512];
};

static dit_status
encode_locked (dit_prompt_encoder *e, const char *spec, float **rows, int *n)
{
  dit_prompt_part *parts = NULL;
  int np = 0;
  *rows = NULL;
  *n = 0;
  DIT_TRY (dit_prompt_parse (spec, &parts, &np));
  float *acc = calloc ((size_t) DIT_TOKENIZER_MAX_IDS * (size_t) e->dim,
      sizeof (float));
  float *one = malloc ((size_t) DIT_TOKENIZER_MAX_IDS * (size_t) e->dim
      * sizeof (float));
  dit_status st = acc && one ? DIT_OK
      : dit_error (DIT_ERR_NOMEM, "prompt: out of memory");
  int nmax = 0;
  for (int i = 0; i < np && st == DIT_OK; i++) {
    int32_t ids[DIT_TOKENIZER_MAX_IDS];
    int nid = 0;
    st = dit_tokenizer_encode (e->tok, parts[i].text, ids, DIT_TOKENIZER_MAX_IDS,
        &nid);
    if (st != DIT_OK)
      break;
    dit_tensor t = dit_tensor_2d (one, DIT_F32, DIT_DEVICE_CPU, nid, e->dim);
    st = dit_umt5_encode (e->t5, ids, nid, &t);
    if (st != DIT_OK)
      break;
    for (size_t k = 0; k < (size_t) nid * (size_t) e->dim; k++)
      acc[k] += (float) parts[i].weight * one[k];
    if (nid > nmax)
      nmax = nid;
  }
  dit_prompt_parts_free (parts, np);
  free (one);
  if (st != DIT_OK) {
    free (acc);
    return st;
  }
  *rows = acc;
  *n = nmax;
  return DIT_OK;
}

dit_status
dit_prompt_encode (dit_prompt_encoder *e, const char *spec, float **rows, int *n)
{
  pthread_mutex_lock (&e->encode_lock);
  dit_status st = encode_locked (e, spec, rows, n);
  pthread_mutex_unlock (&e->encode_lock);
  return st;
}

static void *
encoder_thread (void *arg)
{
  dit_prompt_encoder *e = arg;
  pthread_mutex_lock (&e->lock);
  for (;;) {
    while (!e->quit && !e->pending)
      pthread_cond_wait (&e->cond, &e->lock);
    if (e->quit)
      break;
    char *spec = e->pending;
    uint64_t id = e->pending_id;
    e->pending = NULL;
    pthread_mutex_unlock (&e->lock);

    float *rows = NULL;
    int n = 0;
    dit_status st = dit_prompt_encode (e, spec, &rows, &n);
    free (spec);

    pthread_mutex_lock (&e->lock);
    free (e->result_rows);          /* an older result nobody took */
    e->have_result = 1;
    e->result_id = id;
    e->result_rows = rows;
    e->result_n = n;
    e->result_status = st;
    snprintf (e->result_err, sizeof e->result_err, "%s",
        st == DIT_OK ? "" : dit_last_error ());
    e->done_id = id;
    pthread_cond_broadcast (&e->cond);
  }
  pthread_mutex_unlock (&e->lock);
  return NULL;
}

void
dit_prompt_encoder_free (dit_prompt_encoder *e)
{
  if (!e)
    return;
  if (e->thread_started) {
    pthread_mutex_lock (&e->lock);
    e->quit = 1;
    pthread_cond_broadcast (&e->cond);
    pthread_mutex_unlock (&e->lock);
    pthread_join (e->thread, NULL);
    pthread_mutex_destroy (&e->lock);
    pthread_cond_destroy (&e->cond);
    pthread_mutex_destroy (&e->encode_lock);
  }
  free (e->pending);
  free (e->result_rows);
  dit_umt5_free (e->t5);
  dit_weights_free (e->w);
  dit_tokenizer_free (e->tok);
  free (e);
}

dit_status
dit_prompt_encoder_create (const char *text_model, const char *tokenizer,
    uint64_t seed, int out_dim, dit_prompt_encoder **out)
{
  *out = NULL;
  dit_prompt_encoder *e = calloc (1, sizeof *e);
  if (!e)
    return dit_error (DIT_ERR_NOMEM, "prompt encoder: out of memory");
  dit_umt5_config cfg;
  dit_status st = dit_tokenizer_load (tokenizer, &e->tok);
  if (st == DIT_OK)
    st = dit_umt5_load_weights (text_model && *text_model ? text_model
        : DIT_DEFAULT_TEXT_MODEL, seed, DIT_F32,
        dit_backend_cpu (), &cfg, &e->w);
  if (st == DIT_OK && cfg.dim != out_dim)
    st = dit_error (DIT_ERR_INVALID, "text model '%s' gives %d-wide "
        "embeddings but the DiT's text_dim is %d", cfg.name, cfg.dim, out_dim);
  if (st == DIT_OK && dit_tokenizer_vocab_size (e->tok) > cfg.vocab)
    st = dit_error (DIT_ERR_INVALID, "tokenizer has %d pieces but text model "
        "'%s' only %d embedding rows (tokenizer and model do not match)",
        dit_tokenizer_vocab_size (e->tok), cfg.name, cfg.vocab);
  if (st == DIT_OK)
    st = dit_umt5_create (&cfg, e->w, dit_backend_cpu (), &e->t5);
  if (st != DIT_OK) {
    dit_prompt_encoder_free (e);
    return st;
  }
  e->dim = cfg.dim;
  pthread_mutex_init (&e->encode_lock, NULL);
  pthread_mutex_init (&e->lock, NULL);
  pthread_cond_init (&e->cond, NULL);
  if (pthread_create (&e->thread, NULL, encoder_thread, e) != 0) {
    pthread_mutex_destroy (&e->lock);
    pthread_cond_destroy (&e->cond);
    pthread_mutex_destroy (&e->encode_lock);
    dit_prompt_encoder_free (e);
    return dit_error (DIT_ERR_NOMEM, "prompt encoder: cannot start its thread");
  }
  e->thread_started = 1;
  *out = e;
  return DIT_OK;
}

uint64_t
dit_prompt_encoder_submit (dit_prompt_encoder *e, const char *spec)
{
  char *copy = strdup (spec ? spec : "");
  pthread_mutex_lock (&e->lock);
  uint64_t id = ++e->next_id;
  free (e->pending);
  e->pending = copy;
  e->pending_id = id;
  if (!copy)        /* out of memory: report it as this request's result */
    e->pending = strdup ("");
  pthread_cond_broadcast (&e->cond);
  pthread_mutex_unlock (&e->lock);
  return id;
}

int
dit_prompt_encoder_take (dit_prompt_encoder *e, uint64_t *id, float **rows,
    int *n, dit_status *status, char *err, size_t errsize)
{
  pthread_mutex_lock (&e->lock);
  int have = e->have_result;
  if (have) {
    *id = e->result_id;
    *rows = e->result_rows;
    *n = e->result_n;
    *status = e->result_status;
    if (err && errsize)
      snprintf (err, errsize, "%s", e->result_err);
    e->result_rows = NULL;
    e->have_result = 0;
  }
  pthread_mutex_unlock (&e->lock);
  return have;
}

void
dit_prompt_encoder_wait (dit_prompt_encoder *e, uint64_t id)
{
  pthread_mutex_lock (&e->lock);
  while (e->done_id < id)
    pthread_cond_wait (&e->cond, &e->lock);
  pthread_mutex_unlock (&e->lock);
}
