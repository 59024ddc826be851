// The loaded weights of a Model for modules above it that compute with them
// in other ways than a forward pass (the LoRA trainer, src/train/).
#pragma once

#include "model/model_impl.h"

namespace frugal {

struct ModelInternals {
  using Weights = Model::Impl;
  static const Model::Impl& of(const Model& model) { return *model.impl_; }
  static ThreadPool& pool(const Model& model) { return *model.impl_->pool; }
};

}  // namespace frugal
