// The HTTP side of `frugal serve`: routes, authentication, admission (a
// bounded queue), streaming, and turning every failure into an OpenAI error.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/beam_search.h"
#include "frugal/chat.h"
#include "frugal/energy.h"
#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/generation_text.h"
#include "frugal/knowledge_cache.h"
#include "frugal/knowledge_store.h"
#include "frugal/scheduler.h"
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
  ChatFormat chat_format = ChatFormat::ChatML;
  server::Metrics metrics;
  EnergyMeter meter;
  EnergyMeter::Mark step_mark{};  // the scheduler thread's, around each batch
  std::unique_ptr<GenerationScheduler> scheduler;
  // MODEL@NAME models: knowledge caches pinned in the scheduler's store
  // (declared after it: unpinned before it goes).
  std::unique_ptr<KnowledgeStore> knowledge;
  std::atomic<size_t> in_flight{0};  // admitted requests, waiting or generating
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1};
  int bound_port = -1;

  void setup();
  void check_key(const httplib::Request& request) const;
  void completions(const httplib::Request& request, httplib::Response& response, bool chat);
  void beam_completion(const CompletionRequest& request, const std::vector<TokenId>& prompt, bool trim_leading_space,
                       const std::string& id, int64_t created, httplib::Response& response);
  void reply_error(httplib::Response& response, const ApiError& error, const std::string& endpoint);
  json models() const;
};

namespace {

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

// Counts a request from admission to its end; refuses when `limit`
// requests are already admitted (generating or waiting).
class Admission {
 public:
  Admission(std::atomic<size_t>& in_flight, size_t limit) : in_flight_(in_flight) {
    if (in_flight_.fetch_add(1) >= limit) {
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

// Text of one streamed answer, handed from the scheduler thread to the
// connection's thread (a slow client never holds up the batch).
struct StreamChannel {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::string> pieces;
  bool finished = false;
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
  for (const auto& name : knowledge->names()) {
    data.push_back({{"id", options.model_name + "@" + name}, {"object", "model"}, {"created", 0},
                    {"owned_by", "frugal"}, {"knowledge_tokens", knowledge->get(name).tokens.size()}});
  }
  return {{"object", "list"}, {"data", data}};
}

void Server::Impl::completions(const httplib::Request& http_request, httplib::Response& response, bool chat) {
  const auto start = Clock::now();
  check_key(http_request);
  const CompletionRequest request = server::parse_completion_request(http_request.body, chat);
  std::string knowledge_name;  // empty: the model itself, no knowledge cache
  if (request.model != options.model_name) {
    const auto at = request.model.find('@');
    if (at != std::string::npos) knowledge_name = request.model.substr(at + 1);
    if (at == std::string::npos || request.model.substr(0, at) != options.model_name ||
        !knowledge->contains(knowledge_name)) {
      throw ApiError(404, "invalid_request_error",
                     fmt::format("the model '{}' does not exist; GET /v1/models lists them", request.model), "model",
                     "model_not_found");
    }
  }
  const bool kb = !knowledge_name.empty();
  // The prompt: a chat in the model's format, a plain prompt, or (over a
  // knowledge cache) its knowledge and then the question.
  std::vector<TokenId> prompt;
  if (kb) {
    std::string question;
    if (chat) {
      for (auto it = request.messages.rbegin(); it != request.messages.rend() && question.empty(); ++it) {
        if (it->role == "user") question = it->content;
      }
      if (question.empty()) throw server::invalid_request("a knowledge model needs a user message", "messages");
    } else {
      question = request.prompt;
    }
    prompt = knowledge->prompt_tokens(knowledge_name, question);
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
  const size_t prompt_tokens = prompt.size();
  if (static_cast<int64_t>(prompt_tokens) >= options.context || prompt.empty()) {
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt has {} tokens; this model's context holds {}", prompt_tokens,
                               options.context),
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
  // An answer over a knowledge cache follows "Answer:": its first space is
  // the prompt format's. Other answers are passed on as the model wrote them.
  generation.trim_leading_space = kb;
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id.fetch_add(1));
  const int64_t created = unix_now();
  const std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  const size_t cached_tokens = kb ? knowledge->get(knowledge_name).tokens.size() : 0;

  // Every answer is counted when it ends, on the scheduler thread, whether
  // or not its client is still there to read it.
  const auto submitted = Clock::now();
  auto account = [this, start, submitted, prompt_tokens](const GenerationResult* result) {
    if (!result) return;
    metrics.tokens(prompt_tokens, result->tokens.size());
    metrics.latency(std::chrono::duration<double>(submitted - start).count() + result->first_token_seconds,
                    std::chrono::duration<double>(Clock::now() - start).count());
  };
  auto submit = [this](GenerationJob job) {
    if (stopping) throw ApiError(503, "server_error", "the server is shutting down");
    try {
      return scheduler->submit(std::move(job));
    } catch (const Error&) {
      if (stopping) throw ApiError(503, "server_error", "the server is shutting down");
      throw;
    }
  };

  auto admission = std::make_shared<Admission>(in_flight, options.queue_limit + options.parallel);
  if (request.beam_width > 1) {
    beam_completion(request, prompt, generation.trim_leading_space, id, created, response);
    metrics.request(endpoint, 200);
    return;
  }
  if (!request.stream) {
    // The n choices are n sequences of the batch, sharing the prompt's keys and values.
    std::vector<std::future<GenerationResult>> futures;
    for (int i = 0; i < request.n; ++i) {
      GenerationJob job{prompt, generation};
      job.on_finish = account;
      futures.push_back(submit(std::move(job)));
      if (generation.sampling.seed != SamplingParams{}.seed) ++generation.sampling.seed;  // n distinct samples
    }
    std::vector<server::Choice> choices;
    size_t completion_tokens = 0;
    for (auto& future : futures) {
      const GenerationResult result = future.get();
      if (result.stop_reason == StopReason::Cancelled) {
        throw ApiError(503, "server_error", "the server is shutting down");
      }
      choices.push_back({result.text, finish_reason(result.stop_reason)});
      completion_tokens += result.tokens.size();
    }
    json body = server::completion_response(request, id, created, choices, prompt_tokens, completion_tokens);
    if (kb) body["usage"]["prompt_tokens_details"] = {{"cached_tokens", cached_tokens}};
    response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics.request(endpoint, 200);
    return;
  }
  // Streaming: the scheduler thread puts each piece in a channel; this
  // connection's thread writes it as an SSE chunk. A failed write (client
  // gone) cancels the sequence.
  auto channel = std::make_shared<StreamChannel>();
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  GenerationJob job{prompt, generation};
  job.cancel = cancel;
  job.on_text = [channel, cancel](std::string_view text) {
    {
      std::lock_guard lock(channel->mutex);
      channel->pieces.emplace_back(text);
    }
    channel->wake.notify_one();
    return !cancel->load();
  };
  job.on_finish = [channel, account](const GenerationResult* result) {
    account(result);
    {
      std::lock_guard lock(channel->mutex);
      channel->finished = true;
    }
    channel->wake.notify_one();
  };
  auto future = std::make_shared<std::future<GenerationResult>>(submit(std::move(job)));
  metrics.request(endpoint, 200);
  response.set_header("Cache-Control", "no-cache");
  response.set_chunked_content_provider(
      "text/event-stream",
      [admission, channel, cancel, future, request, id, created](size_t, httplib::DataSink& sink) {
        bool first = true;
        for (;;) {
          std::deque<std::string> pieces;
          bool finished = false;
          {
            std::unique_lock lock(channel->mutex);
            channel->wake.wait(lock, [&] { return channel->finished || !channel->pieces.empty(); });
            pieces.swap(channel->pieces);
            finished = channel->finished;
          }
          for (const auto& text : pieces) {
            const std::string chunk = server::stream_chunk(request, id, created, text, "", first);
            first = false;
            if (!sink.is_writable() || !sink.write(chunk.data(), chunk.size())) {
              cancel->store(true);  // the client went away: drop the connection
              return false;
            }
          }
          if (finished) break;
        }
        GenerationResult result;
        try {
          result = future->get();
        } catch (const std::exception& e) {
          // Headers are gone: the error travels as a last event.
          const std::string event = "data: " + server::error_body(ApiError(500, "server_error", e.what())) + "\n\n";
          sink.write(event.data(), event.size());
          sink.done();
          return false;
        }
        const std::string last = server::stream_chunk(request, id, created, "", finish_reason(result.stop_reason),
                                                      first);
        const std::string done = "data: [DONE]\n\n";
        sink.write(last.data(), last.size());
        sink.write(done.data(), done.size());
        sink.done();
        return true;  // complete: the connection may be kept alive
      });
}

// beam_width > 1: a trie beam search with the model to itself (the batch
// pauses meanwhile); the n best beams are the choices. The search reads the
// whole prompt, a knowledge prefix included (nothing is reported cached).
// Stop strings cut a beam's text after the search, which knows nothing of
// them.
void Server::Impl::beam_completion(const CompletionRequest& request, const std::vector<TokenId>& prompt,
                                   bool trim_leading_space, const std::string& id, int64_t created,
                                   httplib::Response& response) {
  BeamSearchOptions beam;
  beam.beam_width = request.beam_width;
  beam.max_new_tokens = std::min<int64_t>(request.max_tokens, options.context - static_cast<int64_t>(prompt.size()));
  beam.num_return_sequences = request.n;
  const auto start = Clock::now();
  BeamSearchResult found;
  auto search = make_trie_beam_search();
  std::future<void> done;
  try {
    done = scheduler->run_exclusive([&] { found = search->run(model, tokenizer, prompt, beam); });
  } catch (const Error&) {
    throw ApiError(503, "server_error", "the server is shutting down");
  }
  try {
    done.get();
  } catch (const Error& e) {
    if (stopping) throw ApiError(503, "server_error", "the server is shutting down");
    throw;
  }
  std::vector<server::Choice> choices;
  size_t completion_tokens = 0;
  for (const BeamHypothesis& h : found.hypotheses) {
    const bool ended = !h.tokens.empty() && tokenizer.is_end_of_generation(h.tokens.back());
    std::string text = tokenizer.decode(std::span<const TokenId>(h.tokens).first(h.tokens.size() - (ended ? 1 : 0)));
    std::string finish = ended ? "stop" : "length";
    size_t cut = std::string::npos;
    for (const auto& stop : request.stop) {
      if (!stop.empty()) cut = std::min(cut, text.find(stop));
    }
    if (cut != std::string::npos) {
      text.resize(cut);
      finish = "stop";
    }
    if (trim_leading_space) text = std::string(without_leading_space(text));  // as sampled answers are
    choices.push_back({text, finish});
    completion_tokens += h.tokens.size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  metrics.tokens(prompt.size(), completion_tokens);
  metrics.latency(seconds, seconds);  // the text comes all at once
  const json body = server::completion_response(request, id, created, choices, prompt.size(), completion_tokens);
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
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
  if (options.precision != KvPrecision::F32) {
    throw Error("frugal serve keeps keys and values in F32 (its shared-prefix store); leave out --cache-type f16");
  }
  SchedulerOptions batching;
  batching.parallel = options.parallel;
  batching.context = options.context;
  batching.cache_bytes = options.prefix_cache_bytes;
  batching.before_step = [this] { step_mark = meter.mark(); };
  batching.after_step = [this] { metrics.add_joules(meter.joules_since(step_mark), meter.measured()); };
  scheduler = std::make_unique<GenerationScheduler>(model, tokenizer, batching);
  knowledge = std::make_unique<KnowledgeStore>(model, tokenizer, *scheduler);
  for (const auto& [name, path] : options.knowledge) {
    if (name.empty() || name.find('@') != std::string::npos || knowledge->contains(name)) {
      throw Error(fmt::format("knowledge cache name '{}' is empty, repeated or contains '@'", name));
    }
    KnowledgeLoadOptions load;
    load.context = std::max<int64_t>(options.context, 0);
    knowledge->add(name, path, load);  // its keys and values go into the store; the file is closed again
  }
  // Connections beyond the generating and waiting requests only wait for a
  // thread; enough threads that admitted requests never do.
  const size_t threads = options.parallel + options.queue_limit + 4;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
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
  if (impl_->scheduler) impl_->scheduler->stop();  // answers in flight end as cancelled
  impl_->http.stop();
}

}  // namespace frugal
