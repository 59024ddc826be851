#include "cli/model_options.h"

#include <algorithm>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/generate.h"

namespace frugal::cli {

void add_model_arguments(CLI::App& command, ModelArguments& args) {
  command.add_option("-m,--model", args.model_path, "GGUF model file")->required()->check(CLI::ExistingFile);
  command.add_option("-t,--threads", args.threads, "CPU threads (default: all cores)")->check(CLI::Range(0, 1024));
  command.add_flag("--pin-threads", args.pin_threads, "bind compute thread i to CPU i");
  command.add_option("-c,--ctx-size", args.context, "context size in tokens (default: the model's, at most 4096)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  command.add_option("--cache-type", args.cache_type, "KV cache precision (keys and values): f32 or f16")
      ->check(CLI::IsMember({"f32", "f16"}));
}

LoadedModel load_model(const ModelArguments& args) {
  LoadedModel loaded;
  ModelOptions options;
  options.threads = static_cast<size_t>(args.threads);
  options.pin_threads = args.pin_threads;
  loaded.model = Model::load(args.model_path, options);
  loaded.tokenizer = Tokenizer::from_gguf(loaded.model->file());
  check_tokenizer_matches(*loaded.model, *loaded.tokenizer);
  const auto& config = loaded.model->config();
  loaded.context = args.context > 0 ? args.context : std::min<int64_t>(config.training_context, 4096);
  loaded.cache_precision = args.cache_type == "f16" ? KvPrecision::F16 : KvPrecision::F32;
  return loaded;
}

std::string unescape_newlines(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace frugal::cli
