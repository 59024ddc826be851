#include "frugal/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "decode/answer_in_progress.h"
#include "frugal/error.h"

namespace frugal {

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
}  // namespace

// One job from admission to its end. Only the scheduler thread touches it
// once it runs.
struct GenerationScheduler::Sequence {
  Sequence(GenerationJob j, GenerationScheduler& scheduler, int64_t context)
      : job(with_thinking_suffix(std::move(j))),
        answer(scheduler.tokenizer_, job.prompt, room(job, context), job.options,
               [this, &scheduler] { return scheduler.open_probe(*this); }) {}

  static GenerationJob with_thinking_suffix(GenerationJob job) {
    job.prompt = prompt_with_thinking(job.prompt, job.options);
    return job;
  }

  // With context shift the answer never runs out of room; the prompt must
  // still fit.
  static int64_t room(const GenerationJob& job, int64_t context) {
    if (!job.options.context_shift) return context;
    check_context_shift_keep(job.options, context);
    if (job.options.thinking.exit.enabled()) {
      throw Error("early exit from thinking cannot be combined with context shift");
    }
    if (static_cast<int64_t>(job.prompt.size()) >= context) {
      throw Error(fmt::format("the prompt ({} tokens) leaves no room for an answer in a context of {} tokens; "
                              "use a larger -c or a shorter prompt", job.prompt.size(), context));
    }
    return std::numeric_limits<int64_t>::max() / 2;
  }

  GenerationJob job;
  AnswerInProgress answer;
  std::promise<GenerationResult> promise;
  KvNode tip = KvTrie::kRoot;    // the last token in the store; this sequence holds a handle on it
  size_t read = 0;               // prompt tokens in the store so far
  TokenId pending = -1;          // sampled, to be fed at the next step (-1: still reading the prompt)
  bool finished = false;         // result or error set, handle released; delivered after the step
  std::exception_ptr error;      // why it failed, if it did
  Clock::time_point submitted, first_step;
  bool started = false;
  // Its branch holds shifted rows (they remember forgotten tokens): not
  // kept as cache for prompts that merely begin the same way.
  bool shifted = false;

  // LoRA scales other than the loaded ones: the tag of this sequence's
  // nodes in the store, and the prompt as the store's keys.
  uint32_t tag = 0;
  std::vector<TokenId> prompt_keys;
  const float* lora_scales() const { return job.lora_scales.empty() ? nullptr : job.lora_scales.data(); }
  TokenId key(TokenId token) const { return trie_key(token, tag); }

  bool reading_prompt() const { return pending < 0; }
  bool cancelled() const { return job.cancel && job.cancel->load(); }
};

GenerationScheduler::GenerationScheduler(Model& model, const Tokenizer& tokenizer, SchedulerOptions options)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)),
      store_(model.kv_layout(options_.store_precision)) {
  check_tokenizer_matches(model, tokenizer);
  if (options_.parallel == 0) throw Error("the scheduler needs at least one parallel sequence (--parallel >= 1)");
  if (options_.context < 2) throw Error(fmt::format("a context of {} tokens holds no answer", options_.context));
  options_.prompt_chunk = std::max<size_t>(options_.prompt_chunk, 1);
  thread_ = std::thread([this] { loop(); });
}

GenerationScheduler::~GenerationScheduler() {
  stop();
  if (thread_.joinable()) thread_.join();
}

size_t GenerationScheduler::pin_prefix(std::span<const TokenId> tokens, const KvCache& rows) {
  std::lock_guard lock(store_mutex_);
  const InsertedPrefix inserted = insert_prefix(store_, tokens, rows);
  if (inserted.node != KvTrie::kRoot) store_.retain(inserted.node);  // until unpin_prefix
  update_store_stats();
  return inserted.shared;
}

void GenerationScheduler::unpin_prefix(std::span<const TokenId> tokens) {
  std::lock_guard lock(store_mutex_);
  const auto [node, length] = store_.match_prefix(tokens);
  if (tokens.empty() || length != tokens.size()) {
    throw Error(fmt::format("unpin_prefix: {} of the {} tokens are in the store; it was not pinned", length,
                            tokens.size()));
  }
  store_.release(node, true);
  trim_cache();
  update_store_stats();
}

void GenerationScheduler::update_store_stats() {
  const KvTrieStats store = store_.stats();
  std::lock_guard lock(mutex_);
  stats_.store = store;
}

std::future<GenerationResult> GenerationScheduler::submit(GenerationJob job) {
  if (!job.lora_scales.empty() && job.lora_scales.size() != model_.loras().size()) {
    throw Error(fmt::format("{} LoRA scales for {} adapters", job.lora_scales.size(), model_.loras().size()));
  }
  auto sequence = std::make_unique<Sequence>(std::move(job), *this, options_.context);  // checks the prompt
  sequence->submitted = Clock::now();
  auto future = sequence->promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw Error("the scheduler is stopping: no new generations");
    if (!sequence->job.lora_scales.empty()) {
      auto [tag, added] = lora_tags_.emplace(sequence->job.lora_scales, static_cast<uint32_t>(lora_tags_.size() + 1));
      if (tag->second > kMaxTrieTag) {
        lora_tags_.erase(tag);
        throw Error(fmt::format("more than {} different sets of LoRA scales were asked of this server; use fewer",
                                kMaxTrieTag));
      }
      sequence->tag = tag->second;
    }
    for (const TokenId token : sequence->job.prompt) sequence->prompt_keys.push_back(sequence->key(token));
    waiting_.push_back(std::move(sequence));
    stats_.waiting = waiting_.size();
  }
  wake_.notify_one();
  return future;
}

std::future<void> GenerationScheduler::run_exclusive(std::function<void()> task) {
  std::promise<void> promise;
  auto future = promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw Error("the scheduler is stopping: no new work");
    exclusive_.emplace_back(std::move(task), std::move(promise));
  }
  wake_.notify_one();
  return future;
}

SchedulerStats GenerationScheduler::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void GenerationScheduler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
}

void GenerationScheduler::loop() {
  for (;;) {
    std::vector<std::unique_ptr<Sequence>> incoming;
    std::vector<std::pair<std::function<void()>, std::promise<void>>> tasks;
    bool stop_now = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running_.empty() || !exclusive_.empty(); });
      stop_now = stopping_;
      // One exclusive task between two steps at most, so a queue of them
      // (a beam search's passes) never stalls the running answers for long.
      if (stop_now) {
        tasks.swap(exclusive_);
      } else if (!exclusive_.empty()) {
        tasks.push_back(std::move(exclusive_.front()));
        exclusive_.erase(exclusive_.begin());
      }
      if (stop_now) {
        incoming = std::move(waiting_);
        waiting_.clear();
      } else {
        const size_t free = options_.parallel - std::min(options_.parallel, running_.size());
        const size_t take = std::min(free, waiting_.size());
        for (size_t i = 0; i < take; ++i) incoming.push_back(std::move(waiting_[i]));
        // Jobs cancelled while waiting leave now, not when a slot frees up
        // (their clients are gone; admit() ends them).
        for (size_t i = take; i < waiting_.size(); ++i) {
          if (waiting_[i]->cancelled()) incoming.push_back(std::move(waiting_[i]));
        }
        waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<long>(take));
        std::erase(waiting_, nullptr);
      }
      stats_.waiting = waiting_.size();
    }
    for (auto& [task, promise] : tasks) {
      if (stop_now) {
        promise.set_exception(std::make_exception_ptr(Error("the scheduler stopped before this work ran")));
        continue;
      }
      try {
        task();
        promise.set_value();
      } catch (...) {
        promise.set_exception(std::current_exception());
      }
    }
    std::lock_guard store_lock(store_mutex_);
    if (stop_now) {
      for (auto& s : incoming) finish(*s, StopReason::Cancelled);
      for (auto& s : running_) finish(*s, StopReason::Cancelled);
      running_.insert(running_.end(), std::make_move_iterator(incoming.begin()), std::make_move_iterator(incoming.end()));
    } else {
      admit(incoming);
      if (!running_.empty()) step();  // a step that fails fails its sequences
    }
    // Ended jobs leave, their keys and values are trimmed and the stats
    // updated before their futures are ready: whoever sees a result sees a
    // store without it.
    std::vector<std::unique_ptr<Sequence>> ended;
    for (auto& s : running_) {
      if (s->finished) ended.push_back(std::move(s));
    }
    std::erase(running_, nullptr);
    trim_cache();
    update_store_stats();
    {
      std::lock_guard lock(mutex_);
      stats_.running = running_.size();
    }
    for (auto& s : ended) deliver(*s);
    if (stop_now) return;
  }
}

void GenerationScheduler::deliver(Sequence& s) {
  if (s.job.on_finish) s.job.on_finish(s.error ? nullptr : &s.answer.result());
  if (s.error) {
    s.promise.set_exception(s.error);
  } else {
    s.promise.set_value(std::move(s.answer.result()));
  }
}

// A new sequence starts after the longest prefix of its prompt already in
// the store; if that is the whole prompt, its last token is read again for
// its logits (without rewriting its keys and values).
void GenerationScheduler::admit(std::vector<std::unique_ptr<Sequence>>& incoming) {
  for (auto& s : incoming) {
    if (s->cancelled() || s->answer.finished()) {
      if (s->answer.finished()) {
        release(*s);  // no tokens asked for: over before it began
      } else {
        finish(*s, StopReason::Cancelled);  // cancelled while waiting
      }
      running_.push_back(std::move(s));  // collected as ended after this step
      continue;
    }
    auto [node, length] = store_.match_prefix(s->prompt_keys);
    if (length == s->prompt_keys.size()) {
      node = store_.parent(node);
      --length;
    }
    s->tip = node;
    if (node != KvTrie::kRoot) store_.retain(node);
    s->read = length;
    s->answer.result().cached_tokens = length;
    running_.push_back(std::move(s));
  }
}

// Hands the sequence's handle on to `next`, a child of its tip: O(1), so
// reading a prompt of L tokens costs O(L), not O(L^2).
void GenerationScheduler::advance(Sequence& sequence, KvNode next) {
  if (sequence.tip == KvTrie::kRoot) {
    store_.retain(next);
  } else {
    store_.move_handle_to_child(sequence.tip, next);
  }
  sequence.tip = next;
}

void GenerationScheduler::step() {
  std::vector<TrieBatchEntry> entries;
  std::vector<Sequence*> owners;  // the sequence of each logits row, in order
  std::vector<Sequence*> fed_by;  // the sequence of each entry (for energy shares)
  std::vector<KvNode> created;    // nodes made this step: their rows are written by the forward pass
  std::vector<float> logits;
  try {
    // Answers first: one token each. Then prompts, in arrival order, up to
    // the chunk.
    for (auto& s : running_) {
      if (s->finished || s->reading_prompt() || s->cancelled()) continue;
      if (s->job.options.context_shift && static_cast<int64_t>(store_.depth(s->tip)) >= options_.context) {
        shift_context(*s);
      }
      bool is_new = false;
      const KvNode next = store_.extend(s->tip, s->key(s->pending), &is_new);
      if (is_new) created.push_back(next);
      advance(*s, next);
      entries.push_back({next, true, is_new, s->lora_scales()});
      owners.push_back(s.get());
      fed_by.push_back(s.get());
    }
    size_t chunk = options_.prompt_chunk;
    for (auto& s : running_) {
      if (s->finished || !s->reading_prompt() || s->cancelled() || chunk == 0) continue;
      if (!s->started) {
        s->started = true;
        s->first_step = Clock::now();
      }
      const auto& prompt = s->prompt_keys;
      const size_t count = std::min(chunk, prompt.size() - s->read);
      for (size_t i = 0; i < count; ++i) {
        bool is_new = false;
        const KvNode next = store_.extend(s->tip, prompt[s->read + i], &is_new);
        if (is_new) created.push_back(next);
        advance(*s, next);
        const bool last = s->read + i + 1 == prompt.size();
        // A node that already exists holds its rows (or gets them from another
        // entry of this batch: every entry's keys and values of a layer are
        // stored before any attends); only a last token is run for its logits.
        if (is_new || last) {
          entries.push_back({next, last, is_new, s->lora_scales()});
          fed_by.push_back(s.get());
        }
        if (last) owners.push_back(s.get());
      }
      s->read += count;
      chunk -= count;
    }
    if (!entries.empty()) {
      if (options_.before_step) options_.before_step();
      logits = model_.forward(entries, store_);
      if (options_.after_step) options_.after_step();
      if (options_.step_joules) share_energy(fed_by, options_.step_joules());
    }
  } catch (...) {
    // These sequences cannot go on, and the nodes made this step hold no
    // keys or values: they must not stay as cache for a later prompt that
    // begins the same way. Newer nodes are children of older ones, so
    // freeing newest first frees leaves first.
    const auto error = std::current_exception();
    for (auto& s : running_) fail(*s, error);
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
      if (store_.references(*it) == 0) store_.discard(*it);
    }
    return;
  }
  if (!entries.empty()) {
    const size_t vocab = static_cast<size_t>(model_.config().vocab_size);
    for (size_t row = 0; row < owners.size(); ++row) {
      Sequence& s = *owners[row];
      if (s.finished) continue;
      try {
        accept_token(s, std::span<const float>(logits).subspan(row * vocab, vocab));
      } catch (...) {
        fail(s, std::current_exception());
      }
    }
    std::lock_guard lock(mutex_);
    ++stats_.steps;
    stats_.batched_tokens += entries.size();
  }
  for (auto& s : running_) {
    if (s->cancelled()) finish(*s, StopReason::Cancelled);
  }
}

// A full context keeps its first tokens, forgets the older half of the
// rest and goes on: the kept window is copied under the kept start as a new
// branch, its keys turned back by the forgotten length (positions in the
// store are depths), and the old branch stays as cache. Where the new
// branch meets nodes that exist already, their rows are used as they are.
void GenerationScheduler::shift_context(Sequence& s) {
  const size_t depth = store_.depth(s.tip);
  const size_t keep = std::min(static_cast<size_t>(std::max<int64_t>(s.job.options.context_shift_keep, 0)), depth);
  const size_t discard = (depth - keep) / 2;
  if (discard == 0) return;
  std::vector<KvNode> path(depth);  // root first
  for (KvNode n = s.tip; n != KvTrie::kRoot; n = store_.parent(n)) path[store_.depth(n) - 1] = n;
  KvNode tip = keep ? path[keep - 1] : KvTrie::kRoot;
  if (tip != KvTrie::kRoot) store_.retain(tip);
  // A failure half way (the store's budget) lets the new branch go.
  struct NewBranch {
    KvTrie& store;
    KvNode& tip;
    bool done = false;
    ~NewBranch() {
      if (!done && tip != KvTrie::kRoot) store.release(tip, false);
    }
  } branch{store_, tip};
  const KvLayout& layout = store_.layout();
  for (size_t p = keep + discard; p < depth; ++p) {
    bool created = false;
    const KvNode next = store_.extend(tip, store_.token(path[p]), &created);
    if (created) {
      const KvSlot from = store_.slot(path[p]), to = store_.slot(next);
      for (int64_t layer = 0; layer < layout.layers; ++layer) {
        std::memcpy(store_.key_row(layer, to), store_.key_row(layer, from), layout.key_row_bytes());
        model_.turn_key_row(store_.key_row(layer, to), layout.types.keys, -static_cast<int64_t>(discard));
        std::memcpy(store_.value_row(layer, to), store_.value_row(layer, from), layout.value_row_bytes());
      }
    }
    if (tip == KvTrie::kRoot) {
      store_.retain(next);
    } else {
      store_.move_handle_to_child(tip, next);
    }
    tip = next;
  }
  branch.done = true;
  store_.release(s.tip, !s.shifted);  // the old branch's rows are its own path's (unless shifted before)
  s.tip = tip;
  s.shifted = true;
  ++s.answer.result().context_shifts;
}

// An early-exit probe: a branch of the store from the sequence's tip, run
// at once, one sequence alone (the batch waits; a probe is a few tokens).
// Dropped, its nodes are freed; kept, the sequence moves onto it.
class GenerationScheduler::TrieProbe final : public ProbeBranch {
 public:
  TrieProbe(GenerationScheduler& scheduler, Sequence& sequence)
      : scheduler_(scheduler), sequence_(sequence), tip_(sequence.tip) {
    scheduler_.store_.retain(tip_);
  }
  ~TrieProbe() override {
    if (!kept_) scheduler_.store_.release(tip_, false);
  }
  std::vector<float> feed(std::span<const TokenId> tokens) override {
    KvTrie& store = scheduler_.store_;
    std::vector<TrieBatchEntry> entries;
    for (size_t i = 0; i < tokens.size(); ++i) {
      bool is_new = false;
      const KvNode next = store.extend(tip_, sequence_.key(tokens[i]), &is_new);
      store.move_handle_to_child(tip_, next);
      tip_ = next;
      const bool last = i + 1 == tokens.size();
      if (is_new || last) entries.push_back({next, last, is_new, sequence_.lora_scales()});
    }
    return scheduler_.model_.forward(entries, store);
  }
  void keep() override {
    kept_ = true;
    scheduler_.store_.release(sequence_.tip, true);
    sequence_.tip = tip_;
  }

 private:
  GenerationScheduler& scheduler_;
  Sequence& sequence_;
  KvNode tip_;
  bool kept_ = false;
};

std::unique_ptr<ProbeBranch> GenerationScheduler::open_probe(Sequence& sequence) {
  if (sequence.tip == KvTrie::kRoot) throw Error("internal: a probe before the prompt was read");
  return std::make_unique<TrieProbe>(*this, sequence);
}

// Every token fed in a step carries an equal share of the step's energy to
// its answer.
void GenerationScheduler::share_energy(std::span<Sequence* const> fed_by, double joules) {
  if (joules < 0 || fed_by.empty()) return;
  const double share = joules / static_cast<double>(fed_by.size());
  for (Sequence* s : fed_by) {
    double& energy = s->answer.result().energy_joules;
    energy = std::max(energy, 0.0) + share;
  }
}

// Samples the next token of `sequence` from its logits; finishes it when
// the answer is over.
void GenerationScheduler::accept_token(Sequence& s, std::span<const float> logits) {
  const std::optional<TokenId> next = s.answer.accept(logits, s.job.on_text);
  GenerationResult& result = s.answer.result();
  if (result.tokens.size() == 1) {
    result.first_token_seconds = std::chrono::duration<double>(s.answer.first_sampled() - s.submitted).count();
    result.prompt_seconds = std::chrono::duration<double>(s.answer.first_sampled() - s.first_step).count();
  }
  if (next) {
    s.pending = *next;
  } else {
    release(s);
  }
}

void GenerationScheduler::finish(Sequence& s, StopReason reason) {
  if (s.finished) return;
  s.answer.finish(reason, s.job.on_text);
  release(s);
}

// The answer has ended (or failed): its times are set and its branch of
// the store is let go (kept as cache, or trimmed).
void GenerationScheduler::release(Sequence& s) {
  GenerationResult& result = s.answer.result();
  if (s.started) result.generation_seconds = seconds_since(s.first_step) - result.prompt_seconds;
  if (s.tip != KvTrie::kRoot) store_.release(s.tip, !s.shifted);
  s.tip = KvTrie::kRoot;
  s.finished = true;
}

void GenerationScheduler::fail(Sequence& s, std::exception_ptr error) {
  if (s.finished) return;
  s.error = error;
  release(s);
}

// Keeps at most cache_bytes of keys and values nobody uses any more; once
// over, trims to 7/8 of it, so that the scan of the store that eviction
// needs happens once in many steps.
void GenerationScheduler::trim_cache() {
  const KvTrieStats stats = store_.stats();
  const size_t cached = stats.cached_nodes * store_.layout().slot_bytes();
  if (cached <= options_.cache_bytes) return;
  const size_t keep = options_.cache_bytes / 8 * 7;
  store_.evict_until(stats.live_bytes - (cached - keep));
}

}  // namespace frugal
