// AdamW and the warm-up + cosine schedule (optimizer.h).
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace frugal {

namespace {

void update(std::vector<float>& values, const std::vector<float>& gradients, std::vector<float>& moment1,
            std::vector<float>& moment2, float rate, size_t step, const AdamWSettings& s) {
  const double correction1 = 1.0 - std::pow(static_cast<double>(s.beta1), static_cast<double>(step));
  const double correction2 = 1.0 - std::pow(static_cast<double>(s.beta2), static_cast<double>(step));
  const auto step_size = static_cast<float>(rate / correction1);
  const auto root_correction2 = static_cast<float>(std::sqrt(correction2));
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] *= 1.0f - rate * s.weight_decay;
    moment1[i] = s.beta1 * moment1[i] + (1.0f - s.beta1) * gradients[i];
    moment2[i] = s.beta2 * moment2[i] + (1.0f - s.beta2) * gradients[i] * gradients[i];
    const float denominator = std::sqrt(moment2[i]) / root_correction2 + s.epsilon;
    values[i] -= step_size * moment1[i] / denominator;
  }
}

}  // namespace

void adamw_step(LoraParameters& lora, float rate, size_t step, const AdamWSettings& settings) {
  for (TrainableMatrix& m : lora.matrices()) {
    update(m.a, m.grad_a, m.moment1_a, m.moment2_a, rate, step, settings);
    update(m.b, m.grad_b, m.moment1_b, m.moment2_b, rate, step, settings);
  }
}

float scheduled_rate(float peak, size_t step, size_t warmup, size_t total) {
  if (step <= warmup && warmup > 0) return peak * static_cast<float>(step) / static_cast<float>(warmup);
  if (total <= warmup) return peak;
  // The first step after warm-up runs at the peak, the last just above 0.
  const double progress = static_cast<double>(step - warmup - 1) / static_cast<double>(total - warmup);
  return static_cast<float>(peak * 0.5 * (1.0 + std::cos(std::numbers::pi * std::min(progress, 1.0))));
}

}  // namespace frugal
