/* rope — Wan 3-D rotary position embedding, in place, and its angle tables.
 *
 * Layout: x is [L, heads*128] in token order (f, h, w); each head's 128
 * channels are 64 interleaved pairs (x[2i], x[2i+1]) = a + ib.  Pairs 0..21
 * rotate with the frame index (+ frame_offset, the absolute start frame of
 * the causal variant), pairs 22..42 with the row h and 43..63 with the
 * column w (spec §2.6: split [22, 21, 21]).
 *
 * Tables: cos/sin [1024][64] of the angle p * omega_i, built in f64 like
 * rope_params() in the reference (1 / 10000^(2j/dim) with dim 44 for the
 * temporal pairs and 42 for the spatial ones) and stored as f32.  The
 * rotation itself is f32: (a, b) -> (a cos - b sin, a sin + b cos).
 */
#include "cpu_internal.h"

#define ROPE_HEAD_DIM 128
#define ROPE_T_PAIRS 22
#define ROPE_S_PAIRS 21

void
dit_rope_table_fill (float *cos_tab, float *sin_tab)
{
  double omega[DIT_ROPE_PAIRS];
  for (int i = 0; i < DIT_ROPE_PAIRS; i++) {
    int j, dim;
    if (i < ROPE_T_PAIRS) {
      j = i;
      dim = 2 * ROPE_T_PAIRS;                      /* 44 */
    } else if (i < ROPE_T_PAIRS + ROPE_S_PAIRS) {
      j = i - ROPE_T_PAIRS;
      dim = 2 * ROPE_S_PAIRS;                      /* 42 */
    } else {
      j = i - ROPE_T_PAIRS - ROPE_S_PAIRS;
      dim = 2 * ROPE_S_PAIRS;
    }
    omega[i] = 1.0 / pow (10000.0, (double) (2 * j) / (double) dim);
  }
  for (int p = 0; p < DIT_ROPE_POSITIONS; p++)
    for (int i = 0; i < DIT_ROPE_PAIRS; i++) {
      double a = (double) p * omega[i];
      cos_tab[p * DIT_ROPE_PAIRS + i] = (float) cos (a);
      sin_tab[p * DIT_ROPE_PAIRS + i] = (float) sin (a);
    }
}

dit_status
dit_cpu_rope (dit_backend *be, const dit_rope_params *p)
{
  dit_rope_dims d;
  DIT_TRY (dit_check_rope (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, ct = d.cos, st = d.sin;
  if (x.rows == 0)
    return DIT_OK;

  float *row = dit_cpu_scratch ((size_t) x.cols + 2 * DIT_ROPE_PAIRS + 64);
  if (!row)
    return dit_error (DIT_ERR_NOMEM, "rope: cannot allocate scratch");
  float *c = row + x.cols, *s = c + DIT_ROPE_PAIRS;
  int64_t hw = p->grid_h * p->grid_w;
  for (int64_t r = 0; r < x.rows; r++) {
    int64_t pos[3] = { r / hw + p->frame_offset, (r / p->grid_w) % p->grid_h,
        r % p->grid_w };
    /* Gather this token's 64 angles from the three table rows. */
    for (int i = 0; i < DIT_ROPE_PAIRS; i++) {
      int axis = i < ROPE_T_PAIRS ? 0 : i < ROPE_T_PAIRS + ROPE_S_PAIRS ? 1 : 2;
      c[i] = dit_load_f32 (dit_cpu_row (&ct, pos[axis]), ct.dtype, (size_t) i);
      s[i] = dit_load_f32 (dit_cpu_row (&st, pos[axis]), st.dtype, (size_t) i);
    }
    void *xr = dit_cpu_row (&x, r);
    dit_cpu_load_row (row, xr, x.dtype, x.cols);
    for (int h = 0; h < p->heads; h++) {
      float *v = row + (size_t) h * ROPE_HEAD_DIM;
      for (int i = 0; i < DIT_ROPE_PAIRS; i++) {
        float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c[i] - b * s[i];
        v[2 * i + 1] = a * s[i] + b * c[i];
      }
    }
    dit_cpu_store_row (xr, x.dtype, row, x.cols);
  }
  return DIT_OK;
}
