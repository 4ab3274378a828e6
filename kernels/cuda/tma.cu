/* tma — TMA tensor maps for the warp-specialised Hopper kernels (the
 * attention configurations 6 and up, the FP8 wgmma GEMM).
 *
 * A tensor map is encoded on the host by the driver's
 * cuTensorMapEncodeTiled, which libdit finds at run time through the
 * runtime's cudaGetDriverEntryPointByVersion (no libcuda link): a driver
 * without it makes every TMA kernel unsupported, and the ops take their
 * other kernels.  Maps are encoded per call (a few hundred nanoseconds)
 * and travel by value as __grid_constant__ kernel parameters, so a CUDA
 * graph records them with the launch.
 */
#include "hopper.cuh"

/* cuTensorMapEncodeTiled from the driver the runtime loaded; NULL when the
 * driver lacks it. */
static PFN_cuTensorMapEncodeTiled_v12000
tma_encode_lookup (void)
{
  void *fn = NULL;
  cudaDriverEntryPointQueryResult qr = cudaDriverEntryPointSymbolNotFound;
  if (cudaGetDriverEntryPointByVersion ("cuTensorMapEncodeTiled", &fn,
          12000, cudaEnableDefault, &qr) != cudaSuccess
      || qr != cudaDriverEntryPointSuccess || !fn) {
    cudaGetLastError ();
    return NULL;
  }
  return (PFN_cuTensorMapEncodeTiled_v12000) fn;
}

/* Looked up once per process; a function-local static is initialised
 * exactly once even when backends on several threads ask together. */
static PFN_cuTensorMapEncodeTiled_v12000
tma_encode_fn (void)
{
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = tma_encode_lookup ();
  return fn;
}

int
dit_cuda_tma_present (void)
{
  return tma_encode_fn () != NULL;
}

dit_status
dit_cuda_tensor_map_2d (CUtensorMap *map, CUtensorMapDataType type,
    const void *base, int64_t rows, int64_t cols, int64_t ld_bytes,
    unsigned box_cols, unsigned box_rows, const char *op, const char *what)
{
  PFN_cuTensorMapEncodeTiled_v12000 encode = tma_encode_fn ();
  if (!encode)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s (TMA): the driver has no "
        "cuTensorMapEncodeTiled", op);
  const cuuint64_t dims[2] = { (cuuint64_t) cols, (cuuint64_t) rows };
  const cuuint64_t strides[1] = { (cuuint64_t) ld_bytes };
  const cuuint32_t box[2] = { box_cols, box_rows };
  const cuuint32_t estrides[2] = { 1, 1 };
  CUresult r = encode (map, type, 2, (void *) base, dims, strides, box,
      estrides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s (TMA): cuTensorMapEncodeTiled "
        "failed (%d) for %s [%lld x %lld, pitch %lld bytes, box %u x %u]", op,
        (int) r, what, (long long) rows, (long long) cols, (long long) ld_bytes,
        box_rows, box_cols);
  return DIT_OK;
}
