// Continuous batching: many generations advance together, one forward pass
// per step, over one shared-prefix KV store (KvTrie).
//
// Each step feeds every running sequence's last sampled token plus a slice
// of the prompts still being read (at most `prompt_chunk` tokens a step, so
// a long prompt does not stall the others' answers), samples each sequence
// that produced logits, and streams its text. A finished sequence leaves at
// once and a waiting one takes its place at the next step. Prompts that
// begin alike share keys and values: a pinned prefix (a knowledge cache),
// a prompt still cached from an earlier request (a chat's previous turns, the
// same system prompt) or a sequence running beside it.
//
// Numerics: a token's logits do not depend on what else is in its batch up
// to floating-point rounding (matrix products are batched), so a seeded or
// greedy answer can differ in rare near-ties between a lone request and one
// under load, as in other batching servers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "frugal/generate.h"
#include "frugal/kv_trie.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal {

struct SchedulerOptions {
  size_t parallel = 4;         // sequences generating at once; later ones wait
  int64_t context = 4096;      // positions per sequence for prompt and answer (as a KvCache of this size)
  size_t prompt_chunk = 256;   // prompt tokens read per step, over all sequences
  size_t cache_bytes = 64u << 20;  // keys and values kept after their request ended, for reuse
  // Rows of the shared-prefix store in a KV type (answers as from a KvCache
  // of that type). A job whose options ask for context_shift is shifted in
  // the store when it reaches `context` positions.
  KvTypes store_precision = KvPrecision::F32;
  // Called on the scheduler thread around each forward pass (energy meters).
  std::function<void()> before_step{}, after_step{};
  // Called after after_step: the joules the step just run took, or a
  // negative number when energy is not measured. Each token fed in the step
  // carries an equal share to its answer (GenerationResult::energy_joules).
  std::function<double()> step_joules{};
};

struct GenerationJob {
  std::vector<TokenId> prompt{};
  GenerationOptions options{};  // max_tokens, sampling, stop strings, render_special
  // Called on the scheduler thread with each piece of text; false cancels.
  TextCallback on_text{};
  // Called on the scheduler thread with the result (nullptr when the job
  // failed) just before the future receives it.
  std::function<void(const GenerationResult*)> on_finish{};
  // Set by anyone to cancel, also while waiting or reading the prompt.
  std::shared_ptr<std::atomic<bool>> cancel{};
  // The scale of each of the model's LoRA adapters for this answer
  // (Model::loras() order); empty: the scales they were loaded with.
  // Answers with other scales share a batch but never keys and values.
  std::vector<float> lora_scales{};
};

struct SchedulerStats {
  size_t waiting = 0;
  size_t running = 0;
  uint64_t steps = 0;
  uint64_t batched_tokens = 0;  // tokens fed through the model, all steps
  KvTrieStats store;
};

class GenerationScheduler {
 public:
  GenerationScheduler(Model& model, const Tokenizer& tokenizer, SchedulerOptions options);
  ~GenerationScheduler();  // cancels what is left and waits for the thread
  GenerationScheduler(const GenerationScheduler&) = delete;
  GenerationScheduler& operator=(const GenerationScheduler&) = delete;

  // Keeps `tokens` with their keys and values (rows 0..n-1 of `rows`, F32 or
  // F16) in the store for good: prompts that begin with them skip reading
  // them. Returns how many were already there.
  size_t pin_prefix(std::span<const TokenId> tokens, const KvCache& rows);
  // Lets go of one pin of `tokens` (pinned before): its keys and values
  // become cache like an ended request's, trimmed when over cache_bytes.
  // Throws Error when they are not in the store.
  void unpin_prefix(std::span<const TokenId> tokens);

  // Thread-safe. Throws Error for an empty prompt or one that leaves no room
  // in the context; otherwise the job's result or error arrives through the
  // future (StopReason::Cancelled when cancelled or stopped).
  std::future<GenerationResult> submit(GenerationJob job);

  // Runs `task` on the scheduler thread between two steps, with the model to
  // itself (running answers pause meanwhile): work that is not a sampled
  // answer, such as one forward pass of a beam search. At most one task runs
  // between two steps, so queued tasks never stall the answers for long.
  // Thread-safe; the future carries the task's exception, or Error when the
  // scheduler stops first.
  std::future<void> run_exclusive(std::function<void()> task);

  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }
  const KvLayout& store_layout() const { return store_.layout(); }

  // Cancels running and waiting jobs (their results say Cancelled); later
  // submissions are refused.
  void stop();

 private:
  struct Sequence;
  class TrieProbe;
  std::unique_ptr<ProbeBranch> open_probe(Sequence& sequence);
  void loop();
  void admit(std::vector<std::unique_ptr<Sequence>>& incoming);
  void step();
  void accept_token(Sequence& sequence, std::span<const float> logits);
  void finish(Sequence& sequence, StopReason reason);
  void fail(Sequence& sequence, std::exception_ptr error);
  void release(Sequence& sequence);
  void deliver(Sequence& sequence);
  void shift_context(Sequence& sequence);
  void advance(Sequence& sequence, KvNode next);
  void share_energy(std::span<Sequence* const> fed_by, double joules);
  void trim_cache();
  void update_store_stats();  // under store_mutex_ (or on the scheduler thread)

  Model& model_;
  const Tokenizer& tokenizer_;
  SchedulerOptions options_;
  KvTrie store_;  // touched on the scheduler thread, or under store_mutex_ by pin_prefix/unpin_prefix
  std::mutex store_mutex_;
  std::vector<std::unique_ptr<Sequence>> running_;

  mutable std::mutex mutex_;  // guards the fields below
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::pair<std::function<void()>, std::promise<void>>> exclusive_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::map<std::vector<float>, uint32_t> lora_tags_;  // LoRA scales -> trie tag (1, 2, ...)

  std::thread thread_;
};

}  // namespace frugal
