/* graph — recording and replay of op sequences as CUDA graphs.
 *
 * graph_begin puts the backend's stream into capture mode, so every op
 * launched on it afterwards (kernels, cuBLASLt matmuls, device copies) is
 * recorded instead of run; graph_end closes the capture and instantiates an
 * executable graph; graph_launch replays it on the same stream.  A replay
 * runs the recorded kernels with the recorded arguments: the same pointers
 * and scalars (the timestep values of the time embedding travel inside the
 * kernel parameters, so a forward is recorded once per distinct set of
 * scalars; model/dit_generator.c keys its graphs accordingly).
 *
 * Why: one 14B forward is ~1000 launches; replay removes the per-launch
 * host cost and the gaps between short kernels.
 *
 * Capture mode is thread-local: host calls made by other threads (another
 * backend, the VAE on a different stream) are neither recorded nor
 * rejected.  Nothing inside a recorded sequence may wait on the host; the
 * GEMM plans are built on the first eager run of each shape, so a recorded
 * forward only enqueues.
 */
#include "cuda_common.cuh"

#include <stdlib.h>

struct dit_graph {
  cudaGraphExec_t exec;
};

dit_status
dit_cuda_graph_begin (dit_backend *be)
{
  DIT_CUDA_TRY (cudaSetDevice (dit_cuda_impl (be)->device));
  DIT_CUDA_TRY (cudaStreamBeginCapture (dit_cuda_impl (be)->stream,
      cudaStreamCaptureModeThreadLocal));
  return DIT_OK;
}

dit_status
dit_cuda_graph_end (dit_backend *be, dit_graph **out)
{
  cudaGraph_t graph = NULL;
  cudaError_t e = cudaStreamEndCapture (dit_cuda_impl (be)->stream, &graph);
  if (out)
    *out = NULL;
  if (e != cudaSuccess || !out) {
    if (graph)
      cudaGraphDestroy (graph);
    cudaGetLastError ();
    if (e != cudaSuccess)
      return dit_error (DIT_ERR_DEVICE, "cuda graph: capture failed: %s (%s)",
          cudaGetErrorString (e), cudaGetErrorName (e));
    return DIT_OK;
  }
  cudaGraphExec_t exec = NULL;
  e = cudaGraphInstantiate (&exec, graph, 0);
  cudaGraphDestroy (graph);
  if (e != cudaSuccess) {
    cudaGetLastError ();
    return dit_error (DIT_ERR_DEVICE, "cuda graph: instantiate failed: %s",
        cudaGetErrorString (e));
  }
  dit_graph *g = (dit_graph *) calloc (1, sizeof *g);
  if (!g) {
    cudaGraphExecDestroy (exec);
    return dit_error (DIT_ERR_NOMEM, "cuda graph: out of host memory");
  }
  g->exec = exec;
  *out = g;
  return DIT_OK;
}

dit_status
dit_cuda_graph_launch (dit_backend *be, dit_graph *g)
{
  if (!g)
    return dit_error (DIT_ERR_INVALID, "cuda graph: launch of a NULL graph");
  DIT_CUDA_TRY (cudaGraphLaunch (g->exec, dit_cuda_impl (be)->stream));
  return DIT_OK;
}

void
dit_cuda_graph_free (dit_backend *be, dit_graph *g)
{
  (void) be;
  if (!g)
    return;
  cudaGraphExecDestroy (g->exec);
  free (g);
}
