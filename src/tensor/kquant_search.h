// Scale searches used by the K-quant reference quantizers. They are ports of
// ggml's make_qx_quants, make_q3_quants and make_qkx2_quants: `frugal
// quantize` must make the same choices as ggml so that files agree.
#pragma once

#include <cstdint>

namespace frugal::detail {

// Symmetric levels L[i] in [0, 2*nmax) (stored with +nmax) and scale s so
// that x[i] ~ s * (L[i] - nmax). rmse_type 0: plain rounding from the largest
// magnitude; 1: also tries 18 nearby scales, keeping the best weighted
// (weights `weights`, or x^2 when null) least-squares fit. (make_qx_quants)
float fit_symmetric_levels(int n, int nmax, const float* x, int8_t* levels, int rmse_type, const float* weights);

// As above for Q3_K, with optional coordinate-descent refinement of single
// levels weighted by x^2. (make_q3_quants)
float fit_symmetric_levels_q3(int n, int nmax, const float* x, int8_t* levels, bool refine);

// Asymmetric levels L[i] in [0, nmax] with scale and offset so that
// x[i] ~ scale * L[i] - *negated_min (min <= 0). Tries nstep+1 scales
// (nmax + rmin + rdelta * k) / range and keeps the best weighted fit by squared
// or absolute error. `scratch` holds n bytes. (make_qkx2_quants)
float fit_levels_with_min(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                          float* negated_min, uint8_t* scratch, float rmin, float rdelta, int nstep,
                          bool absolute_error);

}  // namespace frugal::detail
