// `trie` beam search: all beams live in one shared-prefix KV trie. Each KV
// entry is stored once however many beams pass through it, every step is one
// batched forward pass over all beams (each attending to its own path), and
// branches that fall out of the beam are freed at once.
#include <chrono>

#include <fmt/format.h>

#include "frugal/beam_search.h"
#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/kv_trie.h"

namespace frugal {

namespace {

class SharedTrieBeams final : public BeamLogitSource {
 public:
  SharedTrieBeams(Model& model, std::span<const TokenId> prompt, const BeamSearchOptions& options)
      : model_(model), prompt_(prompt), options_(options), trie_(model.kv_layout(options.cache_precision)) {}

  ~SharedTrieBeams() override = default;

  std::vector<float> start() override {
    constexpr size_t kPromptBatch = 512;
    KvNode node = KvTrie::kRoot;
    std::vector<float> logits;
    for (size_t begin = 0; begin < prompt_.size(); begin += kPromptBatch) {
      const size_t end = std::min(prompt_.size(), begin + kPromptBatch);
      std::vector<TrieBatchEntry> entries;
      for (size_t i = begin; i < end; ++i) {
        node = trie_.extend(node, prompt_[i]);
        entries.push_back({node, i + 1 == prompt_.size()});
      }
      run_beam_pass(options_, [&] { logits = model_.forward(entries, trie_); });
      ++forward_passes_;
    }
    trie_.retain(node);
    beams_ = {node};
    return logits;
  }

  std::vector<float> advance(std::span<const BeamExtension> extensions) override {
    // New nodes first, then the old handles go: a parent with children stays
    // (its children hold it), a parent without any is freed with its branch.
    std::vector<KvNode> next;
    std::vector<TrieBatchEntry> entries;
    for (const BeamExtension& e : extensions) {
      const KvNode node = trie_.extend(beams_.at(e.parent), e.token);
      trie_.retain(node);
      next.push_back(node);
      entries.push_back({node, true});
    }
    for (KvNode old : beams_) trie_.release(old, false);
    beams_ = std::move(next);
    // One pass for every beam, each beam's logits exactly those of a pass of
    // its own (so the search matches one run beam by beam).
    std::vector<float> logits;
    run_beam_pass(options_, [&] { logits = model_.forward(entries, trie_, true); });
    ++forward_passes_;
    return logits;
  }

  // Releases the beams; afterwards nothing may be left in the trie.
  void finish() {
    for (KvNode node : beams_) trie_.release(node, false);
    beams_.clear();
    if (trie_.stats().live_bytes != 0) {
      throw Error(fmt::format("beam search: {} bytes of KV left in the trie after the search (a leak)",
                              trie_.stats().live_bytes));
    }
  }

  size_t peak_bytes() const { return trie_.stats().peak_bytes; }
  size_t forward_passes() const { return forward_passes_; }

 private:
  Model& model_;
  std::span<const TokenId> prompt_;
  const BeamSearchOptions& options_;
  KvTrie trie_;
  std::vector<KvNode> beams_;  // the node of each current beam, in beam order
  size_t forward_passes_ = 0;
};

class TrieBeamSearch final : public BeamSearch {
 public:
  BeamSearchResult run(Model& model, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                       const BeamSearchOptions& options) override {
    check_beam_search_inputs(model, tokenizer, prompt, options);
    const auto start = std::chrono::steady_clock::now();
    SharedTrieBeams beams(model, prompt, options);
    BeamSearchResult result;
    result.hypotheses =
        search_beams(beams, static_cast<size_t>(model.config().vocab_size),
                     [&](TokenId token) { return tokenizer.is_end_of_generation(token); }, options);
    beams.finish();
    result.peak_kv_bytes = beams.peak_bytes();
    result.forward_passes = beams.forward_passes();
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  }
};

}  // namespace

std::unique_ptr<BeamSearch> make_trie_beam_search() { return std::make_unique<TrieBeamSearch>(); }

std::unique_ptr<BeamSearch> make_beam_search(std::string_view implementation) {
  if (implementation == "trie") return make_trie_beam_search();
  if (implementation == "batch") return make_batch_beam_search();
  throw Error(fmt::format("unknown beam search implementation '{}' (trie or batch)", implementation));
}

}  // namespace frugal
