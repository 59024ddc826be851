// `frugal serve`: an OpenAI-compatible HTTP API over one model, with
// knowledge caches as extra models ("MODEL@KB") and Prometheus metrics.
// Requests are batched continuously (GenerationScheduler): up to `parallel`
// answers advance together, one forward pass a step, sharing the keys and
// values of common prompt beginnings (knowledge caches, system prompts,
// earlier chat turns); more wait in a bounded queue (429 when full).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frugal/encoder.h"
#include "frugal/model.h"
#include "frugal/thinking.h"
#include "frugal/tokenizer.h"

namespace frugal {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (see Server::port)
  std::string api_key;           // empty: no authentication
  std::string model_name;        // id in /v1/models (default: the file's stem)
  std::vector<std::pair<std::string, std::filesystem::path>> knowledge;  // NAME=FILE.fkv, loaded at start
  // A folder of knowledge caches, NAME.fkv each (created if missing): every
  // one is a model MODEL@NAME, loaded (mapped and put into the store) when
  // first asked for. Several instances can share one folder.
  std::filesystem::path knowledge_dir;
  size_t parallel = 4;           // answers generated at once (continuous batching)
  size_t prefix_cache_bytes = 64u << 20;  // keys and values of ended requests kept for reuse
  size_t queue_limit = 16;       // requests waiting beyond the `parallel` running; more get 429
  size_t max_body_bytes = 1 << 20;
  int64_t context = 0;           // per request; 0: the model's training context, at most 4096
  // A completion asking for more tokens than its context holds goes on with
  // its first `context_shift_keep` tokens and the newer half of the rest
  // (GenerationOptions::context_shift) instead of stopping at "length".
  bool context_shift = false;
  int64_t context_shift_keep = 4;
  // Thinking for requests that do not say (a thinking model's defaults:
  // serve --thinking, --reasoning-budget, --reasoning-exit).
  ThinkingSettings thinking;
  KvTypes precision = KvPrecision::F32;  // of the shared-prefix store's rows and the caches built here
  std::string chat_template;     // format name overriding the model's template
  bool metrics_public = false;   // GET /metrics without the API key
  bool read_only_knowledge = false;  // no creating, editing or deleting caches over HTTP
  std::filesystem::path oae_report_dir;  // served under /reports/ (an `oae run --out` folder)
  // beam_width x max_tokens of a beam request at most (the search's memory
  // and time grow with both).
  int64_t max_beam_tokens = 4096;
  // Connections (hostile clients included): at most this many open, and per
  // client address; a request's headers must arrive within header_timeout
  // of its first byte, its body within body_timeout after them.
  size_t max_connections = 256;
  size_t max_connections_per_client = 64;
  double header_timeout_seconds = 10;
  double body_timeout_seconds = 30;
};

class Server {
 public:
  Server(Model& model, const Tokenizer& tokenizer, const ServerOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (throws Error when the address is taken), then serves until stop().
  void run();
  // Binds and returns; serve() then blocks. For tests: bind to port 0, read
  // port(), serve on a thread.
  void bind();
  void serve();
  int port() const;
  // Stops accepting; requests in flight are cancelled at their next token.
  // Thread-safe, and effective whenever it comes: a stop before serve()
  // makes serve() return at once.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `frugal serve --embedding`: an encoder (a BERT-family file) served for
// embeddings only: POST /v1/embeddings and Ollama's /api/embed, GET
// /v1/models, /api/tags, /api/version and /health. Text generation routes
// answer 400 saying that this server embeds. Of `options`: host, port,
// api_key, model_name, context (0: the encoder's positions), the connection
// limits and max_body_bytes.
class EmbeddingServer {
 public:
  EmbeddingServer(EncoderModel& encoder, const Tokenizer& tokenizer, const ServerOptions& options);
  ~EmbeddingServer();
  EmbeddingServer(const EmbeddingServer&) = delete;
  EmbeddingServer& operator=(const EmbeddingServer&) = delete;

  void bind();
  void serve();
  int port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace frugal
