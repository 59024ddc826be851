// The --preserve term: the base model's next-token distributions on other
// records, computed once before training, which the tuned model is kept
// close to (KL divergence), and the drift measured on held-out ones.
#pragma once

#include <vector>

#include "frugal/finetune.h"
#include "train/training_pass.h"

namespace frugal {

// A training sequence whose rows predicting the example's targets carry
// the base model's distribution (its `top` most likely tokens and the rest
// as one outcome) instead of cross-entropy targets.
TrainingSequence preserved_sequence(LoraTrainingPass& pass, const TrainingExample& example, size_t top);

// Mean KL(base || tuned) per row, exact over the vocabulary, at the rows
// predicting each example's targets.
double mean_divergence(LoraTrainingPass& pass, const std::vector<TrainingExample>& examples);

}  // namespace frugal
