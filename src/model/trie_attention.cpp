// Forward passes over the shared-prefix KV trie: each token's keys and values
// go into its node's slot, and each token attends to the slots on its own
// path, so beams and questions that share a prefix share its rows.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "frugal/error.h"
#include "model/attention.h"
#include "model/model_impl.h"
#include "tensor/kernel_set.h"

namespace frugal {

namespace {

// A run of path positions whose slots are consecutive in one page: their
// rows of a layer are evenly spaced in memory, so one strided kernel call
// covers them.
struct SlotRun {
  size_t first_position;
  KvSlot first_slot;
  size_t length;
};

std::vector<SlotRun> slot_runs(const std::vector<KvSlot>& slots, size_t slots_per_page) {
  std::vector<SlotRun> runs;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!runs.empty()) {
      SlotRun& last = runs.back();
      const KvSlot next = last.first_slot + static_cast<KvSlot>(last.length);
      if (slots[i] == next && static_cast<size_t>(next) % slots_per_page != 0) {
        ++last.length;
        continue;
      }
    }
    runs.push_back({i, slots[i], 1});
  }
  return runs;
}

// Consecutive entries where each node is the child of the one before (the
// tokens of one prompt chunk) form a chain: they all attend to the path of
// the chain's last node, each to its own first positions. Blocks of up to
// kQueryBlock queries of a chain share every key load, as in the contiguous
// cache's attention; a lone entry (a beam, one decoding sequence) is a chain
// of one.
constexpr size_t kQueryBlock = 32;

struct Chain {
  size_t first_entry;
  size_t length;
  size_t first_visible;          // positions the first entry sees (its depth)
  std::vector<SlotRun> runs;     // the last entry's path
};

struct QueryBlock {
  size_t chain;
  size_t t0, t1;  // entries [t0, t1)
};

class TrieBackend final : public KvBackend {
 public:
  TrieBackend(KvTrie& trie, std::span<const TrieBatchEntry> entries, size_t head_count, size_t kv_head_count,
              size_t head_size, ThreadPool& pool)
      : trie_(trie), entries_(entries), head_count_(head_count), kv_head_count_(kv_head_count),
        head_size_(head_size), scale_(1.0f / std::sqrt(static_cast<float>(head_size))), pool_(pool),
        shape_{head_count, kv_head_count, head_size, scale_},
        types_(trie.layout().types) {
    for (size_t t = 0; t < entries.size(); ++t) {
      const bool continues = t > 0 && trie.parent(entries[t].node) == entries[t - 1].node;
      if (continues) {
        ++chains_.back().length;
      } else {
        chains_.push_back({t, 1, trie.depth(entries[t].node), {}});
      }
    }
    for (size_t c = 0; c < chains_.size(); ++c) {
      Chain& chain = chains_[c];
      chain.runs = slot_runs(trie.path_slots(entries[chain.first_entry + chain.length - 1].node), trie.slots_per_page());
      if (chain.length == 1) {  // attends as one-token decoding does (attention.h)
        lone_.push_back(c);
        continue;
      }
      for (size_t t0 = chain.first_entry; t0 < chain.first_entry + chain.length; t0 += kQueryBlock) {
        blocks_.push_back({c, t0, std::min(chain.first_entry + chain.length, t0 + kQueryBlock)});
      }
    }
    // The lone entries' work items and partial results, laid end to end
    // (the same for every layer).
    lone_runs_.resize(lone_.size());
    lone_item_start_.assign(lone_.size() + 1, 0);
    lone_partial_start_.assign(lone_.size() + 1, 0);
    for (size_t i = 0; i < lone_.size(); ++i) {
      const size_t visible = chains_[lone_[i]].first_visible;
      lone_item_start_[i + 1] = lone_item_start_[i] + decode_items(visible, shape_);
      lone_partial_start_[i + 1] = lone_partial_start_[i] + decode_partial_floats(visible, shape_);
    }
    lone_partials_.resize(lone_partial_start_.back());
  }

  int64_t position(size_t t) const override { return static_cast<int64_t>(trie_.depth(entries_[t].node)) - 1; }

  void store(int64_t layer, size_t t, const float* key, const float* value) override {
    if (!entries_[t].store_kv) return;  // the slot already holds this token's keys and values
    const KvSlot slot = trie_.slot(entries_[t].node);
    const auto n = static_cast<size_t>(trie_.layout().row_elements);
    store_kv_row(key, trie_.key_row(layer, slot), n, types_.keys);
    store_kv_row(value, trie_.value_row(layer, slot), n, types_.values);
  }

  void attend(int64_t layer, const float* q, size_t tokens, float* out) override {
    const size_t floats = tokens * head_count_ * head_size_;
    q = turned_queries(q, floats, types_);
    attend_turned(layer, q, out);
    turn_outputs_back(out, floats, types_);
  }

 private:
  void attend_turned(int64_t layer, const float* q, float* out) {
    const KernelSet& kernels = active_kernels();
    const size_t q_width = head_count_ * head_size_;
    const size_t group = head_count_ / kv_head_count_;
    const size_t key_row_bytes = trie_.layout().key_row_bytes(), value_row_bytes = trie_.layout().value_row_bytes();
    // Lone entries: their paths as runs of rows of this layer.
    for (size_t i = 0; i < lone_.size(); ++i) {
      lone_runs_[i].clear();
      for (const SlotRun& run : chains_[lone_[i]].runs) {
        lone_runs_[i].push_back({run.first_position, run.length, trie_.key_row(layer, run.first_slot),
                                 trie_.value_row(layer, run.first_slot)});
      }
    }
    const size_t lone_items = lone_item_start_.back();
    pool_.parallel_for(lone_items + blocks_.size() * head_count_, [&](size_t begin, size_t end) {
      thread_local std::vector<float> scores;
      for (size_t item = begin; item < end; ++item) {
        if (item < lone_items) {
          const size_t i = static_cast<size_t>(
              std::upper_bound(lone_item_start_.begin(), lone_item_start_.end(), item) - lone_item_start_.begin() - 1);
          const Chain& chain = chains_[lone_[i]];
          const KvRows rows{lone_runs_[i], key_row_bytes, value_row_bytes, types_};
          decode_item(q + chain.first_entry * q_width, rows, chain.first_visible, shape_, item - lone_item_start_[i],
                      lone_partials_.data() + lone_partial_start_[i]);
          continue;
        }
        const size_t block_item = item - lone_items;
        const QueryBlock& block = blocks_[block_item / head_count_];
        const size_t head = block_item % head_count_;
        const Chain& chain = chains_[block.chain];
        const size_t key_offset = kv_head_offset(types_.keys, head / group, head_size_);
        const size_t value_offset = kv_head_offset(types_.values, head / group, head_size_);
        const size_t first_visible = chain.first_visible + (block.t0 - chain.first_entry);
        const size_t visible_max = first_visible + (block.t1 - block.t0) - 1;  // what the block's last query sees
        const size_t queries = block.t1 - block.t0;
        scores.resize(queries * visible_max);
        const float* query = q + block.t0 * q_width + head * head_size_;
        for (const SlotRun& run : chain.runs) {
          if (run.first_position >= visible_max) break;
          const size_t length = std::min(run.length, visible_max - run.first_position);
          score_key_block(trie_.key_row(layer, run.first_slot) + key_offset, key_row_bytes, types_.keys, length, query,
                          q_width, queries, head_size_, &scores[run.first_position], visible_max);
        }
        for (size_t t = block.t0; t < block.t1; ++t) {
          float* row = &scores[(t - block.t0) * visible_max];
          const size_t visible = first_visible + (t - block.t0);  // causal: its own path only
          for (size_t j = 0; j < visible; ++j) row[j] *= scale_;
          kernels.softmax(row, visible);
          float* o = out + t * q_width + head * head_size_;
          std::fill(o, o + head_size_, 0.0f);
        }
        // The same sums, in the same order, as over one contiguous cache.
        for (const SlotRun& run : chain.runs) {
          if (run.first_position >= visible_max) break;
          add_weighted_values_causal(&scores[run.first_position], visible_max, queries,
                                     static_cast<ptrdiff_t>(first_visible) - static_cast<ptrdiff_t>(run.first_position),
                                     run.length, trie_.value_row(layer, run.first_slot) + value_offset,
                                     value_row_bytes, types_.values, out + block.t0 * q_width + head * head_size_,
                                     q_width, head_size_);
        }
      }
    });
    for (size_t i = 0; i < lone_.size(); ++i) {
      const Chain& chain = chains_[lone_[i]];
      decode_merge(lone_partials_.data() + lone_partial_start_[i], chain.first_visible, shape_,
                   out + chain.first_entry * q_width);
    }
  }

  KvTrie& trie_;
  std::span<const TrieBatchEntry> entries_;
  size_t head_count_, kv_head_count_, head_size_;
  float scale_;
  ThreadPool& pool_;
  AttentionShape shape_;
  KvTypes types_;
  std::vector<Chain> chains_;
  std::vector<QueryBlock> blocks_;  // of chains of several entries
  std::vector<size_t> lone_;        // chains of one entry
  std::vector<std::vector<KvRun>> lone_runs_;  // of the layer being attended
  std::vector<size_t> lone_item_start_, lone_partial_start_;
  std::vector<float> lone_partials_;
};

}  // namespace

KvLayout Model::kv_layout(KvTypes types) const {
  const ModelConfig& c = impl_->config;
  check_kv_types(types, static_cast<size_t>(c.head_size));
  return {c.layer_count, c.kv_head_count * c.head_size, types};
}

std::vector<float> Model::forward(std::span<const TrieBatchEntry> entries, KvTrie& trie, bool token_invariant) {
  return impl_->forward(entries, trie, token_invariant);
}

std::vector<float> Model::Impl::forward(std::span<const TrieBatchEntry> entries, KvTrie& trie, bool token_invariant) {
  if (entries.empty()) throw Error("forward pass needs at least one token");
  const KvLayout& have = trie.layout();
  if (have.layers != config.layer_count || have.row_elements != config.kv_head_count * config.head_size ||
      !kv_precision_fits(have.types.keys, static_cast<size_t>(config.head_size)) ||
      !kv_precision_fits(have.types.values, static_cast<size_t>(config.head_size))) {
    throw Error(fmt::format("KV trie layout ({} layers, rows of {} {} values) does not fit this model ({} layers, "
                            "rows of {} values, heads of {})", have.layers, have.row_elements,
                            kv_types_name(have.types), config.layer_count,
                            config.kv_head_count * config.head_size, config.head_size));
  }
  std::vector<TokenId> tokens;
  std::vector<size_t> logit_rows;
  std::vector<const float*> row_lora;  // per row; empty when every row has the loaded scales
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].node == KvTrie::kRoot) throw Error("the trie's root holds no token");
    tokens.push_back(trie_token(trie.token(entries[i].node)));  // without its LoRA tag
    if (entries[i].want_logits) logit_rows.push_back(i);
    if (entries[i].lora_scales && row_lora.empty()) row_lora.assign(entries.size(), nullptr);
    if (!row_lora.empty()) row_lora[i] = entries[i].lora_scales;
  }
  TrieBackend backend(trie, entries, static_cast<size_t>(config.head_count), static_cast<size_t>(config.kv_head_count),
                      static_cast<size_t>(config.head_size), *pool);
  return run(tokens, backend, logit_rows, token_invariant, false, row_lora);
}

}  // namespace frugal
