// Token sampling from logits, in llama.cpp's default order:
// repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace frugal {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0 means greedy (argmax)
  int32_t top_k = 40;            // <= 0: off
  float top_p = 0.95f;           // >= 1: off
  float min_p = 0.05f;           // <= 0: off
  float repeat_penalty = 1.0f;   // 1: off; positive logits divided, negative multiplied
  int32_t repeat_last_n = 64;    // recent tokens the penalty looks at; 0: off, < 0: all
  uint64_t seed = 0xFFFFFFFF;    // kRandomSeed: seed from std::random_device

  static constexpr uint64_t kRandomSeed = 0xFFFFFFFF;
};

class Sampler {
 public:
  // Throws Error for parameters that make no sense (repeat_penalty <= 0).
  explicit Sampler(SamplingParams params);

  // Picks the next token from raw logits (one per vocabulary entry).
  // `history` holds the tokens so far (prompt + generated), for the
  // repetition penalty. Throws Error when `logits` is empty.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  const SamplingParams& params() const { return params_; }
  // The seed the generator was started from (the random one when
  // params().seed was kRandomSeed), so a run can be repeated.
  uint64_t seed_used() const { return seed_used_; }
  // Restarts the generator from `seed` (kRandomSeed: a fresh random one).
  void reseed(uint64_t seed);

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };

  void apply_repeat_penalty(std::span<const int32_t> history);
  void gather_candidates(std::span<const float> logits);
  void apply_top_p();
  void apply_min_p();
  int32_t draw();
  // Makes candidates_[0, count) the `count` highest, sorted descending.
  void sort_prefix(size_t count);

  SamplingParams params_;
  uint64_t seed_used_ = 0;
  std::mt19937 rng_;
  std::vector<float> working_logits_;   // logits after the repetition penalty
  std::vector<Candidate> candidates_;   // tokens still in the running
  size_t sorted_count_ = 0;             // candidates_[0, sorted_count_) are sorted, highest first
  float max_logit_ = 0.0f;              // highest logit among candidates_
  std::vector<int32_t> penalized_;      // scratch: distinct ids of the penalty window
};

}  // namespace frugal
