#include "tensor/kquant_search.h"

#include <algorithm>
#include <cmath>

#include "tensor/kernels.h"

namespace frugal::detail {
namespace {

// Below this the group is treated as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

float error_weight(const float* weights, int rmse_type, float x, int i) {
  if (weights) return weights[i];
  switch (rmse_type) {
    case 1: return x * x;
    case 2: return 1.0f;
    case 3: return std::fabs(x);
    default: return std::sqrt(std::fabs(x));
  }
}

int clamp_symmetric(int level, int nmax) { return std::max(-nmax, std::min(nmax - 1, level)); }

}  // namespace

float fit_symmetric_levels(int n, int nmax, const float* x, int8_t* levels, int rmse_type, const float* weights) {
  const float max = signed_absmax(x, static_cast<size_t>(n));
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(levels, levels + n, int8_t{0});
    return 0.0f;
  }
  float iscale = -nmax / max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(nmax + clamp_symmetric(nearest_int(iscale * x[i]), nmax));
    return 1 / iscale;
  }
  bool return_early = false;
  if (rmse_type < 0) {
    rmse_type = -rmse_type;
    return_early = true;
  }
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_symmetric(nearest_int(iscale * x[i]), nmax);
    levels[i] = static_cast<int8_t>(l + nmax);
    const float w = error_weight(weights, rmse_type, x[i], i);
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_symmetric(nearest_int(iscale * x[i]), nmax);
      const float w = error_weight(weights, rmse_type, x[i], i);
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    // Maximising sumlx^2 / suml2 minimises the weighted squared error.
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        levels[i] = static_cast<int8_t>(nmax + clamp_symmetric(nearest_int(iscale * x[i]), nmax));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float fit_symmetric_levels_q3(int n, int nmax, const float* x, int8_t* levels, bool refine) {
  const float max = signed_absmax(x, static_cast<size_t>(n));
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(levels, levels + n, int8_t{0});
    return 0.0f;
  }
  const float iscale = -nmax / max;
  if (refine) {
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_symmetric(nearest_int(iscale * x[i]), nmax);
      levels[i] = static_cast<int8_t>(l);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
      int changed = 0;
      for (int i = 0; i < n; ++i) {
        const float w = x[i] * x[i];
        float slx = sumlx - w * x[i] * levels[i];
        if (slx > 0) {
          float sl2 = suml2 - w * levels[i] * levels[i];
          const int new_l = clamp_symmetric(nearest_int(x[i] * sl2 / slx), nmax);
          if (new_l != levels[i]) {
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
              levels[i] = static_cast<int8_t>(new_l);
              sumlx = slx;
              suml2 = sl2;
              ++changed;
            }
          }
        }
      }
      if (!changed) break;
    }
    for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(levels[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
  }
  for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(clamp_symmetric(nearest_int(iscale * x[i]), nmax) + nmax);
  return 1 / iscale;
}

float fit_levels_with_min(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                          float* negated_min, uint8_t* scratch, float rmin, float rdelta, int nstep,
                          bool absolute_error) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;  // the offset only ever shifts down
  if (max == min) {
    std::fill(levels, levels + n, uint8_t{0});
    *negated_min = -min;
    return 0.0f;
  }
  auto error = [absolute_error](float diff) { return absolute_error ? std::fabs(diff) : diff * diff; };
  auto clamp_level = [nmax](int l) { return std::max(0, std::min(nmax, l)); };

  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    levels[i] = static_cast<uint8_t>(clamp_level(nearest_int(iscale * (x[i] - min))));
    best_error += weights[i] * error(scale * levels[i] + min - x[i]);
  }
  if (nstep < 1) {
    *negated_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_level(nearest_int(iscale * (x[i] - min)));
      scratch[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    // Weighted least squares for x ~ scale * l + min with these levels.
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float this_error = 0.0f;
      for (int i = 0; i < n; ++i) this_error += weights[i] * error(this_scale * scratch[i] + this_min - x[i]);
      if (this_error < best_error) {
        std::copy(scratch, scratch + n, levels);
        best_error = this_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *negated_min = -min;
  return scale;
}

}  // namespace frugal::detail
