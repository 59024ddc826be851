// The fine-tuning loop (include/frugal/finetune.h): data split, steps of
// accumulated gradients, clipping, AdamW, validation and drift each epoch,
// checkpoints written atomically so that an interrupted run leaves a
// usable adapter.
#include "frugal/finetune.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "frugal/error.h"
#include "train/optimizer.h"
#include "train/preserve.h"
#include "train/training_pass.h"

namespace frugal {

namespace {

void check_options(const FinetuneOptions& o) {
  if (o.epochs < 1) throw Error(fmt::format("--epochs {}: train at least one epoch", o.epochs));
  if (o.batch < 1) throw Error(fmt::format("--batch {}: a step needs at least one example", o.batch));
  if (!(o.learning_rate > 0.0f) || !std::isfinite(o.learning_rate)) {
    throw Error(fmt::format("--learning-rate {}: must be a positive number", o.learning_rate));
  }
  if (!(o.validation_fraction >= 0.0 && o.validation_fraction <= 0.5)) {
    throw Error(fmt::format("--validation {}: the held-out share must be between 0 and 0.5", o.validation_fraction));
  }
  if (!(o.clip >= 0.0f)) throw Error(fmt::format("--clip {}: must be 0 (none) or positive", o.clip));
  if (!(o.weight_decay >= 0.0f)) throw Error(fmt::format("--weight-decay {}: must not be negative", o.weight_decay));
  if (!(o.preserve_weight >= 0.0f)) {
    throw Error(fmt::format("--preserve-weight {}: must not be negative", o.preserve_weight));
  }
  if (o.preserve_top < 1) throw Error("--preserve-top must be at least 1");
  if (o.checkpoint_every < 0) throw Error("--checkpoint-every must not be negative");
  if (o.warmup_steps < -1) throw Error(fmt::format("--warmup {}: give a number of steps, or -1 for 5% of them", o.warmup_steps));
  if (o.output.empty()) throw Error("finetune needs an output file for the adapter (-o)");
}

// Examples that fit the context; the number dropped is added to `dropped`.
// A token the model does not have (a tokenizer from another model) is an
// error naming the record, found now rather than at its step.
std::vector<TrainingExample> fitting(std::vector<TrainingExample> examples, size_t max_tokens, size_t& dropped,
                                     const ModelConfig& config, const std::filesystem::path& path) {
  for (const TrainingExample& e : examples) {
    for (const TokenId t : e.tokens) {
      if (t < 0 || t >= config.vocab_size) {
        throw Error(fmt::format("{}:{}: token id {} is outside the model's vocabulary (size {}); the tokenizer is "
                                "not this model's",
                                path.string(), e.line, t, config.vocab_size));
      }
    }
  }
  const auto before = examples.size();
  std::erase_if(examples, [&](const TrainingExample& e) { return e.tokens.size() > max_tokens; });
  dropped += before - examples.size();
  return examples;
}

TrainingSequence sequence_of(const TrainingExample& example) { return {example.tokens, example.targets, {}}; }

// Cross entropy per target token over `examples` (nan when none).
double mean_loss(LoraTrainingPass& pass, const std::vector<TrainingExample>& examples) {
  double total = 0;
  size_t count = 0;
  for (const TrainingExample& example : examples) {
    const SequenceLoss loss = pass.run(sequence_of(example), 0, 0, false);
    total += loss.cross_entropy;
    count += loss.targets;
  }
  return count == 0 ? std::nan("") : total / static_cast<double>(count);
}

uint64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // kilobytes on Linux
}

}  // namespace

FinetuneReport finetune(const Model& model, const Tokenizer& tokenizer, const std::filesystem::path& data,
                        const TrainingLayout& layout, const FinetuneOptions& options,
                        const std::function<void(const FinetuneProgress&)>& progress) {
  check_options(options);
  const ModelConfig& config = model.config();
  const std::vector<LoraTarget> targets = parse_lora_targets(options.targets);
  if (!model.loras().empty()) {
    throw Error("finetune trains a new adapter on the base model; load it without adapters (merge them first)");
  }
  // At most the model's context: a longer record could not be trained on.
  const size_t context = config.training_context > 0 ? static_cast<size_t>(config.training_context) : SIZE_MAX;
  const size_t max_tokens = options.max_tokens > 0 ? std::min(options.max_tokens, context) : context;
  FinetuneReport report;
  std::mt19937_64 rng(options.seed);

  std::vector<TrainingExample> train = fitting(read_training_examples(data, tokenizer, layout), max_tokens,
                                               report.dropped_examples, config, data);
  if (train.empty()) {
    throw Error(fmt::format("{}: every record is longer than {} tokens; raise --max-tokens or shorten them",
                            data.string(), max_tokens));
  }
  std::shuffle(train.begin(), train.end(), rng);
  size_t held_out = static_cast<size_t>(std::llround(options.validation_fraction * static_cast<double>(train.size())));
  if (options.validation_fraction > 0 && held_out == 0 && train.size() >= 2) held_out = 1;
  const std::vector<TrainingExample> validation(train.end() - static_cast<std::ptrdiff_t>(held_out), train.end());
  train.resize(train.size() - held_out);
  if (train.empty()) {
    throw Error(fmt::format("{}: no record is left to train on after holding out {} for validation; lower "
                            "--validation or add records",
                            data.string(), held_out));
  }
  report.train_examples = train.size();
  report.validation_examples = validation.size();

  LoraParameters lora(config, targets, options.rank, options.alpha, options.seed);
  LoraTrainingPass pass(model, lora);
  report.trainable_parameters = lora.parameter_count();

  // The base model's distributions on the preserve records (B = 0: the
  // adapter changes nothing yet), a fifth of them held out for the drift.
  std::vector<TrainingSequence> preserved;
  std::vector<TrainingExample> preserve_held_out;
  const auto stopping = [&] { return options.stop && options.stop->load(); };
  if (!options.preserve.empty()) {
    std::vector<TrainingExample> records = fitting(read_training_examples(options.preserve, tokenizer, layout),
                                                   max_tokens, report.dropped_examples, config, options.preserve);
    std::shuffle(records.begin(), records.end(), rng);
    const size_t drift_count = records.size() >= 2 ? std::max<size_t>(1, records.size() / 5) : 0;
    preserve_held_out.assign(records.end() - static_cast<std::ptrdiff_t>(drift_count), records.end());
    records.resize(records.size() - drift_count);
    // Weight 0: the drift is measured, the term left out (no base distributions needed).
    if (options.preserve_weight == 0) records.clear();
    for (const TrainingExample& record : records) {
      if (stopping()) {  // Ctrl-C before the first step: nothing trained, nothing written
        report.stopped = true;
        return report;
      }
      preserved.push_back(preserved_sequence(pass, record, options.preserve_top));
    }
    report.preserve_examples = preserved.size();
    report.preserve_held_out = preserve_held_out.size();
    if (preserved.empty() && options.preserve_weight > 0) throw Error(fmt::format("{}: too few records to preserve (at least 2)", options.preserve.string()));
  }

  const auto batch = static_cast<size_t>(options.batch);
  const size_t steps_per_epoch = (train.size() + batch - 1) / batch;
  const size_t total_steps = steps_per_epoch * static_cast<size_t>(options.epochs);
  const size_t warmup = options.warmup_steps >= 0 ? static_cast<size_t>(options.warmup_steps)
                                                  : static_cast<size_t>(std::llround(0.05 * static_cast<double>(total_steps)));
  // Preserve records per step: a quarter of the batch, at least one.
  const size_t preserve_per_step = preserved.empty() ? 0 : std::max<size_t>(1, batch / 4);
  AdamWSettings adamw;
  adamw.weight_decay = options.weight_decay;

  const auto evaluate = [&](int epoch, double train_loss) {
    if (stopping()) return;  // Ctrl-C: no minutes of evaluation before stopping
    EpochReport e;
    e.epoch = epoch;
    e.train_loss = train_loss;
    e.validation_loss = mean_loss(pass, validation);
    e.preserve_divergence = mean_divergence(pass, preserve_held_out);
    report.epochs.push_back(e);
  };
  evaluate(0, std::nan(""));

  using Clock = std::chrono::steady_clock;
  double training_seconds = 0;
  size_t step = 0, preserve_next = 0;
  for (int epoch = 1; epoch <= options.epochs && !report.stopped; ++epoch) {
    std::shuffle(train.begin(), train.end(), rng);
    double epoch_loss = 0;
    size_t epoch_steps = 0;
    for (size_t first = 0; first < train.size(); first += batch) {
      const auto started = Clock::now();
      ++step;
      const size_t last = std::min(train.size(), first + batch);
      size_t target_count = 0, row_count = 0, tokens = 0;
      for (size_t i = first; i < last; ++i) target_count += train[i].targets.size();
      std::vector<const TrainingSequence*> keep;
      for (size_t k = 0; k < preserve_per_step; ++k) {
        keep.push_back(&preserved[preserve_next]);
        row_count += preserved[preserve_next].preserved.size();
        preserve_next = (preserve_next + 1) % preserved.size();
      }
      lora.zero_gradients();
      double cross_entropy = 0;
      for (size_t i = first; i < last; ++i) {
        cross_entropy += pass.run(sequence_of(train[i]), 1.0f / static_cast<float>(target_count), 0, true).cross_entropy;
        tokens += train[i].tokens.size();
      }
      for (const TrainingSequence* sequence : keep) {
        pass.run(*sequence, 0, options.preserve_weight / static_cast<float>(row_count), true);
        tokens += sequence->tokens.size();
      }
      const double norm = lora.gradient_norm();
      if (!std::isfinite(norm) || !std::isfinite(cross_entropy)) {
        throw Error(fmt::format("step {}: the loss or the gradients are not finite numbers (a learning rate too "
                                "high?); {} keeps the last checkpoint",
                                step, options.output.string()));
      }
      if (options.clip > 0 && norm > options.clip) lora.scale_gradients(static_cast<float>(options.clip / norm));
      adamw_step(lora, scheduled_rate(options.learning_rate, step, warmup, total_steps), step, adamw);

      const double loss = cross_entropy / static_cast<double>(target_count);
      epoch_loss += loss;
      ++epoch_steps;
      report.tokens += tokens;
      training_seconds += std::chrono::duration<double>(Clock::now() - started).count();
      report.steps = step;
      if (options.checkpoint_every > 0 && step % static_cast<size_t>(options.checkpoint_every) == 0) {
        lora.write_adapter(options.output, config, "frugal finetune checkpoint");
      }
      if (progress) {
        FinetuneProgress p;
        p.epoch = epoch;
        p.epochs = options.epochs;
        p.step = step;
        p.steps = total_steps;
        p.loss = loss;
        p.tokens_per_second = static_cast<double>(report.tokens) / training_seconds;
        p.seconds_left = training_seconds / static_cast<double>(step) * static_cast<double>(total_steps - step);
        progress(p);
      }
      if (stopping()) {
        report.stopped = true;
        break;
      }
    }
    if (!report.stopped) evaluate(epoch, epoch_loss / static_cast<double>(std::max<size_t>(epoch_steps, 1)));
    lora.write_adapter(options.output, config, "frugal finetune");
  }
  report.seconds = training_seconds;
  report.tokens_per_second = training_seconds > 0 ? static_cast<double>(report.tokens) / training_seconds : 0;
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace frugal
