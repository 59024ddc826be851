// `frugal finetune`: a LoRA adapter trained on the CPU from JSONL records
// (docs/finetune.md). The base model stays as it is; the adapter is applied
// with --lora, served per request, or merged with `frugal lora merge`.
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/error.h"
#include "frugal/finetune.h"
#include "frugal/knowledge_cache.h"

namespace frugal::cli {

namespace {

struct FinetuneArguments {
  std::string data, output, chat_template, system, prompt_template;
  FinetuneOptions options;
  std::string preserve;
  bool quiet = false;
};

std::atomic<bool> stop_requested{false};

extern "C" void request_stop(int) {
  stop_requested = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends at once
}

std::string duration(double seconds) {
  const auto s = static_cast<long>(std::lround(seconds));
  return s >= 3600 ? fmt::format("{}h{:02}m", s / 3600, s / 60 % 60) : fmt::format("{}m{:02}s", s / 60, s % 60);
}

std::string loss_text(double value) { return std::isnan(value) ? "-" : fmt::format("{:.4f}", value); }

}  // namespace

void add_finetune_command(CLI::App& app) {
  auto args = std::make_shared<FinetuneArguments>();
  auto model_args = std::make_shared<ModelArguments>();
  CLI::App* command = app.add_subcommand(
      "finetune", "Train a LoRA adapter on the CPU from JSONL records (chats, prompt/completion or knowledge QA)");
  add_model_arguments(*command, *model_args, true);
  FinetuneOptions& o = args->options;
  command->add_option("--data", args->data, "JSONL training records (docs/finetune.md)")->required()->check(CLI::ExistingFile);
  command->add_option("-o,--output", args->output, "the adapter to write (GGUF; rewritten at each checkpoint)")->required();
  command->add_option("--targets", o.targets, "projections to adapt: q,k,v,o,gate,up,down or all")->capture_default_str();
  command->add_option("--rank", o.rank, "LoRA rank")->capture_default_str()->check(CLI::Range(1, 1024));
  command->add_option("--alpha", o.alpha, "LoRA alpha (the change is scaled by alpha / rank)")->capture_default_str();
  command->add_option("--epochs", o.epochs, "passes over the training records")->capture_default_str()->check(CLI::Range(1, 100000));
  command->add_option("--batch", o.batch, "records per optimizer step (gradients accumulated)")->capture_default_str()->check(CLI::Range(1, 100000));
  command->add_option("--learning-rate,--lr", o.learning_rate, "AdamW's peak learning rate")->capture_default_str();
  command->add_option("--warmup", o.warmup_steps, "warm-up steps (-1: 5% of the steps)")->capture_default_str();
  command->add_option("--weight-decay", o.weight_decay, "AdamW's decoupled weight decay")->capture_default_str();
  command->add_option("--clip", o.clip, "gradient norm limit (0: none)")->capture_default_str();
  command->add_option("--seed", o.seed, "seed of the adapter's start, the split and the order")->capture_default_str();
  command->add_option("--validation", o.validation_fraction, "share of the records held out for the validation loss")
      ->capture_default_str();
  command->add_option("--max-tokens", o.max_tokens, "drop records longer than this (default: the model's context)");
  command->add_option("--preserve", args->preserve,
                      "JSONL records on which the tuned model's next-token distributions are kept near the base's")
      ->check(CLI::ExistingFile);
  command->add_option("--preserve-weight", o.preserve_weight, "weight of the KL term")->capture_default_str();
  command->add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints (0: each epoch)")
      ->capture_default_str();
  command->add_option("--chat-template", args->chat_template,
                      "chat format of \"messages\" records (default: the model's own template)");
  command->add_option("--system", args->system, "system text of knowledge QA records (default: the template's)");
  command->add_option("--prompt-template", args->prompt_template,
                      "knowledge prompt layout file for QA records (default: the model's, as `frugal ask` uses)")
      ->check(CLI::ExistingFile);
  command->add_flag("-q,--quiet", args->quiet, "no progress line");
  command->callback([command, args, model_args] {
    check_output_path(args->output);
    args->options.output = args->output;
    args->options.preserve = args->preserve;
    const KvTypesGiven types_given = cache_types_given(*command);
    if (model_args->context != 0 || types_given.keys || types_given.values) {
      throw Error("finetune keeps no KV cache: -c and --cache-type do not apply (--max-tokens limits the records)");
    }
    if (!model_args->lora.empty() || !model_args->lora_scaled.empty()) {
      throw Error("finetune trains a new adapter on the base model; merge earlier adapters first (frugal lora merge)");
    }
    LoadedModel loaded = load_model(*model_args);
    TrainingLayout layout;
    layout.knowledge_prompt = args->prompt_template.empty() ? default_prompt_template(*loaded.model, *loaded.tokenizer)
                                                            : read_prompt_template(args->prompt_template);
    layout.system = args->system;
    const bool has_template = !loaded.model->file().get_string_or("tokenizer.chat_template", "").empty();
    if (has_template || !args->chat_template.empty()) {
      layout.chat_format = resolve_chat_format(*loaded.model, args->chat_template);
    }
    // Training allocates and frees the same large buffers for every record:
    // kept by the heap instead of mapped and returned each time, they cost
    // no page faults. 32 MiB is the largest threshold glibc takes; where it
    // is refused, the default (a sliding threshold) stays.
    if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1) mallopt(M_TRIM_THRESHOLD, 256 << 20);
    stop_requested = false;
    args->options.stop = &stop_requested;
    std::signal(SIGINT, request_stop);
    const bool terminal = ::isatty(STDERR_FILENO) != 0 && !args->quiet;
    const auto show = [&](const FinetuneProgress& p) {
      if (!terminal) return;
      fmt::print(stderr, "\r\x1b[2Kepoch {}/{}  step {}/{}  loss {:.4f}  {:.0f} tok/s  {} left", p.epoch, p.epochs,
                 p.step, p.steps, p.loss, p.tokens_per_second, duration(p.seconds_left));
    };
    FinetuneReport report;
    try {
      report = finetune(*loaded.model, *loaded.tokenizer, args->data, layout, args->options, show);
    } catch (...) {
      std::signal(SIGINT, SIG_DFL);
      throw;
    }
    std::signal(SIGINT, SIG_DFL);
    if (terminal) fmt::print(stderr, "\n");
    fmt::print(stderr, "records: {} training, {} validation{}{}\n", report.train_examples, report.validation_examples,
               report.dropped_examples ? fmt::format(", {} dropped as too long", report.dropped_examples) : "",
               report.preserve_examples
                   ? fmt::format("; preserve: {} kept, {} held out", report.preserve_examples, report.preserve_held_out)
                   : "");
    for (const EpochReport& e : report.epochs) {
      fmt::print(stderr, "epoch {}: train loss {}  validation loss {}  drift (KL) {}\n", e.epoch,
                 loss_text(e.train_loss), loss_text(e.validation_loss), loss_text(e.preserve_divergence));
    }
    fmt::print(stderr, "{} steps, {} tokens in {:.1f} s ({:.0f} tok/s), {} trainable parameters, peak memory {:.0f} MiB\n",
               report.steps, report.tokens, report.seconds, report.tokens_per_second, report.trainable_parameters,
               static_cast<double>(report.peak_rss_bytes) / (1024.0 * 1024.0));
    if (report.stopped && report.steps == 0) {
      fmt::print(stderr, "stopped before the first step: no adapter written\n");
      std::exit(130);
    }
    if (report.stopped) {
      fmt::print(stderr, "stopped: {} holds the adapter as of step {}\n", args->output, report.steps);
      std::exit(130);  // as a shell reports an interrupted command; the adapter is written
    }
    fmt::print(stderr, "adapter written to {} (apply with --lora, or merge with frugal lora merge)\n", args->output);
  });
}

}  // namespace frugal::cli
