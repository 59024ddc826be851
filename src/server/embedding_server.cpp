// `frugal serve --embedding`: a BERT-family encoder served for embeddings,
// with OpenAI's and Ollama's embedding routes. Requests run on the
// connection's own thread; the encoder's thread pool takes them in turn.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/server.h"
#include "server/embedding_request.h"
#include "server/server_impl.h"

namespace frugal {

using server::ApiError;
using nlohmann::json;

struct EmbeddingServer::Impl {
  EncoderModel& encoder;
  const Tokenizer& tokenizer;
  ServerOptions options;
  server::GuardedHttpServer http;
  int bound_port = -1;
  std::atomic<bool> serving{false}, stopping{false}, http_stopped{false};

  Impl(EncoderModel& e, const Tokenizer& t, const ServerOptions& o)
      : encoder(e), tokenizer(t), options(o), http(server::connection_limits(o)) {}

  using RouteBody = std::function<void(const httplib::Request&, httplib::Response&)>;
  httplib::Server::Handler guarded(const std::string& endpoint, RouteBody body) {
    return [endpoint, body = std::move(body)](const httplib::Request& request, httplib::Response& response) {
      auto reply = [&](const ApiError& error) {
        response.status = error.status;
        response.set_content(endpoint.starts_with("/api/") ? json{{"error", error.what()}}.dump()
                                                           : server::error_body(error),
                             "application/json");
      };
      try {
        body(request, response);
      } catch (const ApiError& e) {
        reply(e);
      } catch (const Error& e) {
        reply(ApiError(400, "invalid_request_error", e.what()));
      } catch (const std::exception& e) {
        reply(ApiError(500, "server_error", e.what()));
      }
    };
  }

  json embed(const json& body, bool truncate = false) {
    const server::EmbeddingRequest request =
        server::parse_embedding_request(body, tokenizer, encoder.config().vocab_size, options.context, truncate);
    if (server::without_latest(request.model) != options.model_name) {
      throw ApiError(404, "invalid_request_error",
                     fmt::format("the model '{}' does not embed here; use '{}'", request.model, options.model_name),
                     "model", "model_not_found");
    }
    std::vector<std::vector<float>> vectors;
    for (const auto& tokens : request.inputs) vectors.push_back(encoder.embed(tokens));
    return server::embedding_reply(request, vectors, options.model_name);
  }

  void setup() {
    if (options.model_name.empty()) {
      options.model_name = std::filesystem::path(encoder.file().source_name()).stem().string();
    }
    if (options.context <= 0 || options.context > encoder.config().context) options.context = encoder.config().context;
    http.set_payload_max_length(options.max_body_bytes);
    http.Get("/health", guarded("/health", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(R"({"status":"ok"})", "application/json");
    }));
    http.Get("/v1/models", guarded("/v1/models", [this](const httplib::Request& request, httplib::Response& response) {
      server::check_api_key(request, options.api_key);
      const json model = {{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "frugal"}};
      response.set_content(json{{"object", "list"}, {"data", json::array({model})}}.dump(), "application/json");
    }));
    http.Post("/v1/embeddings", guarded("/v1/embeddings", [this](const httplib::Request& request,
                                                                 httplib::Response& response) {
      server::check_api_key(request, options.api_key);
      response.set_content(embed(server::parse_json_object(request.body)).dump(), "application/json");
    }));
    http.Post("/api/embed", guarded("/api/embed", [this](const httplib::Request& request, httplib::Response& response) {
      server::check_api_key(request, options.api_key);
      const json body = server::parse_json_object(request.body);
      const bool truncate = server::ollama_embed_truncate(body);
      const auto start = std::chrono::steady_clock::now();
      const json reply = embed({{"model", server::string_field(body, "model")},
                                 {"input", body.contains("input") ? body["input"] : json()}},
                                truncate);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      response.set_content(server::ollama_embed_reply(server::string_field(body, "model"), reply, seconds).dump(),
                           "application/json");
    }));
    http.Get("/api/tags", guarded("/api/tags", [this](const httplib::Request& request, httplib::Response& response) {
      server::check_api_key(request, options.api_key);
      const json model = {{"name", options.model_name + ":latest"},
                          {"model", options.model_name + ":latest"},
                          {"size", encoder.file().file_size()},
                          {"details", {{"format", "gguf"}, {"family", "bert"}}}};
      response.set_content(json{{"models", json::array({model})}}.dump(), "application/json");
    }));
    http.Get("/api/version", guarded("/api/version", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(json{{"version", server::kOllamaVersion}}.dump(), "application/json");
    }));
    // Generation routes say what this server is instead of a bare 404.
    for (const char* path : {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/api/chat", "/api/generate"}) {
      http.Post(path, guarded(path, [this](const httplib::Request&, httplib::Response&) {
        throw server::invalid_request(fmt::format("this server embeds with '{}' (an encoder; started with "
                                                  "--embedding); it does not generate text",
                                                  options.model_name),
                                      "model");
      }));
    }
    http.set_error_handler(server::write_http_error);
  }
};

EmbeddingServer::EmbeddingServer(EncoderModel& encoder, const Tokenizer& tokenizer, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(encoder, tokenizer, options)) {
  if (tokenizer.vocab_size() != static_cast<size_t>(encoder.config().vocab_size)) {
    throw Error(fmt::format("the tokenizer has {} tokens but the encoder's embeddings {}; give the encoder's own "
                            "vocabulary",
                            tokenizer.vocab_size(), encoder.config().vocab_size));
  }
  impl_->setup();
}

EmbeddingServer::~EmbeddingServer() { stop(); }

void EmbeddingServer::bind() {
  impl_->bound_port = server::bind_listener(impl_->http, impl_->options.host, impl_->options.port,
                                            impl_->options.max_connections);
}

void EmbeddingServer::serve() {
  Impl& s = *impl_;
  s.serving = true;
  if (!s.stopping) s.http.listen_after_bind();
  s.serving = false;
}

int EmbeddingServer::port() const { return impl_->bound_port; }

void EmbeddingServer::stop() {
  Impl& s = *impl_;
  s.stopping = true;
  if (s.http_stopped.exchange(true)) return;
  while (s.serving && !s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  s.http.stop();
}

}  // namespace frugal
