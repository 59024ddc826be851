// One answer streamed to its client by the scheduler: the pieces of text
// go from the scheduler thread through a channel to the connection's
// thread, which writes them in the endpoint's own format (Responses events,
// Ollama's NDJSON). A client that goes away cancels the answer.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <string>

#include "frugal/generate.h"
#include "frugal/scheduler.h"
#include "server/openai_api.h"

namespace frugal::server {

struct AnswerStreamFormat {
  std::string content_type;
  std::function<std::string()> start;                                 // bytes before the first piece
  std::function<std::string(const std::string& text, bool thinking)> piece;
  std::function<std::string(const GenerationResult& result)> end;     // after the last piece
  std::function<std::string(const std::string& message)> error;       // the answer failed half way
};

// Submits `job` and waits for its whole answer, cancelling it if the client
// goes away meanwhile; ApiError 499 when it was cancelled.
GenerationResult answer_whole(GenerationScheduler& scheduler, GenerationJob job);

// Submits `job` (its on_text, on_thinking and cancel are set here; on_finish
// is kept and called) and sets `response` to stream it.
void stream_answer(GenerationScheduler& scheduler, GenerationJob job, AnswerStreamFormat format,
                   httplib::Response& response);

}  // namespace frugal::server
