// `batch` beam search: a full KV cache per beam, copied from the parent when
// beams are re-selected (what common libraries do with their reordered
// per-beam caches). The baseline the shared-prefix trie is measured against.
#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "frugal/beam_search.h"
#include "frugal/error.h"
#include "frugal/generate.h"

namespace frugal {

namespace {

class PerBeamCaches final : public BeamLogitSource {
 public:
  PerBeamCaches(Model& model, std::span<const TokenId> prompt, int64_t capacity, const BeamSearchOptions& options)
      : model_(model), prompt_(prompt), capacity_(capacity), options_(options) {}

  std::vector<float> start() override {
    caches_.clear();
    caches_.emplace_back(std::in_place, model_.config(), capacity_, options_.cache_precision);
    constexpr size_t kPromptBatch = 512;
    std::vector<float> logits;
    run_beam_pass(options_, [&] { logits = prefill(model_, *caches_.front(), prompt_, kPromptBatch); });
    forward_passes_ += (prompt_.size() + kPromptBatch - 1) / kPromptBatch;
    note_live_bytes();
    return logits;
  }

  std::vector<float> advance(std::span<const BeamExtension> beams) override {
    // Drop the parents nobody continues before copying, so at most one
    // cache per new beam is alive at any time.
    std::vector<size_t> children(caches_.size(), 0);
    for (const BeamExtension& beam : beams) ++children.at(beam.parent);
    for (size_t parent = 0; parent < caches_.size(); ++parent) {
      if (children[parent] == 0) caches_[parent].reset();
    }
    // The last child of a parent takes its cache over; the others get copies.
    std::vector<std::optional<KvCache>> next;
    next.reserve(beams.size());
    for (const BeamExtension& beam : beams) {
      if (--children[beam.parent] == 0) {
        next.push_back(std::move(caches_[beam.parent]));
        caches_[beam.parent].reset();
      } else {
        next.push_back(caches_[beam.parent]->clone());
      }
    }
    caches_ = std::move(next);

    const size_t vocab = static_cast<size_t>(model_.config().vocab_size);
    std::vector<float> logits(beams.size() * vocab);
    for (size_t i = 0; i < beams.size(); ++i) {
      KvCache& cache = *caches_[i];
      if (cache.size() >= cache.capacity()) {
        throw Error(fmt::format("beam search: a beam's KV cache is full at {} tokens", cache.capacity()));
      }
      const TokenId token[1] = {beams[i].token};
      run_beam_pass(options_, [&] {
        const auto row = model_.forward(token, cache, false);
        std::copy(row.begin(), row.end(), logits.begin() + static_cast<std::ptrdiff_t>(i * vocab));
      });
      ++forward_passes_;
    }
    note_live_bytes();
    return logits;
  }

  size_t peak_bytes() const { return peak_bytes_; }
  size_t forward_passes() const { return forward_passes_; }

 private:
  // Called when every live cache is at its fullest for the step.
  void note_live_bytes() {
    size_t live = 0;
    for (const auto& cache : caches_) {
      if (cache) live += cache->filled_bytes();
    }
    peak_bytes_ = std::max(peak_bytes_, live);
  }

  Model& model_;
  std::span<const TokenId> prompt_;
  int64_t capacity_;
  const BeamSearchOptions& options_;
  std::vector<std::optional<KvCache>> caches_;  // one per current beam, in beam order
  size_t peak_bytes_ = 0;
  size_t forward_passes_ = 0;
};

class BatchBeamSearch final : public BeamSearch {
 public:
  BeamSearchResult run(Model& model, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                       const BeamSearchOptions& options) override {
    check_beam_search_inputs(model, tokenizer, prompt, options);
    const auto start = std::chrono::steady_clock::now();
    // The last token chosen is never fed back, so this always suffices.
    const int64_t capacity = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
    PerBeamCaches caches(model, prompt, capacity, options);
    BeamSearchResult result;
    result.hypotheses =
        search_beams(caches, static_cast<size_t>(model.config().vocab_size),
                     [&](TokenId token) { return tokenizer.is_end_of_generation(token); }, options);
    result.peak_kv_bytes = caches.peak_bytes();
    result.forward_passes = caches.forward_passes();
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  }
};

}  // namespace

std::unique_ptr<BeamSearch> make_batch_beam_search() { return std::make_unique<BatchBeamSearch>(); }

}  // namespace frugal
