// The HTTP side of `frugal serve`: routes, authentication, admission (a
// bounded queue), streaming, and turning every failure into an OpenAI error.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/chat.h"
#include "frugal/energy.h"
#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/knowledge_cache.h"
#include "frugal/server.h"
#include "server/metrics.h"
#include "server/openai_api.h"

namespace frugal {

using server::ApiError;
using server::CompletionRequest;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Server::Impl {
  Impl(Model& m, const Tokenizer& t, const ServerOptions& o) : model(m), tokenizer(t), options(o) {}

  Model& model;
  const Tokenizer& tokenizer;
  ServerOptions options;
  httplib::Server http;
  std::map<std::string, std::unique_ptr<KnowledgeCache>> knowledge;
  ChatFormat chat_format = ChatFormat::ChatML;
  server::Metrics metrics;
  EnergyMeter meter;
  std::mutex engine;  // one generation at a time (the model's thread pool is shared)
  std::atomic<size_t> in_flight{0}, running{0};  // admitted (waiting or generating), generating
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1};
  int bound_port = -1;

  void setup();
  void check_key(const httplib::Request& request) const;
  void completions(const httplib::Request& request, httplib::Response& response, bool chat);
  void reply_error(httplib::Response& response, const ApiError& error, const std::string& endpoint);
  json models() const;
};

namespace {

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

// Counts a request from admission to its end; refuses when `limit` requests
// already wait besides the one generating.
class Admission {
 public:
  Admission(std::atomic<size_t>& in_flight, size_t limit) : in_flight_(in_flight) {
    if (in_flight_.fetch_add(1) > limit) {
      in_flight_.fetch_sub(1);
      throw ApiError(429, "rate_limit_error", "the server is busy: too many requests are waiting; retry later",
                     "", "queue_full");
    }
  }
  ~Admission() { in_flight_.fetch_sub(1); }
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

 private:
  std::atomic<size_t>& in_flight_;
};

// Counts a request as generating for as long as it holds the engine.
class Running {
 public:
  explicit Running(std::atomic<size_t>& count) : count_(count) { ++count_; }
  ~Running() { --count_; }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;

 private:
  std::atomic<size_t>& count_;
};

std::string finish_reason(StopReason reason) {
  return reason == StopReason::MaxTokens || reason == StopReason::ContextFull ? "length" : "stop";
}

}  // namespace

void Server::Impl::check_key(const httplib::Request& request) const {
  if (options.api_key.empty()) return;
  const std::string header = request.get_header_value("Authorization");
  if (header != "Bearer " + options.api_key) {
    throw ApiError(401, "invalid_request_error", "invalid or missing API key (Authorization: Bearer KEY)", "",
                   "invalid_api_key");
  }
}

void Server::Impl::reply_error(httplib::Response& response, const ApiError& error, const std::string& endpoint) {
  response.status = error.status;
  response.set_content(server::error_body(error), "application/json");
  metrics.request(endpoint, error.status);
}

json Server::Impl::models() const {
  json data = json::array();
  data.push_back({{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "frugal"}});
  for (const auto& [name, cache] : knowledge) {
    data.push_back({{"id", options.model_name + "@" + name}, {"object", "model"}, {"created", 0},
                    {"owned_by", "frugal"}, {"knowledge_tokens", cache->tokens().size()}});
  }
  return {{"object", "list"}, {"data", data}};
}

void Server::Impl::completions(const httplib::Request& http_request, httplib::Response& response, bool chat) {
  const auto start = Clock::now();
  check_key(http_request);
  const CompletionRequest request = server::parse_completion_request(http_request.body, chat);
  KnowledgeCache* cache = nullptr;
  if (request.model != options.model_name) {
    const auto at = request.model.find('@');
    const auto kb = at == std::string::npos ? knowledge.end() : knowledge.find(request.model.substr(at + 1));
    if (at == std::string::npos || request.model.substr(0, at) != options.model_name || kb == knowledge.end()) {
      throw ApiError(404, "invalid_request_error",
                     fmt::format("the model '{}' does not exist; GET /v1/models lists them", request.model), "model",
                     "model_not_found");
    }
    cache = kb->second.get();
  }
  // The prompt: a chat in the model's format, a plain prompt, or (over a
  // knowledge cache) the question alone after the cached knowledge.
  std::vector<TokenId> prompt;
  std::string question;
  if (cache) {
    if (chat) {
      for (auto it = request.messages.rbegin(); it != request.messages.rend() && question.empty(); ++it) {
        if (it->role == "user") question = it->content;
      }
      if (question.empty()) throw server::invalid_request("a knowledge model needs a user message", "messages");
    } else {
      question = request.prompt;
    }
  } else if (chat) {
    std::string rendered;
    try {
      rendered = apply_chat_template(chat_format, request.messages, true, tokenizer);
    } catch (const Error& e) {
      throw server::invalid_request(e.what(), "messages");
    }
    prompt = encode_chat_prompt(tokenizer, rendered, request.messages);
  } else {
    prompt = tokenizer.encode(request.prompt, true, false);
  }
  const int64_t context = options.context;
  const size_t prompt_tokens = cache ? cache->prompt_tokens(question).size() : prompt.size();
  if (static_cast<int64_t>(prompt_tokens) >= context || (prompt.empty() && !cache)) {
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt has {} tokens; this model's context holds {}", prompt_tokens, context),
                   chat ? "messages" : "prompt", "context_length_exceeded");
  }

  GenerationOptions generation;
  generation.max_tokens = request.max_tokens;
  generation.sampling.temperature = request.temperature;
  generation.sampling.top_p = request.top_p;
  generation.sampling.top_k = 0;
  generation.sampling.min_p = 0;
  generation.sampling.repeat_penalty = 1;
  if (request.seed) generation.sampling.seed = *request.seed;
  generation.stop_strings = request.stop;
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id.fetch_add(1));
  const int64_t created = unix_now();
  const std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";

  // Runs one completion under the engine lock; `on_text` false cancels.
  // Copies: a streamed answer runs after this handler has returned.
  auto run_one = [this, cache, prompt, question, context](const GenerationOptions& settings,
                                                           const TextCallback& on_text) {
    auto checked = [this, &on_text](std::string_view text) { return !stopping.load() && (!on_text || on_text(text)); };
    if (cache) return cache->ask(question, settings, checked);
    KvCache kv(model.config(), context, options.precision);
    return generate(model, tokenizer, kv, prompt, settings, checked);
  };
  auto account = [this, start, prompt_tokens](const GenerationResult& result, Clock::time_point began, double joules) {
    metrics.tokens(prompt_tokens, result.tokens.size());
    metrics.latency(std::chrono::duration<double>(began - start).count() + result.first_token_seconds,
                    std::chrono::duration<double>(Clock::now() - start).count());
    metrics.add_joules(joules, meter.measured());
  };

  auto admission = std::make_shared<Admission>(in_flight, options.queue_limit);
  if (!request.stream) {
    std::vector<server::Choice> choices;
    size_t completion_tokens = 0;
    {
      std::lock_guard lock(engine);
      const Running generating(running);
      for (int i = 0; i < request.n; ++i) {
        const auto began = Clock::now();
        const auto mark = meter.mark();
        const GenerationResult result = run_one(generation, {});
        account(result, began, meter.joules_since(mark));
        if (stopping) throw ApiError(503, "server_error", "the server is shutting down");
        choices.push_back({result.text, finish_reason(result.stop_reason)});
        completion_tokens += result.tokens.size();
        if (generation.sampling.seed != SamplingParams{}.seed) ++generation.sampling.seed;  // n distinct samples
      }
    }
    json body = server::completion_response(request, id, created, choices, prompt_tokens, completion_tokens);
    if (cache) body["usage"]["prompt_tokens_details"] = {{"cached_tokens", cache->tokens().size()}};
    response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics.request(endpoint, 200);
    return;
  }
  // Streaming: headers go out now; the provider runs the generation and
  // writes each piece as an SSE chunk. A failed write (client gone) cancels.
  metrics.request(endpoint, 200);
  response.set_header("Cache-Control", "no-cache");
  response.set_chunked_content_provider(
      "text/event-stream",
      [this, admission, run_one, account, request, generation, id, created](size_t, httplib::DataSink& sink) {
        std::lock_guard lock(engine);
        const Running generating(running);
        bool first = true, connected = true;
        const auto began = Clock::now();
        const auto mark = meter.mark();
        GenerationResult result;
        try {
          result = run_one(generation, [&](std::string_view text) {
            const std::string chunk = server::stream_chunk(request, id, created, text, "", first);
            first = false;
            connected = connected && sink.is_writable() && sink.write(chunk.data(), chunk.size());
            return connected;
          });
        } catch (const std::exception& e) {
          // Headers are gone: the error travels as a last event.
          const std::string event = "data: " + server::error_body(ApiError(500, "server_error", e.what())) + "\n\n";
          sink.write(event.data(), event.size());
          sink.done();
          return false;
        }
        account(result, began, meter.joules_since(mark));
        if (connected) {
          const std::string last = server::stream_chunk(request, id, created, "", finish_reason(result.stop_reason),
                                                         first);
          const std::string done = "data: [DONE]\n\n";
          sink.write(last.data(), last.size());
          sink.write(done.data(), done.size());
          sink.done();
          return true;  // complete: the connection may be kept alive
        }
        return false;  // the client went away: drop the connection
      });
}

void Server::Impl::setup() {
  if (options.model_name.empty()) options.model_name = std::filesystem::path(model.file().source_name()).stem().string();
  if (options.context <= 0) options.context = std::min<int64_t>(model.config().training_context, 4096);
  if (!options.chat_template.empty()) {
    const auto format = chat_format_from_name(options.chat_template);
    if (!format) throw Error(fmt::format("unknown chat template '{}'", options.chat_template));
    chat_format = *format;
  } else if (const std::string jinja = model.file().get_string_or("tokenizer.chat_template", ""); !jinja.empty()) {
    chat_format = detect_chat_format(jinja);
  }
  uint64_t kv_bytes = 0;
  for (const auto& [name, path] : options.knowledge) {
    if (name.empty() || name.find('@') != std::string::npos || knowledge.count(name)) {
      throw Error(fmt::format("knowledge cache name '{}' is empty, repeated or contains '@'", name));
    }
    KnowledgeLoadOptions load;
    load.context = std::max<int64_t>(options.context, 0);
    auto cache = std::make_unique<KnowledgeCache>(KnowledgeCache::load(path, model, tokenizer, load));
    kv_bytes += cache->kv_bytes();
    knowledge.emplace(name, std::move(cache));
  }
  metrics.set_kv_bytes(kv_bytes);
  http.set_payload_max_length(options.max_body_bytes);

  auto guarded = [this](const std::string& endpoint, auto body) {
    return [this, endpoint, body](const httplib::Request& request, httplib::Response& response) {
      try {
        body(request, response);
      } catch (const ApiError& e) {
        reply_error(response, e, endpoint);
      } catch (const Error& e) {
        reply_error(response, ApiError(400, "invalid_request_error", e.what()), endpoint);
      } catch (const std::exception& e) {
        reply_error(response, ApiError(500, "server_error", e.what()), endpoint);
      }
    };
  };
  http.Get("/health", guarded("/health", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(json{{"status", stopping ? "stopping" : "ok"}}.dump(), "application/json");
    metrics.request("/health", 200);
  }));
  http.Get("/v1/models", guarded("/v1/models", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    response.set_content(models().dump(), "application/json");
    metrics.request("/v1/models", 200);
  }));
  http.Get("/metrics", guarded("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    const size_t generating = running.load();
    metrics.set_queue(in_flight.load() - std::min(in_flight.load(), generating), generating);
    response.set_content(metrics.render(), "text/plain; version=0.0.4");
  }));
  http.Post("/v1/chat/completions",
            guarded("/v1/chat/completions", [this](const httplib::Request& request, httplib::Response& response) {
              completions(request, response, true);
            }));
  http.Post("/v1/completions", guarded("/v1/completions", [this](const httplib::Request& request,
                                                               httplib::Response& response) {
    completions(request, response, false);
  }));
  // Errors httplib raises itself (unknown path, body too large) get an
  // OpenAI-style body too.
  http.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return;
    const std::string message = response.status == 404 ? fmt::format("no route {} {}", request.method, request.path)
                                : response.status == 413 ? "the request body is too large"
                                                         : "the request could not be handled";
    response.set_content(server::error_body(ApiError(response.status, "invalid_request_error", message)),
                         "application/json");
  });
}

Server::Server(Model& model, const Tokenizer& tokenizer, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model, tokenizer, options)) {
  check_tokenizer_matches(model, tokenizer);
  impl_->setup();
}

Server::~Server() { stop(); }

void Server::bind() {
  Impl& s = *impl_;
  if (s.options.port == 0) {
    s.bound_port = s.http.bind_to_any_port(s.options.host);
  } else {
    s.bound_port = s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1;
  }
  if (s.bound_port < 0) {
    throw Error(fmt::format("cannot listen on {}:{}; is another server using the port? (choose one with --port)",
                            s.options.host, s.options.port));
  }
}

void Server::serve() { impl_->http.listen_after_bind(); }

void Server::run() {
  bind();
  serve();
}

int Server::port() const { return impl_->bound_port; }

void Server::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

}  // namespace frugal
