/* dit_stream_load — checkpoint bytes from disk into backend memory at the
 * disk's speed: large sequential reads into page-locked host buffers,
 * uploaded while the next ones are read.
 *
 * The tensors to load are byte ranges of files (a safetensors set after
 * its header was checked).  They are read in file order in chunks of
 * DIT_LOAD_CHUNK bytes by DIT_LOAD_READERS threads with pread (no mmap, so
 * no page fault per 4 KiB), into a ring of DIT_LOAD_RING page-locked
 * buffers (dit_host_alloc); the calling thread uploads each chunk as soon
 * as it is read (asynchronous copies on the backend's stream) and records
 * an event, and a reader reuses a buffer only once that event completed.
 * Disk, host bus and the device overlap; the slowest of them sets the rate.
 *
 * A tensor whose file dtype is its destination's goes straight to its
 * destination.  Otherwise — or always when a `place` hook is given — it
 * is uploaded into one device staging buffer (the largest such tensor's
 * size) and, once complete there, `place` writes the destination from it
 * on the device: the default converts the dtype (dit_copy), an FP8 path
 * quantizes (per-channel scales from the staged bf16 values, then e4m3).
 * Stream order keeps the next staged tensor's upload behind that work.
 */
#ifndef DIT_STREAM_LOAD_H
#define DIT_STREAM_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_LOAD_CHUNK (64u << 20)
#define DIT_LOAD_RING 4
#define DIT_LOAD_READERS 2

typedef struct dit_load_item {
  const char *file;         /* path */
  uint64_t offset, bytes;   /* the tensor's bytes in the file */
  dit_dtype src_dtype;      /* as stored */
  dit_tensor *dst;          /* contiguous, in backend memory */
  size_t index;             /* the caller's number for it */
} dit_load_item;

/* Write item->dst from `staged` (the item's values in src_dtype, in
 * backend memory, contiguous, dst's shape); enqueue only (no host wait). */
typedef dit_status (*dit_load_place_fn) (void *user, dit_backend *be,
    const dit_load_item *item, const dit_tensor *staged);

typedef struct dit_load_stats {
  double bytes;             /* read from disk */
  double ms;                /* first read to last upload done */
  double wait_read_ms;      /* uploader waiting for reads (disk-bound) */
  int chunks;
} dit_load_stats;

/* Load every item; stats may be NULL.  Errors name the file and offset. */
dit_status dit_stream_load (dit_backend *be, const dit_load_item *items,
    size_t count, dit_load_place_fn place, void *user, dit_load_stats *stats);
/* The same with chunks of chunk_bytes (tests cut small files into many). */
dit_status dit_stream_load_chunked (dit_backend *be,
    const dit_load_item *items, size_t count, dit_load_place_fn place,
    void *user, size_t chunk_bytes, dit_load_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
