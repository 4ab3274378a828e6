/* comm_group — a group of a communicator's ranks as a dit_comm of its own
 * (dit_comm.h, dit_comm_group_view): the tensor-parallel and the
 * sequence-parallel groups of a hybrid layout.  The view forwards its
 * all-reduce and all-to-all to the parent's group entries with its
 * {size, stride}; its rank is the caller's index in the group. */
#include "dit_comm.h"

#include <stdlib.h>

typedef struct comm_group {
  dit_comm pub;
  dit_comm *parent;
  int size, stride;
} comm_group;

static dit_status
group_allreduce (dit_comm *pub, void *data, int64_t count, dit_dtype dtype)
{
  comm_group *g = (comm_group *) pub;
  dit_comm *p = g->parent;
  dit_status st = p->ops->allreduce_group (p, data, count, dtype, g->size,
      g->stride);
  pub->failed_peer = p->failed_peer;
  return st;
}

static dit_status
group_alltoall (dit_comm *pub, const void *send, void *recv, size_t block,
    int size, int stride)
{
  comm_group *g = (comm_group *) pub;
  dit_comm *p = g->parent;
  (void) size;
  (void) stride;
  dit_status st = p->ops->alltoall_group (p, send, recv, block, g->size,
      g->stride);
  pub->failed_peer = p->failed_peer;
  return st;
}

static dit_status
group_refuse (const char *op)
{
  return dit_error (DIT_ERR_UNSUPPORTED, "comm group view: %s is not "
      "available on a group (use the parent communicator)", op);
}

static dit_status
group_broadcast (dit_comm *c, void *data, size_t bytes, int root)
{
  (void) c; (void) data; (void) bytes; (void) root;
  return group_refuse ("broadcast");
}

static dit_status
group_send (dit_comm *c, const void *data, size_t bytes, int peer)
{
  (void) c; (void) data; (void) bytes; (void) peer;
  return group_refuse ("send");
}

static dit_status
group_recv (dit_comm *c, void *data, size_t bytes, int peer)
{
  (void) c; (void) data; (void) bytes; (void) peer;
  return group_refuse ("recv");
}

static dit_status
group_barrier (dit_comm *c)
{
  (void) c;
  return group_refuse ("barrier");
}

static void
group_destroy (dit_comm *c)
{
  free (c);
}

static const dit_comm_ops comm_group_ops = {
  .name = "group",
  .allreduce_sum = group_allreduce,
  .broadcast = group_broadcast,
  .send = group_send,
  .recv = group_recv,
  .barrier = group_barrier,
  .destroy = group_destroy,
  .alltoall_group = group_alltoall,
};

dit_status
dit_comm_group_view (dit_comm *parent, int size, int stride, dit_comm **out)
{
  *out = NULL;
  if (!parent->ops->allreduce_group || !parent->ops->alltoall_group)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s comm: no group collectives",
        parent->ops->name);
  if (size < 1 || stride < 1 || parent->size % (size * stride) != 0)
    return dit_error (DIT_ERR_INVALID, "comm group of %d ranks with stride %d "
        "does not tile %d ranks", size, stride, parent->size);
  if (parent->ops->split)
    return parent->ops->split (parent, size, stride, out);
  comm_group *g = calloc (1, sizeof *g);
  if (!g)
    return dit_error (DIT_ERR_NOMEM, "comm group: out of memory");
  g->parent = parent;
  g->size = size;
  g->stride = stride;
  g->pub.ops = &comm_group_ops;
  g->pub.rank = (parent->rank / stride) % size;
  g->pub.size = size;
  g->pub.device = parent->device;
  g->pub.timeout_ms = parent->timeout_ms;
  g->pub.impl = g;
  g->pub.failed_peer = -1;
  *out = &g->pub;
  return DIT_OK;
}
