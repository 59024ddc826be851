// `frugal quantize IN OUT TYPE`: re-encode a model's weight matrices.
#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "frugal/quantize.h"

namespace frugal::cli {

void add_quantize_command(CLI::App& app) {
  struct Arguments {
    std::string input, output, type;
    int threads = 0;
  };
  auto args = std::make_shared<Arguments>();
  std::string names;
  for (const auto& name : WeightFormat::names()) names += (names.empty() ? "" : ", ") + name;
  CLI::App* command = app.add_subcommand(
      "quantize", "Convert a model's weight matrices to another format (as llama-quantize; no retraining)");
  command->add_option("input", args->input, "GGUF model to read")->required()->check(CLI::ExistingFile);
  command->add_option("output", args->output, "GGUF file to write")->required();
  command->add_option("type", args->type, "target format: " + names)->required();
  command->add_option("-t,--threads", args->threads, "threads (default: all cores)")->check(integer_in(0, 1024));
  command->callback([args] {
    check_output_path(args->output);
    const WeightFormat format = WeightFormat::parse(args->type);
    const QuantizeSummary s = quantize_model(args->input, args->output, format, static_cast<size_t>(args->threads));
    std::string types;
    for (const auto& [type, count] : s.tensor_types) {
      types += fmt::format("{}{} {}", types.empty() ? "" : ", ", count, tensor_type_name(type));
    }
    fmt::print(stderr, "{}: {} ({:.2f} MiB -> {:.2f} MiB; {} matrices converted; tensors: {})\n", args->output,
               format.name, static_cast<double>(s.input_bytes) / (1 << 20),
               static_cast<double>(s.output_bytes) / (1 << 20), s.converted, types);
  });
}

}  // namespace frugal::cli
