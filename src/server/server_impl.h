// The state behind frugal::Server, shared by its routes (http_server.cpp:
// set-up, authentication, models, metrics; completion_routes.cpp: answers).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/chat.h"
#include "frugal/energy.h"
#include "frugal/knowledge.h"
#include "frugal/knowledge_cache.h"
#include "frugal/knowledge_store.h"
#include "frugal/scheduler.h"
#include "frugal/server.h"
#include "server/guarded_http.h"
#include "server/metrics.h"
#include "server/openai_api.h"

namespace frugal {

namespace server {
// The connection limits and deadlines of `options`.
ConnectionLimits connection_limits(const ServerOptions& options);
// Throws ApiError 401 unless the request carries `Authorization: Bearer
// api_key` (nothing to check when api_key is empty).
void check_api_key(const httplib::Request& request, const std::string& api_key);
}  // namespace server

struct Server::Impl {
  Impl(Model& m, const Tokenizer& t, const ServerOptions& o);

  Model& model;
  const Tokenizer& tokenizer;
  ServerOptions options;
  server::GuardedHttpServer http;
  ChatFormat chat_format = ChatFormat::ChatML;
  std::optional<ThinkingFormat> thinking_format;  // from the model's template
  std::optional<ToolCallFormat> tool_format;      // from the template (or --chat-template's name)
  server::Metrics metrics;
  EnergyMeter meter;
  EnergyMeter::Mark step_mark{};  // the scheduler thread's, around each batch
  std::unique_ptr<GenerationScheduler> scheduler;
  // MODEL@NAME models: knowledge caches pinned in the scheduler's store
  // (declared after it: unpinned before it goes).
  std::unique_ptr<KnowledgeStore> knowledge;
  // Guards `knowledge`: requests read it, a first request for a cache of
  // the knowledge folder adds to it (knowledge_models.cpp).
  mutable std::shared_mutex knowledge_mutex;
  // When each cache of the knowledge folder was loaded from its file (under
  // knowledge_mutex): a file replaced or deleted since (by another server
  // sharing the folder) is loaded again or let go.
  struct FileStamp {
    uint64_t inode = 0;
    int64_t modified_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  std::map<std::string, FileStamp> knowledge_stamps;
  static std::optional<FileStamp> stamp_of(const std::filesystem::path& path);  // none: no such file
  std::atomic<size_t> in_flight{0};  // admitted sequences, waiting or generating
  std::atomic<bool> stopping{false};
  std::atomic<bool> serving{false};  // inside serve()
  std::atomic<bool> http_stopped{false};
  std::mutex knowledge_edit_mutex;  // one knowledge edit at a time
  std::atomic<uint64_t> next_id{1};
  int bound_port = -1;

  void setup();
  // A route body wrapped so that every failure becomes an OpenAI-style error
  // counted under `endpoint`.
  using RouteBody = std::function<void(const httplib::Request&, httplib::Response&)>;
  httplib::Server::Handler guarded(const std::string& endpoint, RouteBody body);
  void add_knowledge_routes();  // knowledge_routes.cpp: /v1/knowledge...
  void add_web_routes();        // web_routes.cpp: the page, /reports/
  void check_key(const httplib::Request& request) const;
  void completions(const httplib::Request& request, httplib::Response& response, bool chat);
  // The model (or MODEL@NAME knowledge cache), the prompt and the
  // generation options a request asks for; ApiError for what it cannot get.
  server::PreparedAnswer prepare(const server::CompletionRequest& request);
  void responses(const httplib::Request& request, httplib::Response& response);  // responses_routes.cpp
  // ollama_routes.cpp: Ollama's /api/... beside OpenAI's /v1/...
  void add_ollama_routes();
  void ollama_generate(const httplib::Request& request, httplib::Response& response, bool chat);
  nlohmann::json ollama_model_entry(const std::string& name) const;
  void embeddings(const httplib::Request& request, httplib::Response& response);  // embedding_routes.cpp
  // The OpenAI embeddings reply to `body` (floats or base64); `truncate`: cut long inputs (Ollama's).
  nlohmann::json embed(const nlohmann::json& body, bool truncate);
  int64_t model_vocab() const { return model.config().vocab_size; }
  void beam_completion(const server::CompletionRequest& request, const std::vector<TokenId>& prompt,
                       bool trim_leading_space, const std::string& id, int64_t created,
                       httplib::Response& response);
  void reply_error(httplib::Response& response, const server::ApiError& error, const std::string& endpoint);
  nlohmann::json models() const;
  // LoRA adapters (lora_routes.cpp): their names in the API (file stems), the
  // scales a request asks for (empty: as loaded), GET /lora-adapters.
  std::vector<std::string> adapter_names() const;
  std::vector<float> adapter_scales(const server::CompletionRequest& request) const;
  void add_lora_routes();

  // Knowledge caches (knowledge_models.cpp): the --kb ones are loaded at
  // start; those of the knowledge folder when first asked for.
  void load_startup_knowledge();
  // The cache's prefix, then the question. Empty when there is no cache
  // called `name`; loads it from the folder if needed (Error when its file
  // is unusable).
  std::optional<std::vector<TokenId>> knowledge_prompt(const std::string& name, const std::string& question);
  // Puts the cache at `path` into the store as `name` (knowledge_mutex held
  // for writing, or at start-up), timed in the metrics.
  void load_into_store(const std::string& name, const std::filesystem::path& path);
  std::vector<std::pair<std::string, size_t>> knowledge_listing() const;  // name, tokens (0: not loaded yet)

  // Knowledge over HTTP (knowledge_routes.cpp).
  std::filesystem::path knowledge_file(const std::string& name) const;  // empty: no such cache
  nlohmann::json describe_knowledge(const std::string& name) const;
  std::filesystem::path editable_knowledge_file(const std::string& name) const;  // or 403/400
  void run_on_engine(const std::function<void()>& work);  // between batch steps, on the scheduler thread
  void swap_in_knowledge(const std::string& name, const std::filesystem::path& path);
  nlohmann::json create_knowledge(const std::string& name, std::vector<Document> documents,
                                  const PrefillProgress& progress);
  nlohmann::json edit_knowledge(const std::string& name,
                                const std::function<void(KnowledgeCache&, const PrefillProgress&)>& change,
                                const PrefillProgress& progress);
  void delete_knowledge(const std::string& name);
  void respond_with_progress(const httplib::Request& request, httplib::Response& response,
                             const std::string& endpoint, int status,
                             std::function<nlohmann::json(const PrefillProgress&)> work);
};

namespace server {

// A knowledge cache name: letters, digits, '-', '_' and '.', not starting
// with '.', at most 128 (safe as a file name and in a model id).
bool valid_knowledge_name(const std::string& name);

// The client of the request this thread serves has hung up.
inline bool client_gone() {
  const ClientConnection* connection = current_client_connection();
  return connection && connection->peer_closed();
}

// Counts `sequences` from admission to the end of their request; refuses
// (429) when `limit` sequences are already admitted, generating or waiting.
class Admission {
 public:
  Admission(std::atomic<size_t>& in_flight, size_t limit, size_t sequences);
  ~Admission() { in_flight_.fetch_sub(sequences_); }
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

 private:
  std::atomic<size_t>& in_flight_;
  size_t sequences_;
};

}  // namespace server
}  // namespace frugal
