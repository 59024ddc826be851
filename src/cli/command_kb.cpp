// `frugal kb build|add|update|remove|info`: knowledge caches on disk.
#include <algorithm>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/progress.h"
#include "frugal/error.h"
#include "frugal/knowledge_cache.h"

namespace frugal::cli {

namespace {

namespace fs = std::filesystem;

struct BuildArguments {
  ModelArguments model;
  std::vector<std::string> docs;
  std::string system;
  std::string template_file;
  std::string format = "auto";
  std::string chat_template;
  int64_t reserve = 256;
  int batch = 512;
  std::string output;
  bool quiet = false;
};

struct EditArguments {
  ModelArguments model;
  std::string cache;
  std::vector<std::string> docs;  // add, update
  std::vector<std::string> ids;   // remove
  bool append_only = false;
  std::string output;
  bool quiet = false;
};

std::vector<Document> documents_from(const std::vector<std::string>& paths) {
  std::vector<fs::path> list(paths.begin(), paths.end());
  return read_documents(list);
}

PromptTemplate choose_template(const BuildArguments& args, const LoadedModel& loaded) {
  if (!args.template_file.empty()) return read_prompt_template(args.template_file);
  const bool has_template = !loaded.model->file().get_string_or("tokenizer.chat_template", "").empty();
  const bool chat = args.format == "chat" || (args.format == "auto" && (has_template || !args.chat_template.empty()));
  if (!chat) return plain_prompt_template();
  return chat_prompt_template(resolve_chat_format(*loaded.model, args.chat_template), *loaded.tokenizer);
}

void print_summary(const KnowledgeCache& cache, const fs::path& path) {
  fmt::print(stderr, "{}: {} documents, {} tokens, {:.1f} MiB of keys and values ({})\n", path.string(),
             cache.documents().size(), cache.tokens().size(), static_cast<double>(cache.kv_bytes()) / (1 << 20),
             kv_types_name(cache.types()));
}

void build(const BuildArguments& args) {
  check_output_path(args.output);  // before the prefill, not after it
  LoadedModel loaded = load_model(args.model);
  auto documents = documents_from(args.docs);
  KnowledgeBuildOptions options;
  options.prompt = choose_template(args, loaded);
  options.system = args.system;
  options.precision = loaded.cache_precision;
  options.context = args.model.context;
  options.reserve = args.reserve;
  options.batch = static_cast<size_t>(args.batch);
  options.progress = progress_bar("prefill", args.quiet);
  if (!args.quiet) {
    fmt::print(stderr, "{} documents, prompt layout {}\n", documents.size(), options.prompt.name);
  }
  const auto cache = KnowledgeCache::build(*loaded.model, *loaded.tokenizer, std::move(documents), options);
  cache.save(args.output);
  if (!args.quiet) print_summary(cache, args.output);
}

enum class Edit { Add, Update, Remove };

// Refused rather than writing a cache of no documents, which answers from nothing.
void refuse_removing_everything(const KnowledgeCache& cache, const std::vector<std::string>& ids) {
  for (const auto& entry : cache.documents()) {
    if (std::find(ids.begin(), ids.end(), entry.document.id) == ids.end()) return;
  }
  throw Error("removing every document would leave an empty cache; delete the file instead");
}

// Where an edit or a conversion writes (the cache itself unless -o), checked
// before any work.
std::string checked_output(const EditArguments& args) {
  const std::string output = args.output.empty() ? args.cache : args.output;
  check_output_path(output);
  return output;
}

KnowledgeCache load_cache(const EditArguments& args, const LoadedModel& loaded) {
  KnowledgeLoadOptions load;
  load.context = args.model.context;
  return KnowledgeCache::load(args.cache, *loaded.model, *loaded.tokenizer, load);
}

void edit(const EditArguments& args, Edit kind) {
  const std::string output = checked_output(args);
  LoadedModel loaded = load_model(args.model);
  auto cache = load_cache(args, loaded);
  if (kind == Edit::Remove) refuse_removing_everything(cache, args.ids);
  const size_t documents_before = cache.documents().size(), tokens_before = cache.tokens().size();
  const auto progress = progress_bar("prefill", args.quiet);
  KnowledgeEditReport report;
  switch (kind) {
    case Edit::Add: report = cache.add(documents_from(args.docs), args.append_only, progress); break;
    case Edit::Update: report = cache.update(documents_from(args.docs), progress); break;
    case Edit::Remove: report = cache.remove(args.ids, progress); break;
  }
  // Dropping trailing documents also leaves first_changed_document at the
  // end and recomputes nothing: the counts tell it from no change.
  const bool unchanged = report.first_changed_document == cache.documents().size() &&
                         report.recomputed_tokens == 0 && cache.documents().size() == documents_before &&
                         cache.tokens().size() == tokens_before;
  if (unchanged && output == args.cache) {
    if (!args.quiet) fmt::print(stderr, "{}: nothing changed; the file is left as it was\n", output);
    return;
  }
  cache.save(output);
  if (!args.quiet) {
    fmt::print(stderr,
               "recomputed {} tokens from document {} on (kept {}); a full rebuild computes {} ({:.1f}% saved)\n",
               report.recomputed_tokens, report.first_changed_document + 1, report.kept_tokens,
               report.full_rebuild_tokens,
               report.full_rebuild_tokens > 0
                   ? 100.0 * (1.0 - static_cast<double>(report.recomputed_tokens) /
                                        static_cast<double>(report.full_rebuild_tokens))
                   : 0.0);
    print_summary(cache, output);
  }
}

void info(const std::string& path, bool verify) {
  const auto summary = inspect_knowledge_cache(path, verify);
  fmt::print("file:       {} ({:.1f} MiB, format version {}{})\n", path,
             static_cast<double>(summary.file_bytes) / (1 << 20), summary.version,
             verify ? ", checksum verified" : "");
  fmt::print("model:      {}\n", summary.model);
  fmt::print("keys/values: {} tokens x {} layers x {} KV heads of {} ({})\n", summary.token_count,
             summary.layer_count, summary.kv_head_count, summary.head_size,
             kv_types_name(summary.precision));
  fmt::print("prompt:     {} (header {} tokens)\nsystem:     {}\n", summary.prompt_name, summary.header_tokens,
             summary.system);
  fmt::print("documents:  {}\n", summary.documents.size());
  for (const auto& doc : summary.documents) {
    fmt::print("  {:<24} tokens {:>6}..{:<6} {}\n", doc.document.id, doc.first_token,
               doc.first_token + doc.token_count, doc.document.title);
  }
}

// kb convert: the same cache with its keys and values in another precision
// (--cache-type), without prefilling again.
void convert(const EditArguments& args) {
  const std::string output = checked_output(args);
  LoadedModel loaded = load_model(args.model);
  auto cache = load_cache(args, loaded);
  if (cache.types() == loaded.cache_precision && output == args.cache) {
    if (!args.quiet) {
      fmt::print(stderr, "{}: already {}; the file is left as it was\n", output,
                 kv_types_name(loaded.cache_precision));
    }
    return;
  }
  const double before = static_cast<double>(cache.kv_bytes());
  cache.convert(loaded.cache_precision);
  cache.save(output);
  if (!args.quiet) {
    print_summary(cache, output);
    fmt::print(stderr, "keys and values {:.1f} MiB -> {:.1f} MiB, no prefill\n", before / (1 << 20),
               static_cast<double>(cache.kv_bytes()) / (1 << 20));
  }
}

void add_edit_options(CLI::App& command, EditArguments& args) {
  add_model_arguments(command, args.model, true);
  command.add_option("cache", args.cache, "knowledge cache (.fkv)")->required()->check(CLI::ExistingFile);
  command.add_option("-o,--output", args.output, "write the result here instead of replacing the cache");
  command.add_flag("-q,--quiet", args.quiet, "no progress or summary on stderr");
}

}  // namespace

void add_kb_command(CLI::App& app) {
  CLI::App* kb = app.add_subcommand("kb", "Build and edit knowledge caches (Cache-Augmented Generation)");
  kb->require_subcommand(1);

  auto build_args = std::make_shared<BuildArguments>();
  CLI::App* build_command = kb->add_subcommand("build", "Prefill documents once and save their keys and values");
  add_model_arguments(*build_command, build_args->model, true);
  build_command->add_option("--docs", build_args->docs, "folders, .txt/.md files or .jsonl files")
      ->required()
      ->expected(1, -1);
  build_command->add_option("--system", build_args->system, "system text before the documents (default: the "
                                                              "layout's instruction)");
  build_command->add_option("--template", build_args->template_file,
                            "JSON prompt template {header, document, question} (docs/knowledge-cache.md)")
      ->check(CLI::ExistingFile);
  build_command->add_option("--format", build_args->format,
                            "prompt layout: plain, chat, or auto (chat when the model has a chat template)")
      ->check(CLI::IsMember({"auto", "plain", "chat"}))
      ->capture_default_str();
  build_command->add_option("--chat-template", build_args->chat_template, "chat format name for --format chat");
  build_command->add_option("--reserve", build_args->reserve, "context tokens kept free for question and answer")
      ->check(integer_in(0, int64_t{1} << 24))
      ->capture_default_str();
  build_command->add_option("-b,--batch-size", build_args->batch, "tokens per forward pass")
      ->check(integer_in(1, 1 << 16))
      ->capture_default_str();
  build_command->add_option("-o,--output", build_args->output, "knowledge cache file to write (.fkv)")->required();
  build_command->add_flag("-q,--quiet", build_args->quiet, "no progress or summary on stderr");
  build_command->callback([build_args] { build(*build_args); });

  auto add_args = std::make_shared<EditArguments>();
  CLI::App* add = kb->add_subcommand("add", "Add documents (recomputes from the first one inserted)");
  add_edit_options(*add, *add_args);
  add->add_option("--docs", add_args->docs, "folders, .txt/.md files or .jsonl files")->required()->expected(1, -1);
  add->add_flag("--append-only", add_args->append_only, "place new documents last (recomputes only them)");
  add->callback([add_args] { edit(*add_args, Edit::Add); });

  auto update_args = std::make_shared<EditArguments>();
  CLI::App* update = kb->add_subcommand("update", "Replace documents with the same ids");
  add_edit_options(*update, *update_args);
  update->add_option("--docs", update_args->docs, "folders, .txt/.md files or .jsonl files")
      ->required()
      ->expected(1, -1);
  update->callback([update_args] { edit(*update_args, Edit::Update); });

  auto remove_args = std::make_shared<EditArguments>();
  CLI::App* remove = kb->add_subcommand("remove", "Remove documents by id");
  add_edit_options(*remove, *remove_args);
  remove->add_option("ids", remove_args->ids, "document ids")->required()->expected(1, -1);
  remove->callback([remove_args] { edit(*remove_args, Edit::Remove); });

  auto convert_args = std::make_shared<EditArguments>();
  CLI::App* convert_command =
      kb->add_subcommand("convert", "Store a cache's keys and values in another precision (--cache-type), no prefill");
  add_edit_options(*convert_command, *convert_args);
  convert_command->callback([convert_args] { convert(*convert_args); });

  auto info_path = std::make_shared<std::string>();
  auto info_fast = std::make_shared<bool>(false);
  CLI::App* info_command = kb->add_subcommand("info", "Describe a knowledge cache file (no model needed)");
  info_command->add_option("cache", *info_path, "knowledge cache (.fkv)")->required()->check(CLI::ExistingFile);
  info_command->add_flag("--no-verify", *info_fast, "skip the checksum");
  info_command->callback([info_path, info_fast] { info(*info_path, !*info_fast); });
}

}  // namespace frugal::cli
