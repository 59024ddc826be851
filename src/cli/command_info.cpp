// `frugal info MODEL`: what a GGUF file holds (architecture, sizes, quant
// mix, tokenizer, chat template), without running it.
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "frugal/chat.h"
#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal::cli {

namespace {

std::string human_bytes(uint64_t bytes) {
  if (bytes >= (1ull << 30)) return fmt::format("{:.2f} GiB", bytes / double(1ull << 30));
  if (bytes >= (1ull << 20)) return fmt::format("{:.2f} MiB", bytes / double(1ull << 20));
  if (bytes >= (1ull << 10)) return fmt::format("{:.2f} KiB", bytes / double(1ull << 10));
  return fmt::format("{} B", bytes);
}

void print_info(const std::string& path, bool all_metadata) {
  const GgufFile file = GgufFile::open(path);
  fmt::print("file:          {} (GGUF v{}, {})\n", path, file.version(), human_bytes(file.file_size()));
  const std::string arch = file.get_string_or("general.architecture", "(none)");
  fmt::print("architecture:  {}\n", arch);
  if (auto name = file.get_string_or("general.name", ""); !name.empty()) fmt::print("name:          {}\n", name);

  uint64_t parameters = 0, weight_bytes = 0;
  std::map<std::string, std::pair<int, uint64_t>> mix;
  for (const auto& t : file.tensors()) {
    parameters += static_cast<uint64_t>(t.element_count());
    weight_bytes += t.size_bytes;
    auto& entry = mix[std::string(tensor_type_name(t.type))];
    entry.first++;
    entry.second += t.size_bytes;
  }
  if (!file.tensors().empty()) {
    try {
      const ModelConfig c = ModelConfig::from_gguf(file);
      fmt::print("dimensions:    embedding {}, layers {}, heads {} (kv {}), head size {}, ffn {}, vocab {}\n",
                 c.embedding_size, c.layer_count, c.head_count, c.kv_head_count, c.head_size,
                 c.feed_forward_size, c.vocab_size);
      fmt::print("context:       {} tokens (training)\n", c.training_context);
      fmt::print("rope:          {} style, base {}, {} dims{}\n", c.rope_style == RopeStyle::Neox ? "neox" : "normal",
                 c.rope_freq_base, c.rope_dimensions,
                 c.rope_scaling == RopeScaling::None ? "" : fmt::format(", scaling x{}", c.rope_scaling_factor));
      std::vector<std::string> features;
      if (c.tied_embeddings) features.push_back("tied embeddings");
      if (c.qkv_bias) features.push_back("q/k/v bias");
      if (c.qk_norm) features.push_back("q/k norm");
      fmt::print("features:      {}\n", features.empty() ? "none" : fmt::format("{}", fmt::join(features, ", ")));
    } catch (const Error& e) {
      fmt::print("model:         cannot run: {}\n", e.what());
    }
    fmt::print("parameters:    {:.2f} M in {} tensors, {}\n", parameters / 1e6, file.tensors().size(),
               human_bytes(weight_bytes));
    fmt::print("tensor types: ");
    for (const auto& [type, entry] : mix) {
      fmt::print(" {} x{} ({})", type, entry.first, human_bytes(entry.second));
    }
    fmt::print("\n");
  }
  try {
    const auto tokenizer = Tokenizer::from_gguf(file);
    fmt::print("tokenizer:     {} (pre: {}), {} tokens, bos {}, eos {}, add bos {}\n", tokenizer->model_name(),
               tokenizer->pre_tokenizer(), tokenizer->vocab_size(), tokenizer->bos(), tokenizer->eos(),
               tokenizer->add_bos() ? "yes" : "no");
  } catch (const Error& e) {
    fmt::print("tokenizer:     unusable: {}\n", e.what());
  }
  const std::string jinja = file.get_string_or("tokenizer.chat_template", "");
  if (jinja.empty()) {
    fmt::print("chat template: none\n");
  } else {
    try {
      fmt::print("chat template: {}\n", chat_format_name(detect_chat_format(jinja)));
    } catch (const Error&) {
      fmt::print("chat template: not recognised (use --chat-template NAME with --chat)\n");
    }
  }
  if (all_metadata) {
    fmt::print("\nmetadata:\n");
    for (const auto& [key, value] : file.metadata()) fmt::print("  {} = {}\n", key, value.to_display_string());
    fmt::print("\ntensors:\n");
    for (const auto& t : file.tensors()) {
      fmt::print("  {:<32} {:<5} {}\n", t.name, tensor_type_name(t.type), t.shape_string());
    }
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand("info", "Describe a GGUF model file");
  command->add_option("model", *path, "GGUF file")->required()->check(CLI::ExistingFile);
  command->add_flag("-a,--all", *all, "also list every metadata key and tensor");
  command->callback([path, all] { print_info(*path, *all); });
}

}  // namespace frugal::cli
