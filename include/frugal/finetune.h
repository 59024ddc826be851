// LoRA fine-tuning on the CPU (`frugal finetune`, docs/finetune.md): a
// frozen base model in any format, low-rank adapters on chosen projections,
// AdamW, the loss on the completion tokens only, and an optional KL term
// that keeps the tuned model's next-token distributions near the base
// model's on other prompts. Writes a GGUF adapter llama.cpp reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "frugal/chat.h"
#include "frugal/knowledge.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal {

// One training record as tokens: `targets` are the indices of the tokens
// the loss is taken on (each predicted from the one before it).
struct TrainingExample {
  std::vector<TokenId> tokens;
  std::vector<int32_t> targets;
  size_t line = 0;  // in its JSONL file, from 1
};

// How records become tokens. A JSONL file holds one record per line, of one
// of three kinds:
//   {"messages": [{"role", "content"}, ...]}  a chat in `chat_format`; the
//       loss is on each assistant message and the end of its turn
//   {"prompt": "...", "completion": "..."}    raw text; the loss is on the
//       completion and EOS
//   {"documents": [{"id", "title", "text"}] or ["text", ...],
//    "question": "...", "answer": "..."}       frugal's knowledge prompt
//       (`knowledge_prompt`), as `frugal ask` builds it; the loss is on the
//       answer and its end
struct TrainingLayout {
  PromptTemplate knowledge_prompt;
  std::string system;                     // empty: the template's default
  std::optional<ChatFormat> chat_format;  // nullopt: chat records are refused
};

// Reads every record; throws Error naming the file and line of a bad one.
std::vector<TrainingExample> read_training_examples(const std::filesystem::path& path, const Tokenizer& tokenizer,
                                                    const TrainingLayout& layout);

struct FinetuneOptions {
  std::string targets = "q,k,v,o,gate,up,down";  // parse_lora_targets()
  int64_t rank = 8;
  float alpha = 16.0f;
  int epochs = 3;
  int batch = 8;                  // examples per optimizer step (gradients accumulated)
  float learning_rate = 1e-3f;    // peak, after warm-up; cosine decay to 0
  int warmup_steps = -1;          // -1: 5% of the steps
  float weight_decay = 0.0f;      // AdamW's, decoupled
  float clip = 1.0f;              // gradient norm limit (0: none)
  uint64_t seed = 1;              // adapter init, split and order
  double validation_fraction = 0.1;  // of the examples, held out for the validation loss
  size_t max_tokens = 0;          // drop longer examples (0: the model's context)
  std::filesystem::path preserve;  // records whose next-token distributions are kept (empty: none)
  float preserve_weight = 1.0f;
  size_t preserve_top = 64;        // base probabilities kept per row (the rest as one outcome)
  std::filesystem::path output;    // the adapter, rewritten at each checkpoint
  int checkpoint_every = 0;        // steps between checkpoints (0: each epoch's end)
  const std::atomic<bool>* stop = nullptr;  // set (Ctrl-C): end after this step, checkpoint kept
};

struct FinetuneProgress {
  int epoch = 0, epochs = 0;
  size_t step = 0, steps = 0;
  double loss = 0;  // of the last step: completion cross entropy per token
  double tokens_per_second = 0;
  double seconds_left = 0;
};

struct EpochReport {
  int epoch = 0;  // 0: before training
  double train_loss = 0;       // mean over the epoch's steps (nan for epoch 0)
  double validation_loss = 0;  // cross entropy per answer token (nan without a validation split)
  double preserve_divergence = 0;  // mean KL(base || tuned) per row on held-out preserve records (nan: none)
};

struct FinetuneReport {
  size_t train_examples = 0, validation_examples = 0, dropped_examples = 0;
  size_t preserve_examples = 0, preserve_held_out = 0;
  size_t trainable_parameters = 0;
  size_t steps = 0;
  size_t tokens = 0;  // processed in training (forward and backward)
  double seconds = 0;
  double tokens_per_second = 0;
  uint64_t peak_rss_bytes = 0;
  bool stopped = false;  // ended early by `stop`
  std::vector<EpochReport> epochs;
};

// Trains an adapter on the records of `data` and writes it to
// options.output. Throws Error for bad options or data.
FinetuneReport finetune(const Model& model, const Tokenizer& tokenizer, const std::filesystem::path& data,
                        const TrainingLayout& layout, const FinetuneOptions& options,
                        const std::function<void(const FinetuneProgress&)>& progress = {});

}  // namespace frugal
