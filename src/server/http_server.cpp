// The HTTP side of `frugal serve`: set-up, routes, authentication, binding
// and stopping, and turning every failure into an OpenAI error. The answers
// themselves are in completion_routes.cpp.
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/knowledge_cache.h"
#include "server/server_impl.h"

namespace frugal {

using server::ApiError;
using server::CompletionRequest;
using nlohmann::json;

server::ConnectionLimits server::connection_limits(const ServerOptions& o) {
  return {o.max_connections, o.max_connections_per_client,
          std::chrono::milliseconds(static_cast<int64_t>(o.header_timeout_seconds * 1000)),
          std::chrono::milliseconds(static_cast<int64_t>(o.body_timeout_seconds * 1000)),
          o.max_body_bytes + (64 << 10)};
}

void server::check_api_key(const httplib::Request& request, const std::string& api_key) {
  if (api_key.empty()) return;
  // Equal strings take the same time to compare whatever their content, so
  // the key cannot be guessed a character at a time from response times.
  const std::string given = request.get_header_value("Authorization"), expected = "Bearer " + api_key;
  unsigned char differ = given.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) {
    differ |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  if (differ != 0) {
    throw ApiError(401, "invalid_request_error", "invalid or missing API key (Authorization: Bearer KEY)", "",
                   "invalid_api_key");
  }
}

Server::Impl::Impl(Model& m, const Tokenizer& t, const ServerOptions& o)
    : model(m), tokenizer(t), options(o), http(server::connection_limits(o)) {}

void Server::Impl::check_key(const httplib::Request& request) const { server::check_api_key(request, options.api_key); }

void Server::Impl::reply_error(httplib::Response& response, const ApiError& error, const std::string& endpoint) {
  response.status = error.status;
  // Ollama's clients read a plain message: {"error": "..."}.
  response.set_content(endpoint.starts_with("/api/")
                           ? json{{"error", error.what()}}.dump(-1, ' ', false, json::error_handler_t::replace)
                           : server::error_body(error),
                       "application/json");
  metrics.request(endpoint, error.status);
}

httplib::Server::Handler Server::Impl::guarded(const std::string& endpoint, RouteBody body) {
  return [this, endpoint, body = std::move(body)](const httplib::Request& request, httplib::Response& response) {
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
}

void Server::Impl::setup() {
  if (options.model_name.empty()) options.model_name = std::filesystem::path(model.file().source_name()).stem().string();
  if (options.context <= 0) options.context = std::min<int64_t>(model.config().training_context, 4096);
  if (options.context_shift) {
    GenerationOptions shift;
    shift.context_shift = true;
    shift.context_shift_keep = options.context_shift_keep;
    check_context_shift_keep(shift, options.context);  // at start, not on every request
  }
  if (!options.chat_template.empty()) {
    const auto format = chat_format_from_name(options.chat_template);
    if (!format) throw Error(fmt::format("unknown chat template '{}'", options.chat_template));
    chat_format = *format;
  } else if (const std::string jinja = model.file().get_string_or("tokenizer.chat_template", ""); !jinja.empty()) {
    chat_format = detect_chat_format(jinja);
  }
  thinking_format = detect_thinking_format(model.file().get_string_or("tokenizer.chat_template", ""));
  tool_format = detect_tool_call_format(chat_format, model.file().get_string_or("tokenizer.chat_template", ""),
                                        !options.chat_template.empty());
  make_thinking_options(thinking_format, options.thinking, tokenizer);  // the defaults are checked at start
  if (options.context_shift && options.thinking.exit.enabled()) {
    throw Error("--reasoning-exit cannot be combined with --context-shift (a probe needs the context it branches from)");
  }
  SchedulerOptions batching;
  batching.store_precision = options.precision;
  batching.parallel = options.parallel;
  batching.context = options.context;
  batching.cache_bytes = options.prefix_cache_bytes;
  batching.before_step = [this] { step_mark = meter.mark(); };
  batching.step_joules = [this] {
    const double joules = meter.joules_since(step_mark);
    metrics.add_joules(joules, meter.measured());
    return meter.measured() ? joules : -1.0;
  };
  scheduler = std::make_unique<GenerationScheduler>(model, tokenizer, batching);
  knowledge = std::make_unique<KnowledgeStore>(model, tokenizer, *scheduler);
  load_startup_knowledge();
  // Connection threads, deadlines and the byte budget are GuardedHttpServer's;
  // a Content-Length over the limit is refused before the body is read.
  http.set_payload_max_length(options.max_body_bytes);

  http.Get("/health", guarded("/health", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(json{{"status", stopping ? "stopping" : "ok"}}.dump(), "application/json");
    metrics.request("/health", 200);
  }));
  http.Get("/v1/models", guarded("/v1/models", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    response.set_content(models().dump(), "application/json");
    metrics.request("/v1/models", 200);
  }));
  http.Get("/metrics", guarded("/metrics", [this](const httplib::Request& request, httplib::Response& response) {
    if (!options.metrics_public) check_key(request);
    const SchedulerStats stats = scheduler->stats();
    metrics.set_scheduler(stats.waiting, stats.running, stats.steps, stats.batched_tokens);
    metrics.set_kv_bytes(stats.store.live_bytes);
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
  http.Post("/v1/responses", guarded("/v1/responses", [this](const httplib::Request& request,
                                                             httplib::Response& response) {
    responses(request, response);
  }));
  http.Post("/v1/embeddings", guarded("/v1/embeddings", [this](const httplib::Request& request,
                                                               httplib::Response& response) {
    embeddings(request, response);
  }));
  add_knowledge_routes();
  add_lora_routes();
  add_ollama_routes();
  add_web_routes();
  // Errors httplib raises itself (unknown path, body too large) get an
  // OpenAI-style body too.
  http.set_error_handler(server::write_http_error);
}

Server::Server(Model& model, const Tokenizer& tokenizer, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model, tokenizer, options)) {
  check_tokenizer_matches(model, tokenizer);
  impl_->setup();
}

Server::~Server() { stop(); }

void Server::bind() {
  Impl& s = *impl_;
  s.bound_port = server::bind_listener(s.http, s.options.host, s.options.port, s.options.max_connections);
}

// stop() may come at any time, also before listening starts (a signal at
// start-up): serve() then returns at once instead of listening for good.
void Server::serve() {
  Impl& s = *impl_;
  s.serving = true;
  struct NotServing {
    std::atomic<bool>& serving;
    ~NotServing() { serving = false; }
  } not_serving{s.serving};
  if (!s.stopping) s.http.listen_after_bind();
}

void Server::run() {
  bind();
  serve();
}

int Server::port() const { return impl_->bound_port; }

void Server::stop() {
  Impl& s = *impl_;
  s.stopping = true;
  if (s.scheduler) s.scheduler->stop();  // answers in flight end as cancelled
  // httplib's stop() only takes a server that is already listening (and
  // must be called once): while serve() is about to listen, wait until it
  // does or has returned.
  if (s.http_stopped.exchange(true)) return;
  while (s.serving && !s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  s.http.stop();
}

}  // namespace frugal
