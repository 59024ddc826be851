#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

namespace {

// Dimension index at which a rotation completes `rotations` turns over the
// original context (YaRN paper, as computed by ggml).
float yarn_correction_dimension(int64_t dims, int64_t original_context, float rotations, float base) {
  return static_cast<float>(dims) *
         std::log(static_cast<float>(original_context) / (rotations * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}

}  // namespace

std::vector<float> llama3_rope_frequency_factors(int64_t rope_dimensions, float rope_base, float factor,
                                                 float low_freq_factor, float high_freq_factor,
                                                 int64_t original_context) {
  std::vector<float> factors;
  const double old_context = static_cast<double>(original_context);
  const double low_wavelength = old_context / low_freq_factor;
  const double high_wavelength = old_context / high_freq_factor;
  for (int64_t i = 0; i < rope_dimensions; i += 2) {
    const double frequency = 1.0 / std::pow(static_cast<double>(rope_base), static_cast<double>(i) / rope_dimensions);
    const double wavelength = 2.0 * std::numbers::pi / frequency;
    if (wavelength < high_wavelength) {
      factors.push_back(1.0f);
    } else if (wavelength > low_wavelength) {
      factors.push_back(factor);
    } else {
      const double smooth = (old_context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor);
      factors.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth)));
    }
  }
  return factors;
}

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config, std::vector<float> frequency_factors)
    : style_(config.rope_style),
      dimensions_(config.rope_dimensions),
      theta_scale_(std::pow(config.rope_freq_base, -2.0f / static_cast<float>(config.rope_dimensions))),
      frequency_factors_(std::move(frequency_factors)) {
  if (frequency_factors_.empty() && config.rope_scaling == RopeScaling::Llama3) {
    frequency_factors_ = llama3_rope_frequency_factors(config.rope_dimensions, config.rope_freq_base,
                                                       config.rope_scaling_factor, config.llama3_low_freq_factor,
                                                       config.llama3_high_freq_factor, config.rope_original_context);
  }
  if (!frequency_factors_.empty() && static_cast<int64_t>(frequency_factors_.size()) != pairs()) {
    throw FormatError(fmt::format("rope_freqs.weight has {} values, expected {}", frequency_factors_.size(), pairs()));
  }
  for (float factor : frequency_factors_) {
    if (!std::isfinite(factor) || factor <= 0) {
      throw FormatError(fmt::format("rope_freqs.weight holds {}, expected positive finite values", factor));
    }
  }
  if (config.rope_scaling == RopeScaling::Linear || config.rope_scaling == RopeScaling::Yarn) {
    frequency_scale_ = 1.0f / config.rope_scaling_factor;
  }
  if (config.rope_scaling == RopeScaling::Yarn) {
    extrapolation_factor_ = 1.0f;
    const float start = std::floor(yarn_correction_dimension(dimensions_, config.rope_original_context,
                                                             config.yarn_beta_fast, config.rope_freq_base));
    const float end = std::ceil(yarn_correction_dimension(dimensions_, config.rope_original_context,
                                                          config.yarn_beta_slow, config.rope_freq_base));
    correction_low_ = std::max(0.0f, start);
    correction_high_ = std::min(static_cast<float>(dimensions_ - 1), end);
    magnitude_scale_ = 1.0f + 0.1f * std::log(1.0f / frequency_scale_);
  }
}

void RotaryEmbedding::angles(int64_t position, float* cos_out, float* sin_out) const {
  float theta = static_cast<float>(position);
  for (int64_t pair = 0; pair < pairs(); ++pair) {
    const float factor = frequency_factors_.empty() ? 1.0f : frequency_factors_[static_cast<size_t>(pair)];
    const float extrapolated = theta / factor;
    const float interpolated = frequency_scale_ * extrapolated;
    float angle = interpolated;
    if (extrapolation_factor_ != 0.0f) {
      const float y = (static_cast<float>(pair) - correction_low_) / std::max(0.001f, correction_high_ - correction_low_);
      const float ramp = (1.0f - std::min(1.0f, std::max(0.0f, y))) * extrapolation_factor_;
      angle = interpolated * (1.0f - ramp) + extrapolated * ramp;
    }
    cos_out[pair] = std::cos(angle) * magnitude_scale_;
    sin_out[pair] = std::sin(angle) * magnitude_scale_;
    theta *= theta_scale_;
  }
}

void RotaryEmbedding::shift_angles(int64_t delta, float* cos_out, float* sin_out) const {
  angles(delta, cos_out, sin_out);
  for (int64_t pair = 0; pair < pairs(); ++pair) {
    cos_out[pair] /= magnitude_scale_;
    sin_out[pair] /= magnitude_scale_;
  }
}

void RotaryEmbedding::rotate(float* head, const float* cos_values, const float* sin_values) const {
  const int64_t half = dimensions_ / 2;
  for (int64_t pair = 0; pair < half; ++pair) {
    const int64_t a = style_ == RopeStyle::Normal ? 2 * pair : pair;
    const int64_t b = style_ == RopeStyle::Normal ? 2 * pair + 1 : pair + half;
    const float x0 = head[a], x1 = head[b];
    head[a] = x0 * cos_values[pair] - x1 * sin_values[pair];
    head[b] = x0 * sin_values[pair] + x1 * cos_values[pair];
  }
}

}  // namespace frugal
