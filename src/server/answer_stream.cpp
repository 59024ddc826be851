#include "server/answer_stream.h"

#include <condition_variable>
#include <deque>
#include <mutex>

#include "server/server_impl.h"

namespace frugal::server {

namespace {

constexpr auto kClientCheck = std::chrono::milliseconds(50);

struct Channel {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<std::string, bool>> pieces;  // text, is thinking
  bool finished = false;
};

}  // namespace

GenerationResult answer_whole(GenerationScheduler& scheduler, GenerationJob job) {
  auto cancel = job.cancel ? job.cancel : std::make_shared<std::atomic<bool>>(false);
  job.cancel = cancel;
  std::future<GenerationResult> future = scheduler.submit(std::move(job));
  while (future.wait_for(kClientCheck) != std::future_status::ready) {
    if (!cancel->load() && client_gone()) cancel->store(true);
  }
  GenerationResult result = future.get();
  if (result.stop_reason == StopReason::Cancelled) {
    throw ApiError(499, "invalid_request_error", "the client closed the connection before the answer ended");
  }
  return result;
}

void stream_answer(GenerationScheduler& scheduler, GenerationJob job, AnswerStreamFormat format,
                   httplib::Response& response) {
  auto channel = std::make_shared<Channel>();
  auto cancel = job.cancel ? job.cancel : std::make_shared<std::atomic<bool>>(false);
  job.cancel = cancel;
  auto pass_on = [channel, cancel](std::string_view text, bool thinking) {
    {
      std::lock_guard lock(channel->mutex);
      channel->pieces.emplace_back(std::string(text), thinking);
    }
    channel->wake.notify_one();
    return !cancel->load();
  };
  job.on_text = [pass_on](std::string_view text) { return pass_on(text, false); };
  job.options.on_thinking = [pass_on](std::string_view text) { return pass_on(text, true); };
  job.on_finish = [channel, finish = job.on_finish](const GenerationResult* result) {
    if (finish) finish(result);
    {
      std::lock_guard lock(channel->mutex);
      channel->finished = true;
    }
    channel->wake.notify_one();
  };
  auto future = std::make_shared<std::future<GenerationResult>>(scheduler.submit(std::move(job)));
  response.set_header("Cache-Control", "no-cache");
  auto provider = [channel, cancel, future, format](size_t, httplib::DataSink& sink) {
    auto send = [&](const std::string& bytes) {
      if (bytes.empty()) return true;
      if (sink.is_writable() && sink.write(bytes.data(), bytes.size())) return true;
      cancel->store(true);  // the client went away
      return false;
    };
    if (format.start && !send(format.start())) return false;
    for (;;) {
      std::deque<std::pair<std::string, bool>> pieces;
      bool finished = false;
      {
        std::unique_lock lock(channel->mutex);
        while (!channel->finished && channel->pieces.empty()) {
          if (channel->wake.wait_for(lock, kClientCheck) == std::cv_status::timeout && client_gone()) {
            cancel->store(true);
            return false;
          }
        }
        pieces.swap(channel->pieces);
        finished = channel->finished;
      }
      for (const auto& [text, thinking] : pieces) {
        if (!send(format.piece(text, thinking))) return false;
      }
      if (finished) break;
    }
    GenerationResult result;
    try {
      result = future->get();
    } catch (const std::exception& e) {
      send(format.error(e.what()));
      sink.done();
      return false;
    }
    if (result.stop_reason == StopReason::Cancelled) {
      send(format.error("the answer was cancelled before it ended"));
      sink.done();
      return false;
    }
    if (!send(format.end(result))) return false;
    sink.done();
    return true;
  };
  auto released = [cancel](bool success) {
    if (!success) cancel->store(true);
  };
  response.set_chunked_content_provider(format.content_type, std::move(provider), std::move(released));
}

}  // namespace frugal::server
