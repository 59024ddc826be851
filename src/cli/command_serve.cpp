// `frugal serve`: the OpenAI-compatible HTTP server (include/frugal/server.h).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/encoder.h"
#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/server.h"

namespace frugal::cli {

namespace {

struct ServeArguments {
  ModelArguments model;
  std::vector<std::string> knowledge;
  std::string knowledge_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  size_t queue = 16;
  size_t parallel = 4;
  size_t prefix_cache_mib = 64;
  std::string name;
  std::string chat_template;
  std::string thinking = "auto";
  int32_t reasoning_budget = -1;
  std::string reasoning_exit = "off";
  bool metrics_public = false;
  bool read_only_knowledge = false;
  std::string oae_report;
  int64_t max_beam_tokens = 4096;
  size_t max_connections = 256;
  size_t max_client_connections = 64;
  double header_timeout = 10;
  double body_timeout = 30;
  bool context_shift = false;
  int64_t keep = 4;
  bool embedding = false;
  bool generation_options_given = false;  // set from the command line: refused with --embedding
};

// Serves until SIGINT/SIGTERM (blocked in `signals`). A signal that came
// while the model was loading is pending and taken at once; stop() then
// makes serve() return even if it has not started listening yet.
template <typename AnyServer>
void serve_until_signal(AnyServer& server, sigset_t signals, const std::string& host, const char* where) {
  server.bind();
  std::atomic<bool> done{false};
  std::thread watcher([&server, &done, signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (done) return;  // woken by serve() returning on its own
    fmt::print(stderr, "\nstopping (signal {})\n", signal);
    server.stop();
  });
  fmt::print(stderr, "serving on http://{}:{}{}\n", host, server.port(),
             fmt::format(fmt::runtime(where), host, server.port()));
  auto end_watcher = [&] {
    done = true;
    pthread_kill(watcher.native_handle(), SIGTERM);  // pending until the watcher takes it, if it has not yet
    watcher.join();
  };
  try {
    server.serve();
  } catch (...) {
    end_watcher();
    throw;
  }
  end_watcher();
}

// --embedding: a BERT-family encoder for /v1/embeddings and /api/embed only.
void serve_encoder(const ServeArguments& args, sigset_t signals) {
  if (args.model.model_path.empty()) throw Error("--embedding needs -m FILE: a BERT-family embedding model (GGUF)");
  for (const auto& [given, name] : {std::pair{!args.knowledge.empty(), "--kb"}, {!args.knowledge_dir.empty(), "--kb-dir"},
                                    {!args.chat_template.empty(), "--chat-template"},
                                    {!args.oae_report.empty(), "--oae-report"}, {args.context_shift, "--context-shift"},
                                    {!args.model.lora.empty() || !args.model.lora_scaled.empty(), "--lora"},
                                    {args.generation_options_given, "--parallel, --queue, --prefix-cache, --cache-type, "
                                                                    "--thinking and --reasoning-*"}}) {
    if (given) throw Error(fmt::format("{} is for generative models; leave it out with --embedding", name));
  }
  const GgufFile probe = GgufFile::open(args.model.model_path);
  const std::string architecture = probe.get_string_or("general.architecture", "");
  if (!is_encoder_model(probe) && architecture != "llama" && architecture != "qwen2" && architecture != "qwen3") {
    throw UnsupportedError(fmt::format("{}: architecture '{}' is not an encoder frugal runs (it runs bert)",
                                       args.model.model_path, architecture));
  }
  if (!is_encoder_model(probe)) {
    throw Error(fmt::format("{} is a generative model, not an encoder: serve it without --embedding (its "
                            "/v1/embeddings averages its hidden states)",
                            args.model.model_path));
  }
  const auto tokenizer = Tokenizer::from_gguf(probe);
  const auto encoder = EncoderModel::load(args.model.model_path, static_cast<size_t>(args.model.threads));
  ServerOptions options;
  options.host = args.host;
  options.port = args.port;
  options.api_key = args.api_key;
  options.model_name = args.name;
  options.context = args.model.context;
  options.max_connections = args.max_connections;
  options.max_connections_per_client = args.max_client_connections;
  options.header_timeout_seconds = args.header_timeout;
  options.body_timeout_seconds = args.body_timeout;
  EmbeddingServer server(*encoder, *tokenizer, options);
  serve_until_signal(server, signals, args.host, "/v1 (embeddings only: POST /v1/embeddings, POST /api/embed)");
}

void serve(const ServeArguments& args) {
  // SIGINT/SIGTERM are taken by one thread that stops the server: requests
  // in flight end at their next token, then the process exits.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (args.embedding) {
    serve_encoder(args, signals);
    return;
  }

  LoadedModel loaded = load_model(args.model);
  ServerOptions options;
  options.host = args.host;
  options.port = args.port;
  options.api_key = args.api_key;
  options.queue_limit = args.queue;
  options.parallel = args.parallel;
  options.prefix_cache_bytes = args.prefix_cache_mib << 20;
  options.model_name = args.name;
  options.context = loaded.context;
  options.precision = loaded.cache_precision;
  options.chat_template = args.chat_template;
  options.knowledge_dir = args.knowledge_dir;
  options.metrics_public = args.metrics_public;
  options.read_only_knowledge = args.read_only_knowledge;
  options.oae_report_dir = args.oae_report;
  options.max_beam_tokens = args.max_beam_tokens;
  options.max_connections = args.max_connections;
  options.max_connections_per_client = args.max_client_connections;
  options.header_timeout_seconds = args.header_timeout;
  options.body_timeout_seconds = args.body_timeout;
  options.context_shift = args.context_shift;
  options.context_shift_keep = args.keep;
  if (args.thinking != "auto") options.thinking.enabled = args.thinking == "on";
  options.thinking.budget = args.reasoning_budget;
  options.thinking.exit = parse_early_exit(args.reasoning_exit);
  for (const auto& item : args.knowledge) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      throw Error(fmt::format("--kb takes NAME=FILE.fkv, got '{}'", item));
    }
    options.knowledge.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  Server server(*loaded.model, *loaded.tokenizer, options);
  serve_until_signal(server, signals, args.host, "/v1 (web page: http://{0}:{1}/; models: GET /v1/models; metrics: "
                                                 "GET /metrics)");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArguments>();
  CLI::App* command = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat, completions, knowledge caches)");
  add_model_arguments(*command, args->model, true);
  command->add_option("--kb", args->knowledge, "knowledge cache served as model MODEL@NAME (NAME=FILE.fkv, repeatable)")
      ->allow_extra_args(false);
  command->add_option("--kb-dir", args->knowledge_dir,
                      "folder of knowledge caches (NAME.fkv), each served as MODEL@NAME and loaded when first asked "
                      "for; several servers may share it");
  command->add_option("--host", args->host, "address to listen on")->capture_default_str();
  command->add_option("--port", args->port, "port (0: any free port)")->check(CLI::Range(0, 65535))->capture_default_str();
  command->add_option("--api-key", args->api_key, "require Authorization: Bearer KEY");
  command->add_flag("--context-shift", args->context_shift,
                    "an answer whose max_tokens runs past the context forgets the older half of it (after --keep "
                    "tokens) and goes on");
  command->add_option("--keep", args->keep, "tokens at the start kept by --context-shift (attention sinks)")
      ->check(integer_in(0, int64_t{1} << 24))
      ->capture_default_str()
      ->needs(command->get_option("--context-shift"));
  command->add_option("--thinking", args->thinking,
                      "thinking models: on, off or auto (the model's default) for requests that do not say")
      ->check(CLI::IsMember({"on", "off", "auto"}))
      ->capture_default_str();
  command->add_option("--reasoning-budget", args->reasoning_budget,
                      "thinking tokens allowed per answer unless a request says (0: no thinking, -1: no limit)")
      ->check(integer_in(-1, 1 << 24))
      ->capture_default_str();
  command->add_option("--reasoning-exit", args->reasoning_exit,
                      "early exit from thinking unless a request says: confidence:T, min-confidence:T or off")
      ->capture_default_str();
  command->add_option("--parallel", args->parallel, "answers generated at once, batched in one pass per token")
      ->check(CLI::Range(size_t{1}, size_t{256}))
      ->capture_default_str();
  command->add_option("--prefix-cache", args->prefix_cache_mib,
                      "MiB of keys and values of ended requests kept, so that a prompt beginning like an earlier "
                      "one (a chat's previous turns, a system prompt) is not read again")
      ->check(CLI::Range(size_t{0}, size_t{1} << 20))
      ->capture_default_str();
  command->add_option("--queue", args->queue, "requests that may wait beyond --parallel; more get HTTP 429")
      ->check(CLI::Range(size_t{0}, size_t{4096}))
      ->capture_default_str();
  command->add_option("--name", args->name, "model id in the API (default: the file name without .gguf)");
  command->add_option("--chat-template", args->chat_template, "chat format name, overriding the model's template");
  command->add_flag("--embedding", args->embedding,
                    "serve a BERT-family encoder (-m) for embeddings only: /v1/embeddings and /api/embed");
  command->add_flag("--metrics-public", args->metrics_public, "serve GET /metrics without the API key");
  command->add_flag("--read-only-knowledge", args->read_only_knowledge,
                    "no creating, editing or deleting knowledge caches over HTTP (the web page only reads them)");
  command->add_option("--oae-report", args->oae_report,
                      "folder of an OAE report (frugal oae run --out), shown under /reports/");
  command->add_option("--max-beam-tokens", args->max_beam_tokens,
                      "largest beam_width x max_tokens a beam-search request may ask for")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  command->add_option("--max-connections", args->max_connections,
                      "open connections at most (each has a thread); more are refused with 503 at once")
      ->check(CLI::Range(size_t{1}, size_t{65536}))
      ->capture_default_str();
  command->add_option("--max-client-connections", args->max_client_connections,
                      "open connections from one client address at most; more get 429 (raise it behind a proxy)")
      ->check(CLI::Range(size_t{1}, size_t{65536}))
      ->capture_default_str();
  command->add_option("--header-timeout", args->header_timeout,
                      "seconds a client has to send a request's headers, from its first byte")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  command->add_option("--body-timeout", args->body_timeout,
                      "seconds a client has to send a request's body, after its headers")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  command->callback([args, command] {
    for (const char* option : {"--parallel", "--queue", "--prefix-cache", "--cache-type", "--thinking",
                               "--reasoning-budget", "--reasoning-exit", "--max-beam-tokens"}) {
      if (command->count(option) > 0) args->generation_options_given = true;
    }
    serve(*args);
  });
}

}  // namespace frugal::cli
