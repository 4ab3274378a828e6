/* comm_nccl_stub — the NCCL entry points of dit_comm.h in builds without
 * NCCL: they say so instead of failing to link. */
#include "dit_comm.h"

int
dit_comm_nccl_available (void)
{
  return 0;
}

int
dit_comm_nccl_pointer_device (const void *ptr)
{
  (void) ptr;
  return -1;
}

dit_status
dit_comm_nccl_unique_id (unsigned char id[DIT_COMM_NCCL_ID_BYTES])
{
  (void) id;
  return dit_error (DIT_ERR_UNSUPPORTED,
      "NCCL transport not built (needs the CUDA backend, nccl.h and libnccl)");
}

dit_status
dit_comm_nccl_create (const unsigned char id[DIT_COMM_NCCL_ID_BYTES], int rank,
    int size, int device, void *stream, int timeout_ms, dit_comm **out)
{
  (void) id; (void) rank; (void) size; (void) device; (void) stream;
  (void) timeout_ms;
  *out = NULL;
  return dit_comm_nccl_unique_id (NULL);
}
