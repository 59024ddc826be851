// `frugal lora merge BASE ADAPTER... OUT`: LoRA adapters merged into a model
// file (W + s B A), for a model that no longer needs --lora.
#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/error.h"
#include "frugal/lora.h"
#include "frugal/tensor_type.h"

namespace frugal::cli {

void add_lora_command(CLI::App& app) {
  struct Arguments {
    std::vector<std::string> files;  // BASE, ADAPTER..., OUT
    std::vector<std::string> scaled;  // FILE SCALE pairs, flattened
    std::string type;
  };
  auto args = std::make_shared<Arguments>();
  CLI::App* lora = app.add_subcommand("lora", "LoRA adapters (llama.cpp's GGUF adapter files)");
  lora->require_subcommand(1);
  CLI::App* merge = lora->add_subcommand("merge", "Merge adapters into a model: W + scale * B A, written as a new GGUF");
  merge->add_option("files", args->files, "BASE.gguf ADAPTER.gguf... OUT.gguf")->required()->expected(2, -1);
  merge->add_option("--lora-scaled", args->scaled, "an adapter with a scale (FILE SCALE); repeatable")
      ->type_size(2)
      ->allow_extra_args(false);
  merge->add_option("--type", args->type,
                    "format of the changed matrices (F32, F16, BF16, Q8_0, ...; default: each keeps its own)");
  merge->callback([args] {
    const std::string base = args->files.front(), out = args->files.back();
    std::vector<LoraSpec> adapters;
    for (size_t i = 1; i + 1 < args->files.size(); ++i) adapters.push_back({args->files[i], 1.0f});
    for (size_t i = 0; i + 1 < args->scaled.size(); i += 2) {
      adapters.push_back(parse_scaled_lora(args->scaled[i], args->scaled[i + 1]));
    }
    if (adapters.empty()) throw Error("lora merge needs at least one adapter: BASE ADAPTER... OUT or --lora-scaled");
    std::optional<TensorType> type;
    if (!args->type.empty()) {
      type = tensor_type_from_name(args->type);
      if (!type) throw Error(fmt::format("--type {}: not a tensor type frugal writes (e.g. F32, F16, Q8_0)", args->type));
    }
    check_output_path(out);
    const size_t merged = merge_lora(base, adapters, out, type);
    fmt::print(stderr, "{}: {} adapter{} merged into {} matrices of {}\n", out, adapters.size(),
               adapters.size() == 1 ? "" : "s", merged, base);
  });
}

}  // namespace frugal::cli
