/* dit_stream_load — see dit_stream_load.h.
 *
 * Plan: the items sorted by (file, offset) are cut into chunks, each a
 * contiguous byte range of one file of at most the chunk size (DIT_LOAD_CHUNK; a
 * tensor larger than that spans several chunks; small neighbouring tensors
 * share one; a gap between tensors larger than 1 MiB starts a new chunk),
 * with the list of segments (item, offset in the item, offset in the chunk,
 * length) it carries.  Chunk c is read into ring buffer c % DIT_LOAD_RING.
 *
 * Threads: readers take chunk numbers in order from a shared counter; for
 * chunk c a reader first waits until the uploader has issued chunk
 * c - RING and that chunk's event completed (the buffer is free), then
 * preads the range and marks it read.  The calling thread issues chunks in
 * order: waits until chunk c is read, uploads its segments (each to its
 * destination or the staging buffer), calls `place` for every staged item
 * the chunk completes, records the chunk's event.  One mutex and condition
 * variable guard the counters.
 */
#include "dit_stream_load.h"
#include "dit_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOAD_GAP (1u << 20)

typedef struct load_seg {
  size_t item;              /* index into the sorted items */
  uint64_t item_off, chunk_off, len;
} load_seg;

typedef struct load_chunk {
  int file;                 /* index into files */
  uint64_t offset, bytes;
  size_t first_seg, nseg;
} load_chunk;

typedef struct load_ctx {
  dit_backend *be;
  size_t chunk_bytes;
  const dit_load_item **items;   /* sorted */
  size_t nitems;
  int *staged;                   /* per sorted item: goes through staging */
  load_chunk *chunks;
  size_t nchunks;
  load_seg *segs;
  size_t nsegs;
  const char **paths;
  int *fds;
  int nfiles;
  void *ring[DIT_LOAD_RING];
  dit_event *events[DIT_LOAD_RING];

  pthread_mutex_t lock;
  pthread_cond_t cond;
  size_t next_read;              /* next chunk a reader takes */
  size_t issued;                 /* chunks the uploader has issued */
  int *read_done;                /* per chunk */
  int failed;
  char error[512];
} load_ctx;

static int
load_item_cmp (const void *a, const void *b)
{
  const dit_load_item *x = *(const dit_load_item *const *) a;
  const dit_load_item *y = *(const dit_load_item *const *) b;
  int c = strcmp (x->file, y->file);
  if (c)
    return c;
  return (x->offset > y->offset) - (x->offset < y->offset);
}

static void
load_fail (load_ctx *c, const char *fmt, const char *path, uint64_t off,
    const char *why)
{
  pthread_mutex_lock (&c->lock);
  if (!c->failed) {
    c->failed = 1;
    snprintf (c->error, sizeof c->error, fmt, path, (unsigned long long) off,
        why);
  }
  pthread_cond_broadcast (&c->cond);
  pthread_mutex_unlock (&c->lock);
}

/* pread the whole range, retrying short reads and interrupts. */
static int
load_pread (int fd, void *buf, uint64_t len, uint64_t off, const char **why)
{
  uint64_t done = 0;
  while (done < len) {
    ssize_t r = pread (fd, (char *) buf + done, (size_t) (len - done),
        (off_t) (off + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      *why = strerror (errno);
      return 0;
    }
    if (r == 0) {
      *why = "unexpected end of file";
      return 0;
    }
    done += (uint64_t) r;
  }
  return 1;
}

static void *
load_reader (void *arg)
{
  load_ctx *c = arg;
  for (;;) {
    pthread_mutex_lock (&c->lock);
    if (c->failed || c->next_read >= c->nchunks) {
      pthread_mutex_unlock (&c->lock);
      return NULL;
    }
    size_t k = c->next_read++;
    /* the buffer is free once chunk k - RING was issued and its copies ran */
    while (!c->failed && k >= DIT_LOAD_RING && c->issued <= k - DIT_LOAD_RING)
      pthread_cond_wait (&c->cond, &c->lock);
    int failed = c->failed;
    pthread_mutex_unlock (&c->lock);
    if (failed)
      return NULL;
    const int slot = (int) (k % DIT_LOAD_RING);
    if (k >= DIT_LOAD_RING
        && dit_event_synchronize (c->be, c->events[slot]) != DIT_OK) {
      load_fail (c, "%s: offset %llu: %s", c->paths[c->chunks[k].file],
          c->chunks[k].offset, "waiting for an upload failed");
      return NULL;
    }
    const load_chunk *ch = &c->chunks[k];
    const char *why = NULL;
    if (!load_pread (c->fds[ch->file], c->ring[slot], ch->bytes, ch->offset,
          &why)) {
      load_fail (c, "%s: read at offset %llu failed: %s", c->paths[ch->file],
          ch->offset, why);
      return NULL;
    }
    pthread_mutex_lock (&c->lock);
    c->read_done[k] = 1;
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
  }
}

/* Sort, open, cut into chunks and segments. */
static dit_status
load_plan (load_ctx *c, const dit_load_item *items, size_t count)
{
  c->items = malloc ((count + 1) * sizeof *c->items);
  c->staged = calloc (count + 1, sizeof *c->staged);
  c->paths = calloc (count + 1, sizeof *c->paths);
  c->fds = malloc ((count + 1) * sizeof *c->fds);
  if (!c->items || !c->staged || !c->paths || !c->fds)
    return dit_error (DIT_ERR_NOMEM, "load: out of memory");
  for (size_t i = 0; i < count; i++)
    c->items[i] = &items[i];
  qsort (c->items, count, sizeof *c->items, load_item_cmp);
  c->nitems = count;

  /* files, and the chunk/segment counts (an upper bound first) */
  size_t max_chunks = 1, max_segs = 1;
  for (size_t i = 0; i < count; i++) {
    const dit_load_item *it = c->items[i];
    if (c->nfiles == 0 || strcmp (c->paths[c->nfiles - 1], it->file) != 0) {
      c->paths[c->nfiles] = it->file;
      c->fds[c->nfiles] = open (it->file, O_RDONLY | O_CLOEXEC);
      if (c->fds[c->nfiles] < 0)
        return dit_error (DIT_ERR_IO, "%s: cannot open: %s", it->file,
            strerror (errno));
#ifdef POSIX_FADV_SEQUENTIAL
      posix_fadvise (c->fds[c->nfiles], 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
      c->nfiles++;
    }
    uint64_t pieces = it->bytes / c->chunk_bytes + 2;
    max_chunks += pieces;
    max_segs += pieces;
  }
  c->chunks = calloc (max_chunks, sizeof *c->chunks);
  c->segs = calloc (max_segs, sizeof *c->segs);
  c->read_done = calloc (max_chunks, sizeof *c->read_done);
  if (!c->chunks || !c->segs || !c->read_done)
    return dit_error (DIT_ERR_NOMEM, "load: out of memory");

  load_chunk *cur = NULL;
  int file = -1;
  for (size_t i = 0; i < count; i++) {
    const dit_load_item *it = c->items[i];
    if (file < 0 || strcmp (c->paths[file], it->file) != 0) {
      file++;
      cur = NULL;
    }
    uint64_t done = 0;
    while (done < it->bytes) {
      uint64_t off = it->offset + done;
      if (!cur || off < cur->offset + cur->bytes
          || off - (cur->offset + cur->bytes) > LOAD_GAP
          || cur->bytes + (off - (cur->offset + cur->bytes)) >= c->chunk_bytes) {
        cur = &c->chunks[c->nchunks++];
        cur->file = file;
        cur->offset = off;
        cur->bytes = 0;
        cur->first_seg = c->nsegs;
      }
      uint64_t start = off - cur->offset;       /* gap included */
      uint64_t len = it->bytes - done;
      if (start + len > c->chunk_bytes)
        len = c->chunk_bytes - start;
      load_seg *sg = &c->segs[c->nsegs++];
      sg->item = i;
      sg->item_off = done;
      sg->chunk_off = start;
      sg->len = len;
      cur->bytes = start + len;
      cur->nseg++;
      done += len;
    }
  }
  return DIT_OK;
}

/* Issue chunk k: its uploads, the place calls it completes, its event. */
static dit_status
load_issue (load_ctx *c, size_t k, dit_tensor *stage, dit_load_place_fn place,
    void *user)
{
  const load_chunk *ch = &c->chunks[k];
  const int slot = (int) (k % DIT_LOAD_RING);
  dit_backend *be = c->be;
  for (size_t s = ch->first_seg; s < ch->first_seg + ch->nseg; s++) {
    const load_seg *sg = &c->segs[s];
    const dit_load_item *it = c->items[sg->item];
    char *dst = c->staged[sg->item] ? (char *) stage->data
        : (char *) it->dst->data;
    DIT_TRY (dit_upload (be, dst + sg->item_off,
        (const char *) c->ring[slot] + sg->chunk_off, (size_t) sg->len));
    if (!c->staged[sg->item] || sg->item_off + sg->len != it->bytes)
      continue;
    /* the staged tensor is complete: place it */
    dit_tensor view = dit_tensor_make (stage->data, it->src_dtype,
        stage->device, it->dst->ndim, it->dst->shape);
    dit_status st;
    if (place) {
      st = place (user, be, it, &view);
    } else {
      dit_copy_params cp = { .x = &view, .y = it->dst };
      st = dit_copy (be, &cp);
    }
    if (st != DIT_OK)
      return dit_error_prefix (st, "%s: tensor at offset %llu", it->file,
          (unsigned long long) it->offset);
  }
  return dit_event_record (be, c->events[slot]);
}

dit_status
dit_stream_load (dit_backend *be, const dit_load_item *items, size_t count,
    dit_load_place_fn place, void *user, dit_load_stats *stats)
{
  return dit_stream_load_chunked (be, items, count, place, user,
      DIT_LOAD_CHUNK, stats);
}

dit_status
dit_stream_load_chunked (dit_backend *be, const dit_load_item *items,
    size_t count, dit_load_place_fn place, void *user, size_t chunk_bytes,
    dit_load_stats *stats)
{
  load_ctx c;
  memset (&c, 0, sizeof c);
  c.be = be;
  c.chunk_bytes = chunk_bytes ? chunk_bytes : DIT_LOAD_CHUNK;
  pthread_mutex_init (&c.lock, NULL);
  pthread_cond_init (&c.cond, NULL);
  dit_tensor stage = { 0 };
  pthread_t readers[DIT_LOAD_READERS];
  int nreaders = 0;
  double t0 = dit_now_ms (), wait_ms = 0.0;
  dit_status st = DIT_OK;

  for (size_t i = 0; i < count; i++) {
    const dit_load_item *it = &items[i];
    size_t need = (size_t) dit_tensor_numel (it->dst)
        * dit_dtype_size (it->src_dtype);
    if (it->bytes != need || !dit_tensor_is_contiguous (it->dst)) {
      st = dit_error (DIT_ERR_INVALID, "%s: tensor at offset %llu: %llu bytes "
          "in the file for %zu bytes of %s (or a strided destination)",
          it->file, (unsigned long long) it->offset,
          (unsigned long long) it->bytes, need, dit_dtype_name (it->src_dtype));
      goto out;
    }
  }
  if ((st = load_plan (&c, items, count)) != DIT_OK)
    goto out;

  /* staging for the tensors that need placing */
  size_t stage_bytes = 0;
  for (size_t i = 0; i < c.nitems; i++) {
    const dit_load_item *it = c.items[i];
    c.staged[i] = place != NULL || it->src_dtype != it->dst->dtype;
    if (c.staged[i] && it->bytes > stage_bytes)
      stage_bytes = (size_t) it->bytes;
  }
  if (stage_bytes) {
    int64_t n = (int64_t) stage_bytes;
    stage = dit_tensor_make (dit_backend_alloc (be, stage_bytes), DIT_F32,
        dit_backend_device (be), 1, &n);   /* raw bytes; viewed per tensor */
    if (!stage.data) {
      st = dit_error (DIT_ERR_NOMEM, "load: cannot allocate the %zu-byte "
          "staging buffer on backend %s", stage_bytes, dit_backend_name (be));
      goto out;
    }
  }
  for (int i = 0; i < DIT_LOAD_RING; i++) {
    c.ring[i] = dit_host_alloc (be, c.chunk_bytes);
    if (!c.ring[i]) {
      st = dit_error (DIT_ERR_NOMEM, "load: cannot allocate %zu bytes of host "
          "memory", c.chunk_bytes);
      goto out;
    }
    if ((st = dit_event_create (be, &c.events[i])) != DIT_OK)
      goto out;
  }

  for (int i = 0; i < DIT_LOAD_READERS && (size_t) i < c.nchunks; i++) {
    if (pthread_create (&readers[i], NULL, load_reader, &c) != 0) {
      load_fail (&c, "%s: offset %llu: %s", c.paths[0], 0,
          "cannot start a reader thread");
      break;
    }
    nreaders++;
  }
  for (size_t k = 0; k < c.nchunks; k++) {
    double w0 = dit_now_ms ();
    pthread_mutex_lock (&c.lock);
    while (!c.failed && !c.read_done[k])
      pthread_cond_wait (&c.cond, &c.lock);
    int failed = c.failed;
    pthread_mutex_unlock (&c.lock);
    wait_ms += dit_now_ms () - w0;
    if (failed)
      break;
    st = load_issue (&c, k, &stage, place, user);
    pthread_mutex_lock (&c.lock);
    if (st != DIT_OK)
      c.failed = 1;
    else
      c.issued = k + 1;
    pthread_cond_broadcast (&c.cond);
    pthread_mutex_unlock (&c.lock);
    if (st != DIT_OK)
      break;
  }
  for (int i = 0; i < nreaders; i++)
    pthread_join (readers[i], NULL);
  if (st == DIT_OK && c.failed)
    st = dit_error (DIT_ERR_IO, "%s", c.error);
  if (st == DIT_OK)
    st = dit_synchronize (be);
  if (stats) {
    memset (stats, 0, sizeof *stats);
    for (size_t k = 0; k < c.nchunks; k++)
      stats->bytes += (double) c.chunks[k].bytes;
    stats->ms = dit_now_ms () - t0;
    stats->wait_read_ms = wait_ms;
    stats->chunks = (int) c.nchunks;
  }

out:
  if (st != DIT_OK)
    dit_synchronize (be);
  for (int i = 0; i < DIT_LOAD_RING; i++) {
    dit_event_destroy (be, c.events[i]);
    dit_host_free (be, c.ring[i]);
  }
  if (stage.data)
    dit_backend_free (be, stage.data);
  for (int i = 0; i < c.nfiles; i++)
    close (c.fds[i]);
  free (c.items);
  free (c.staged);
  free (c.paths);
  free (c.fds);
  free (c.chunks);
  free (c.segs);
  free (c.read_done);
  pthread_mutex_destroy (&c.lock);
  pthread_cond_destroy (&c.cond);
  return st;
}
