// AdamW over the LoRA matrices (PyTorch's torch.optim.AdamW update:
// decoupled weight decay, bias-corrected moments) and the learning-rate
// schedule: linear warm-up, then cosine decay to zero.
#pragma once

#include <cstddef>

#include "train/lora_parameters.h"

namespace frugal {

struct AdamWSettings {
  float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f;
  float weight_decay = 0.0f;
};

// One update with learning rate `rate`; `step` counts from 1.
void adamw_step(LoraParameters& lora, float rate, size_t step, const AdamWSettings& settings);

// The learning rate at `step` (from 1) of `total`: linear warm-up over the
// first `warmup` steps, then half a cosine from the peak towards 0.
float scheduled_rate(float peak, size_t step, size_t warmup, size_t total);

}  // namespace frugal
