// Rotary position embedding, computed the way ggml does (theta advanced by
// repeated multiplication in float) so results match the reference engine;
// linear, YaRN and Llama 3 frequency scaling.
#pragma once

#include <cstdint>
#include <vector>

#include "frugal/model.h"

namespace frugal {

class RotaryEmbedding {
 public:
  // `frequency_factors`: per rotated pair divisors (the `rope_freqs.weight`
  // tensor of Llama 3.1+ files); empty for none.
  RotaryEmbedding(const ModelConfig& config, std::vector<float> frequency_factors);

  // cos/sin for each rotated pair at `position` (size rope_dimensions / 2).
  void angles(int64_t position, float* cos_out, float* sin_out) const;
  // cos/sin that move an already rotated vector by `delta` positions
  // (rotations add up; YaRN's magnitude scale is not applied again).
  void shift_angles(int64_t delta, float* cos_out, float* sin_out) const;
  // Rotates one head vector in place given the angles of its position.
  void rotate(float* head, const float* cos_values, const float* sin_values) const;
  int64_t pairs() const { return dimensions_ / 2; }

 private:
  RopeStyle style_;
  int64_t dimensions_;
  float theta_scale_;
  float frequency_scale_ = 1.0f;
  float extrapolation_factor_ = 0.0f;
  float magnitude_scale_ = 1.0f;
  float correction_low_ = 0.0f, correction_high_ = 0.0f;
  std::vector<float> frequency_factors_;
};

}  // namespace frugal
