// Transformer models loaded from GGUF files: architectures `llama` (Llama
// 1/2/3, TinyLlama, SmolLM2), `qwen2` (Q/K/V biases) and `qwen3` (per-head
// Q/K RMSNorm). Weights stay in their stored format in the memory-mapped
// file; compute is F32.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/kv_precision.h"
#include "frugal/lora.h"
#include "frugal/kv_trie.h"
#include "frugal/tensor_type.h"

namespace frugal {

enum class RopeStyle { Normal, Neox };  // adjacent pairs (llama) or split halves (qwen)
enum class RopeScaling { None, Linear, Yarn, Llama3 };

struct ModelConfig {
  std::string architecture;
  std::string name;
  int64_t vocab_size = 0;
  int64_t embedding_size = 0;
  int64_t layer_count = 0;
  int64_t head_count = 0;
  int64_t kv_head_count = 0;
  int64_t head_size = 0;        // per-head key/value width
  int64_t feed_forward_size = 0;
  int64_t training_context = 0;
  float rms_epsilon = 1e-5f;
  RopeStyle rope_style = RopeStyle::Normal;
  int64_t rope_dimensions = 0;  // leading dims of each head that are rotated
  float rope_freq_base = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::None;
  float rope_scaling_factor = 1.0f;
  int64_t rope_original_context = 0;
  // YaRN (llama.cpp defaults)
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  // Llama 3 frequency smoothing
  float llama3_low_freq_factor = 1.0f;
  float llama3_high_freq_factor = 4.0f;
  bool tied_embeddings = false;
  bool qkv_bias = false;       // qwen2
  bool qk_norm = false;        // qwen3

  // Reads and checks the configuration; throws UnsupportedError for other
  // architectures and FormatError for inconsistent dimensions.
  static ModelConfig from_gguf(const GgufFile& file);
};

// Llama 3.1 frequency factors (one per rotated pair), computed as llama.cpp's
// converter computes the `rope_freqs.weight` tensor; used when a file asks
// for Llama 3 scaling without carrying that tensor.
std::vector<float> llama3_rope_frequency_factors(int64_t rope_dimensions, float rope_base, float factor,
                                                 float low_freq_factor, float high_freq_factor,
                                                 int64_t original_context);


// Keys and values of one sequence for every layer, filled left to right.
class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t context_size, KvTypes types = KvPrecision::F32);
  // A cache can be large: copies must be explicit, not accidental.
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;
  // An explicit copy of the same capacity and types; only the filled
  // positions are copied (a beam taking over its parent's cache).
  KvCache clone() const;
  // The same in other types: filled positions converted through F32 as
  // store_kv_row quantizes (F16 -> F32 is exact), no forward pass.
  KvCache converted(KvTypes types) const;

  int64_t capacity() const { return capacity_; }
  int64_t size() const { return size_; }
  KvTypes types() const { return types_; }
  // Forgets everything from `position` on (for re-use of a shared prefix).
  void truncate(int64_t position);
  size_t bytes() const;  // reserved for the whole capacity (pages cost memory once written)
  // Bytes that hold the filled positions: size() rows of keys and of values
  // in every layer.
  size_t filled_bytes() const;

  // Row of keys (or values) for one layer and position: kv_head_count *
  // head_size elements in the keys' (values') type. Rows of one layer are
  // consecutive in memory.
  void* key_row(int64_t layer, int64_t position);
  void* value_row(int64_t layer, int64_t position);
  const void* key_row(int64_t layer, int64_t position) const;
  const void* value_row(int64_t layer, int64_t position) const;
  size_t row_elements() const { return static_cast<size_t>(row_elements_); }
  size_t key_row_bytes() const { return key_row_bytes_; }
  size_t value_row_bytes() const { return value_row_bytes_; }
  int64_t layer_count() const { return static_cast<int64_t>(keys_.size()); }

  // Makes the first `tokens` positions the keys and values stored in an open
  // file, without reading them: per layer, `tokens` key rows at
  // key_offsets[layer] and value rows at value_offsets[layer] (in the types of
  // this cache). The file's pages are mapped copy-on-write over the cache's
  // memory, so they are read on first use, shared with the page cache and
  // with every other cache mapping the same file, and a later write (a
  // question appended after a truncate) copies only the page it touches.
  // Offsets that are not multiples of the page size are read with a copy
  // instead. Returns whether the pages were mapped (false: copied). size()
  // becomes `tokens`. Throws Error when the rows do not fit the capacity or
  // the file cannot be read.
  bool map_prefix(int fd, int64_t tokens, std::span<const uint64_t> key_offsets,
                  std::span<const uint64_t> value_offsets);

 private:
  friend class Model;
  // A page-aligned anonymous mapping: zero pages cost no memory until
  // written, so a large capacity is free until used.
  class Region {
   public:
    Region() = default;
    explicit Region(size_t bytes);
    Region(Region&& other) noexcept;
    Region& operator=(Region&& other) noexcept;
    ~Region();
    uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

   private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
  };
  KvCache() = default;  // for clone()
  int64_t capacity_ = 0;
  int64_t size_ = 0;
  int64_t row_elements_ = 0;
  size_t key_row_bytes_ = 0, value_row_bytes_ = 0;
  size_t head_size_ = 0;  // rows are whole blocks per head (check_kv_precision)
  KvTypes types_;
  std::vector<Region> keys_, values_;  // [layer] of capacity rows
};

// Puts `tokens` into the trie from the root with the keys and values of
// rows 0..n-1 of `cache` (converted when the trie's precision differs); tokens already
// there keep their rows. Returns the last node (not retained) and how many
// tokens were already there. Throws Error when the row shapes differ or the
// cache holds fewer rows than tokens.
struct InsertedPrefix {
  KvNode node = KvTrie::kRoot;
  size_t shared = 0;
};
InsertedPrefix insert_prefix(KvTrie& trie, std::span<const TokenId> tokens, const KvCache& cache);

// One token of a batch over a KvTrie: the token of `node` (already created
// with KvTrie::extend), at position depth(node) - 1. Its keys and values go
// into the node's slot; it attends to the slots on its path.
struct TrieBatchEntry {
  KvNode node = KvTrie::kRoot;
  bool want_logits = false;
  // false: the node's slot already holds its keys and values (computed for
  // another sequence on the same path); they are used as they are, not
  // rewritten. For a token whose logits are needed again.
  bool store_kv = true;
  // The LoRA adapters' scales for this entry's sequence, one per adapter in
  // Model::loras() order; nullptr: the scales they were loaded with.
  const float* lora_scales = nullptr;
};

// Whether quantized weights are repacked at load into a layout made for the
// CPU's SIMD width (Q8_0 and Q4_0 on AVX-512 CPUs today). Auto times both
// layouts' decode kernels for a few milliseconds per format and repacks
// where it is faster on this CPU; the results match the stored layout's
// to float rounding.
enum class WeightRepacking { Auto, On, Off };

struct ModelOptions {
  size_t threads = 0;        // 0: the CPUs this process may use (available_cpus())
  bool pin_threads = false;  // bind compute threads to CPUs
  WeightRepacking repacking = WeightRepacking::Auto;
  // LoRA adapters applied unmerged, in order (include/frugal/lora.h).
  std::vector<LoraSpec> loras{};
};

// What loading repacked (Model::repacking()).
struct RepackingReport {
  size_t matrices = 0;  // matrices repacked
  size_t bytes = 0;     // their size (the same as stored: the mapped pages are given back)
  double seconds = 0;   // time spent deciding and repacking
  std::string formats;  // e.g. "Q8_0"; empty when nothing was repacked
};

// The CPUs this process may run on: its affinity mask (taskset, cpusets)
// and a cgroup CPU quota (containers), rounded up. Compute threads beyond it
// only wait for each other.
size_t available_cpus();

class Model {
 public:
  static std::unique_ptr<Model> load(const std::filesystem::path& path, const ModelOptions& options = {});
  ~Model();

  const ModelConfig& config() const;
  const GgufFile& file() const;
  size_t thread_count() const;
  const RepackingReport& repacking() const;
  // The adapters applied (ModelOptions::loras).
  const std::vector<LoraInfo>& loras() const;

  // Runs `tokens` through the model at positions cache.size() onwards,
  // appending their keys and values to `cache` (batched: all tokens in one
  // pass). Returns logits: for every token when `all_logits`, otherwise for
  // the last one only; row-major [n x vocab].
  std::vector<float> forward(std::span<const TokenId> tokens, KvCache& cache, bool all_logits = false);

  // Many sequences in one pass over a shared-prefix store: each entry is one
  // token of some sequence (beams, questions over one prefix, a prompt's
  // tokens). Every node's ancestors must already hold their keys and values
  // or be entries of this batch. Returns the logits of the entries that
  // want them, in entry order, row-major [count x vocab]. The trie must have
  // the layout of kv_layout(some type). `token_invariant`: each entry's
  // logits are bit for bit those of a one-token pass over the same context
  // (matrix products token by token; a little slower), which keeps a batched
  // beam search identical to one run beam by beam.
  std::vector<float> forward(std::span<const TrieBatchEntry> entries, KvTrie& trie, bool token_invariant = false);
  // An embedding of `tokens`: the final hidden states (after the output
  // norm) averaged over the tokens and scaled to length 1. Uses a cache of
  // its own; the model's pool runs it (not at the same time as another pass).
  std::vector<float> embed(std::span<const TokenId> tokens);
  // Context shift (StreamingLLM): forgets cached positions [keep, keep +
  // discard) and moves the later ones down by `discard`, turning their keys
  // back by `discard` positions of the rotary embedding, so generation goes
  // on in bounded memory; the first `keep` positions (attention sinks)
  // stay. Quantized rows are read and stored again (one more rounding).
  // Throws Error unless 0 <= keep and 0 < discard <= size - keep.
  void shift_context(KvCache& cache, int64_t keep, int64_t discard);
  // One stored key row (every KV head) moved by `delta` positions of the
  // rotary embedding, in place: what shift_context does to each kept key
  // (and the store's context shift, GenerationScheduler).
  void turn_key_row(void* row, KvPrecision precision, int64_t delta) const;
  // The rows of a store for this model in a KV type (the same answers as a
  // KvCache of that type). Throws Error when the heads are not whole blocks
  // of a block type.
  KvLayout kv_layout(KvTypes types = KvPrecision::F32) const;

 private:
  Model();
  struct Impl;
  friend struct ModelInternals;  // src/model/model_internals.h: the trainer reads the frozen weights
  std::unique_ptr<Impl> impl_;
};

}  // namespace frugal
