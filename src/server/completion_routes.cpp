// POST /v1/chat/completions and /v1/completions: the prompt, admission,
// sampled answers through the batch scheduler (whole or streamed), beam
// answers, and cancellation when the client goes away or the server stops.
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/beam_search.h"
#include "frugal/chat.h"
#include "frugal/error.h"
#include "frugal/grammar.h"
#include "frugal/generate.h"
#include "frugal/generation_text.h"
#include "frugal/tools.h"
#include "server/server_impl.h"

namespace frugal {

using server::ApiError;
using server::CompletionRequest;
using server::finish_reason;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace server {

Admission::Admission(std::atomic<size_t>& in_flight, size_t limit, size_t sequences)
    : in_flight_(in_flight), sequences_(sequences) {
  if (in_flight_.fetch_add(sequences_) + sequences_ > limit) {
    in_flight_.fetch_sub(sequences_);
    throw ApiError(429, "rate_limit_error", "the server is busy: too many requests are waiting; retry later", "",
                   "queue_full");
  }
}

}  // namespace server

namespace {

// How often a waiting connection thread looks whether its client is still there.
constexpr auto kClientCheck = std::chrono::milliseconds(50);

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

ApiError shutting_down() { return ApiError(503, "server_error", "the server is shutting down; retry later"); }

// Text of one streamed answer, handed from the scheduler thread to the
// connection's thread (a slow client never holds up the batch).
struct StreamChannel {
  std::mutex mutex;
  std::condition_variable wake;
  // Each piece of text with the log-probabilities of the tokens sampled
  // since the last piece (when asked for).
  struct Piece {
    std::string text;
    std::vector<TokenLogprob> logprobs;
    bool thinking = false;  // delta.reasoning_content
  };
  std::deque<Piece> pieces;
  std::vector<TokenLogprob> pending;  // tokens whose text is not out yet
  bool finished = false;
};

}  // namespace

server::PreparedAnswer Server::Impl::prepare(const CompletionRequest& request) {
  const bool chat = request.chat;
  std::string knowledge_name;  // empty: the model itself, no knowledge cache
  auto no_such_model = [&] {
    return ApiError(404, "invalid_request_error",
                    fmt::format("the model '{}' does not exist; GET /v1/models lists them", request.model), "model",
                    "model_not_found");
  };
  // MODEL+ADAPTER: that adapter alone, at its loaded scale.
  std::vector<float> lora_scales = adapter_scales(request);
  if (request.model != options.model_name && lora_scales.empty()) {
    const auto at = request.model.find('@');
    if (at == std::string::npos || request.model.substr(0, at) != options.model_name) throw no_such_model();
    knowledge_name = request.model.substr(at + 1);
  }
  if (!lora_scales.empty() && request.beam_width > 1) {
    throw server::invalid_request("beam search answers use the adapters as loaded; leave out lora (or beam_width)",
                                  request.lora ? "lora" : "model");
  }
  const bool kb = !knowledge_name.empty();
  // Tools, earlier calls or their results: the chat is written in the
  // model's tool format, which it must have.
  bool uses_tools = chat && !request.tools.empty();
  for (const ChatMessage& message : request.messages) {
    uses_tools = uses_tools || message.role == "tool" || !message.tool_calls.empty();
  }
  if (uses_tools && kb) {
    throw server::invalid_request("tools are not available over a knowledge cache; ask the model itself",
                                  request.tools.empty() ? "messages" : "tools");
  }
  if (uses_tools && !tool_format) {
    throw server::invalid_request(
        "this model's chat template defines no tool calls; leave tools and tool messages out (or start the server "
        "with --chat-template qwen2.5 or llama3.1 if the model was trained on that format)",
        request.tools.empty() ? "messages" : "tools");
  }
  // The prompt: a chat in the model's format, a plain prompt, or (over a
  // knowledge cache) its knowledge and then the question.
  std::vector<TokenId> prompt;
  if (kb) {
    std::string question;
    if (chat) {
      for (auto it = request.messages.rbegin(); it != request.messages.rend() && question.empty(); ++it) {
        if (it->role == "user") question = it->content;
      }
    } else {
      question = request.prompt;
    }
    auto knowledge_tokens = knowledge_prompt(knowledge_name, question);
    if (!knowledge_tokens) throw no_such_model();
    if (chat && question.empty()) throw server::invalid_request("a knowledge model needs a user message", "messages");
    prompt = std::move(*knowledge_tokens);
    metrics.knowledge_request(knowledge_name);
  } else if (chat && uses_tools) {
    try {
      prompt = encode_tool_chat(tokenizer, render_tool_chat(chat_format, *tool_format, request.messages,
                                                            request.may_call_tools()
                                                                ? std::span(request.tools)
                                                                : std::span<const ToolDefinition>(),
                                                            true));
    } catch (const Error& e) {
      throw server::invalid_request(e.what(), "messages");
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
  const size_t prompt_tokens = prompt.size();
  if (static_cast<int64_t>(prompt_tokens) >= options.context || prompt.empty()) {
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt has {} tokens; this model's context holds {}", prompt_tokens,
                               options.context),
                   chat ? "messages" : "prompt", "context_length_exceeded");
  }
  // What is left of the context bounds an answer; a request without
  // max_tokens gets all of it.
  const int64_t room = options.context - static_cast<int64_t>(prompt_tokens);
  const int64_t answer_tokens = request.max_tokens < 0 ? room : std::min<int64_t>(request.max_tokens, room);
  if (request.beam_width > 1 && request.beam_width * answer_tokens > options.max_beam_tokens) {
    throw server::invalid_request(
        fmt::format("beam_width x max_tokens is {} x {}; this server allows at most {} (lower either, or give "
                    "max_tokens)",
                    request.beam_width, answer_tokens, options.max_beam_tokens),
        "beam_width");
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
  generation.logprobs = request.logprobs;
  generation.grammar = request.grammar;
  std::optional<ToolCallFormat> parsed_calls;
  if (uses_tools && request.may_call_tools()) {
    parsed_calls = tool_format;
    if (request.forces_tool_call()) {
      try {
        generation.grammar = Grammar::parse(tool_call_grammar(*tool_format, request.tools, request.tool_choice_function));
      } catch (const Error& e) {
        throw server::invalid_request(e.what(), "tools");
      }
    } else if (!request.parallel_tool_calls && *tool_format == ToolCallFormat::Hermes) {
      generation.stop_strings.push_back("</tool_call>");  // one call, then the answer ends
    }
  }
  if (chat && request.beam_width == 1) {
    try {
      generation.thinking = make_thinking_options(
          thinking_format, server::thinking_settings(request, options.thinking, thinking_format), tokenizer);
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      throw server::invalid_request(e.what(), "reasoning_exit");
    }
    if (generation.grammar && generation.thinking.parse && generation.thinking.prompt_suffix.empty()) {
      throw server::invalid_request("structured output (or a forced tool call) from a thinking model needs "
                                    "thinking off: add chat_template_kwargs: {enable_thinking: false} (or "
                                    "reasoning_effort: none)",
                                    request.grammar ? request.grammar_field : "tool_choice");
    }
  }
  if (options.context_shift) {
    generation.context_shift = true;
    generation.context_shift_keep = options.context_shift_keep;
    // Without max_tokens an answer stays bounded by the context, as it is
    // without the shift; with it, it may run past the context.
    if (request.max_tokens < 0) generation.max_tokens = static_cast<int32_t>(room);
  }
  // The thinking-off block is appended to the prompt: it must fit and is counted.
  const size_t suffix = generation.thinking.prompt_suffix.size();
  if (suffix > 0 && static_cast<int64_t>(prompt_tokens + suffix) >= options.context) {
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt has {} tokens with the empty thinking block; this model's context holds {}",
                               prompt_tokens + suffix, options.context),
                   chat ? "messages" : "prompt", "context_length_exceeded");
  }
  return {std::move(prompt), std::move(generation), kb,           prompt_tokens + suffix,
          answer_tokens,     parsed_calls,          std::move(lora_scales)};
}

void Server::Impl::completions(const httplib::Request& http_request, httplib::Response& response, bool chat) {
  const auto start = Clock::now();
  check_key(http_request);
  const CompletionRequest request = server::parse_completion_request(http_request.body, chat);
  server::PreparedAnswer prepared = prepare(request);
  const std::vector<TokenId>& prompt = prepared.prompt;
  GenerationOptions& generation = prepared.generation;
  const size_t prompt_tokens = prepared.prompt_tokens;
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id.fetch_add(1));
  const int64_t created = unix_now();
  const std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";

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
    if (stopping) throw shutting_down();
    try {
      return scheduler->submit(std::move(job));
    } catch (const Error&) {
      if (stopping) throw shutting_down();
      throw;
    }
  };

  // Admission counts sequences: the n choices of a request are n of them (a
  // beam search, which runs beside the batch, is one).
  const size_t sequences = request.beam_width > 1 ? 1 : static_cast<size_t>(request.n);
  const size_t admitted = options.queue_limit + options.parallel;
  if (sequences > admitted) {
    throw server::invalid_request(fmt::format("n = {} is more answers than this server admits at once ({})",
                                              request.n, admitted),
                                  "n");
  }
  auto admission = std::make_shared<server::Admission>(in_flight, admitted, sequences);
  if (request.beam_width > 1) {
    beam_completion(request, prompt, generation.trim_leading_space, id, created, response);
    metrics.request(endpoint, 200);
    return;
  }
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  if (!request.stream) {
    // The n choices are n sequences of the batch, sharing the prompt's keys
    // and values, all cancelled if the client hangs up before they end.
    std::vector<std::future<GenerationResult>> futures;
    // Whatever ends this request early (an error, a hang-up) cancels the
    // answers still running; each holds its admission until it has ended.
    struct CancelUnlessDone {
      std::shared_ptr<std::atomic<bool>> flag;
      bool done = false;
      ~CancelUnlessDone() {
        if (!done) flag->store(true);
      }
    } cancel_unless_done{cancel};
    for (int i = 0; i < request.n; ++i) {
      GenerationJob job{prompt, generation};
      job.lora_scales = prepared.lora_scales;
      job.on_finish = [account, admission](const GenerationResult* result) { account(result); };
      job.cancel = cancel;
      futures.push_back(submit(std::move(job)));
      if (generation.sampling.seed != SamplingParams{}.seed) ++generation.sampling.seed;  // n distinct samples
    }
    std::vector<server::Choice> choices;
    size_t completion_tokens = 0;
    // Cached tokens: what the scheduler found stored (a knowledge prefix and more).
    server::Timings timings{prompt_tokens};
    for (auto& future : futures) {
      while (future.wait_for(kClientCheck) != std::future_status::ready) {
        if (!cancel->load() && server::client_gone()) cancel->store(true);
      }
      const GenerationResult result = future.get();
      if (result.stop_reason == StopReason::Cancelled) {
        if (stopping) throw shutting_down();
        throw ApiError(499, "invalid_request_error", "the client closed the connection before the answer ended");
      }
      server::Choice choice{result.text, finish_reason(result.stop_reason), result.context_shifts,
                            request.logprobs >= 0 ? server::logprobs_json(request, tokenizer, result.logprobs)
                                                  : json(nullptr),
                            generation.thinking.parse ? std::optional(result.thinking) : std::nullopt,
                            result.thinking_tokens};
      if (prepared.tool_calls) {
        ParsedToolAnswer parsed = parse_tool_calls(*prepared.tool_calls, request.tools, result.text,
                                                   fmt::format("call_{}_{}", id, choices.size()));
        // A forced call cut short (max_tokens) is no text either: its markup is dropped.
        choice.text = request.forces_tool_call() ? std::string() : std::move(parsed.text);
        choice.tool_calls = std::move(parsed.calls);
        choice.finish_reason = finish_reason(result.stop_reason, !choice.tool_calls.empty());
      }
      choices.push_back(std::move(choice));
      completion_tokens += result.tokens.size();
      if (choices.size() == 1) {
        timings.first_token_seconds =
            std::chrono::duration<double>(submitted - start).count() + result.first_token_seconds;
        timings.generation_seconds = result.generation_seconds;
        timings.completion_tokens = result.tokens.size();
        timings.energy_joules = result.energy_joules;
        timings.cached_tokens = result.cached_tokens;
        timings.context_shifts = result.context_shifts;
        timings.probes = result.probes;
        timings.probe_tokens = result.probe_tokens;
      }
    }
    cancel_unless_done.done = true;
    json body = server::completion_response(request, id, created, choices, prompt_tokens, completion_tokens);
    if (timings.cached_tokens > 0) body["usage"]["prompt_tokens_details"] = {{"cached_tokens", timings.cached_tokens}};
    body["timings"] = timings.to_json();  // of the first choice
    response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics.request(endpoint, 200);
    return;
  }
  // Streaming: the scheduler thread puts each piece in a channel; this
  // connection's thread writes it as an SSE chunk. A client that goes away
  // (a failed write, a hang-up seen while waiting, a response never begun)
  // cancels the sequence.
  auto channel = std::make_shared<StreamChannel>();
  if (request.logprobs >= 0) {
    generation.on_logprob = [channel](const TokenLogprob& logprob) {
      std::lock_guard lock(channel->mutex);
      channel->pending.push_back(logprob);
    };
  }
  GenerationJob job{prompt, generation};
  job.lora_scales = prepared.lora_scales;
  job.cancel = cancel;
  auto pass_on = [channel, cancel](std::string_view text, bool thinking) {
    {
      std::lock_guard lock(channel->mutex);
      channel->pieces.push_back({std::string(text), std::move(channel->pending), thinking});
      channel->pending.clear();
    }
    channel->wake.notify_one();
    return !cancel->load();
  };
  job.on_text = [pass_on](std::string_view text) { return pass_on(text, false); };
  job.options.on_thinking = [pass_on](std::string_view text) { return pass_on(text, true); };
  // The admission is held until the answer has ended, not only while its
  // client reads: an abandoned stream still counts until it leaves the engine.
  job.on_finish = [channel, account, admission](const GenerationResult* result) {
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
  const double queued = std::chrono::duration<double>(submitted - start).count();
  const bool thinking = generation.thinking.parse;
  std::shared_ptr<ToolCallParser> tool_calls;  // the answer's text split into text and calls
  if (prepared.tool_calls) {
    tool_calls = std::make_shared<ToolCallParser>(*prepared.tool_calls, request.tools, fmt::format("call_{}_0", id));
  }
  auto provider = [this, admission, channel, cancel, future, request, id, created, prompt_tokens, queued,
                   thinking, tool_calls](size_t, httplib::DataSink& sink) {
    bool first = true;
    // Text and calls out of the tool-call parser: text as content, each call as a delta of its own.
    auto send_tool_parts = [&](const std::string& text, auto& send) {
      if (!text.empty()) {
        if (!send(server::stream_chunk(request, id, created, text, "", first))) return false;
        first = false;
      }
      const size_t sent_calls = tool_calls->call_count();
      const std::vector<ToolCall> calls = tool_calls->take_calls();
      if (calls.empty()) return true;
      if (!send(server::tool_calls_chunk(request, id, created, calls, sent_calls - calls.size(), first))) return false;
      first = false;
      return true;
    };
    size_t sent_characters = 0;  // completions' text_offset
    const auto logprobs_of = [&](const std::vector<TokenLogprob>& list) {
      if (request.logprobs < 0) return json(nullptr);
      return server::logprobs_json(request, tokenizer, list, sent_characters);
    };
    auto send = [&](const std::string& bytes) {
      if (sink.is_writable() && sink.write(bytes.data(), bytes.size())) return true;
      cancel->store(true);  // the client went away: drop the connection
      return false;
    };
    for (;;) {
      std::deque<StreamChannel::Piece> pieces;
      bool finished = false;
      {
        std::unique_lock lock(channel->mutex);
        while (!channel->finished && channel->pieces.empty()) {
          if (channel->wake.wait_for(lock, kClientCheck) == std::cv_status::timeout && server::client_gone()) {
            cancel->store(true);  // the first token may be far off (a long prompt): notice a hang-up now
            return false;
          }
        }
        pieces.swap(channel->pieces);
        finished = channel->finished;
      }
      for (const auto& piece : pieces) {
        if (tool_calls && !piece.thinking) {
          if (!send_tool_parts(tool_calls->feed(piece.text), send)) return false;
          continue;
        }
        if (!send(server::stream_chunk(request, id, created, piece.text, "", first, logprobs_of(piece.logprobs),
                                       piece.thinking))) {
          return false;
        }
        first = false;
        if (!piece.thinking) sent_characters += piece.text.size();
      }
      if (finished) break;
    }
    auto error_event = [&](const ApiError& error) {
      // Headers are gone: the error travels as a last event, and no [DONE]
      // follows, so that no client takes a cut answer for a whole one.
      send("data: " + server::error_body(error) + "\n\n");
      sink.done();
      return false;
    };
    GenerationResult result;
    try {
      result = future->get();
    } catch (const std::exception& e) {
      return error_event(ApiError(500, "server_error", e.what()));
    }
    if (result.stop_reason == StopReason::Cancelled) {
      return error_event(stopping ? shutting_down()
                                  : ApiError(500, "server_error", "the answer was cancelled before it ended"));
    }
    std::vector<TokenLogprob> rest;  // tokens whose text never came out alone (a held-back stop string)
    {
      std::lock_guard lock(channel->mutex);
      rest.swap(channel->pending);
    }
    if (tool_calls) {
      const std::string rest_text = tool_calls->finish();  // a forced call cut short: markup, not text
      if (!send_tool_parts(request.forces_tool_call() ? "" : rest_text, send)) {
        return false;
      }
    }
    const bool made_calls = tool_calls && tool_calls->call_count() > 0;
    if (!send(server::stream_chunk(request, id, created, "", finish_reason(result.stop_reason, made_calls), first,
                                   rest.empty() ? json(nullptr) : logprobs_of(rest)))) {
      return false;
    }
    if (request.include_usage) {
      server::Timings timings{prompt_tokens,         result.cached_tokens,
                                    result.tokens.size(),  queued + result.first_token_seconds,
                                    result.generation_seconds, result.energy_joules,
                                    result.context_shifts, result.probes, result.probe_tokens};
      if (thinking) timings.reasoning_tokens = result.thinking_tokens;
      if (!send(server::usage_chunk(request, id, created, timings))) return false;
    }
    if (!send("data: [DONE]\n\n")) return false;
    sink.done();
    return true;  // complete: the connection may be kept alive
  };
  // Called when the response is over; if it never began (the client left
  // before the headers went out), the answer is cancelled here.
  auto released = [cancel](bool success) {
    if (!success) cancel->store(true);
  };
  response.set_chunked_content_provider("text/event-stream", std::move(provider), std::move(released));
}

// beam_width > 1: a trie beam search whose forward passes run on the
// scheduler thread between batch steps, so batched answers go on meanwhile;
// the n best beams are the choices. The search reads the whole prompt, a
// knowledge prefix included (nothing is reported cached). Stop strings cut
// a beam's text after the search, which knows nothing of them.
void Server::Impl::beam_completion(const CompletionRequest& request, const std::vector<TokenId>& prompt,
                                   bool trim_leading_space, const std::string& id, int64_t created,
                                   httplib::Response& response) {
  BeamSearchOptions beam;
  beam.beam_width = request.beam_width;
  const int64_t room = options.context - static_cast<int64_t>(prompt.size());
  beam.max_new_tokens = static_cast<int>(request.max_tokens < 0 ? room : std::min<int64_t>(request.max_tokens, room));
  beam.num_return_sequences = request.n;
  beam.cache_precision = options.precision;
  beam.run_pass = [this](const std::function<void()>& pass) {
    std::future<void> done;
    try {
      done = scheduler->run_exclusive(pass);
    } catch (const Error&) {
      throw shutting_down();
    }
    done.get();
  };
  beam.cancelled = [this] { return stopping.load() || server::client_gone(); };
  const auto start = Clock::now();
  BeamSearchResult found;
  try {
    found = make_trie_beam_search()->run(model, tokenizer, prompt, beam);
  } catch (const BeamSearchCancelled&) {
    if (stopping) throw shutting_down();
    throw ApiError(499, "invalid_request_error", "the client closed the connection before the answer ended");
  } catch (const Error&) {
    if (stopping) throw shutting_down();
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

}  // namespace frugal
