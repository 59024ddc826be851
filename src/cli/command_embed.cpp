// `frugal embed`: the embedding of each text, from a BERT-family encoder file
// (mean or [CLS] pooled, as the file says) or from a generative model (its
// final hidden states averaged, as the server's /v1/embeddings), length 1.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/encoder.h"
#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal::cli {

namespace {

struct EmbedArguments {
  std::string model_path;
  std::vector<std::string> prompts;
  size_t threads = 0;
  bool json = false;
};

}  // namespace

void add_embed_command(CLI::App& app) {
  auto args = std::make_shared<EmbedArguments>();
  CLI::App* command = app.add_subcommand("embed", "Print the embedding vector of each text (BERT-family encoders "
                                                  "or generative models)");
  command->add_option("-m,--model", args->model_path, "GGUF file: an encoder (bert) or a generative model")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("-p,--prompt", args->prompts, "text to embed (several: one vector each; \\n means a newline)")
      ->required();
  command->add_option("-t,--threads", args->threads, "CPU threads (default: all cores)");
  command->add_flag("--json", args->json, "print a JSON array of vectors instead of one line of numbers each");
  command->callback([args] {
    std::vector<std::vector<float>> vectors;
    const GgufFile probe = GgufFile::open(args->model_path);
    const bool encoder = is_encoder_model(probe);
    const auto tokenizer = Tokenizer::from_gguf(probe);
    std::unique_ptr<EncoderModel> bert;
    std::unique_ptr<Model> model;
    if (encoder) {
      bert = EncoderModel::load(args->model_path, args->threads);
    } else {
      model = Model::load(args->model_path, {.threads = args->threads});
    }
    for (const std::string& prompt : args->prompts) {
      const auto tokens = tokenizer->encode(unescape_newlines(prompt), true, false);
      if (tokens.empty()) throw Error("a prompt gives no tokens; give some text");
      vectors.push_back(encoder ? bert->embed(tokens) : model->embed(tokens));
    }
    if (args->json) {
      std::string out = "[";
      for (size_t v = 0; v < vectors.size(); ++v) {
        out += v ? ",\n [" : "[";
        for (size_t i = 0; i < vectors[v].size(); ++i) out += fmt::format("{}{:.9g}", i ? ", " : "", vectors[v][i]);
        out += "]";
      }
      fmt::print("{}]\n", out);
      return;
    }
    for (const auto& vector : vectors) {
      std::string line;
      for (size_t i = 0; i < vector.size(); ++i) line += fmt::format("{}{:.9g}", i ? " " : "", vector[i]);
      fmt::print("{}\n", line);
    }
  });
}

}  // namespace frugal::cli
