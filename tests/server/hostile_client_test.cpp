// The server under abuse: clients that stall, send endless bodies, hang up
// mid-prompt or mid-answer, flood with connections, signals at start-up,
// shutdown during a stream, beam searches that would stall everyone. Each
// test fails on the server before it was hardened (issue #14).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "frugal/error.h"
#include "server/server_fixture.h"

namespace frugal {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A raw TCP connection to the server, from `source` (another loopback
// address stands for another client machine).
class RawClient {
 public:
  RawClient(int port, const char* source = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &local.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) ADD_FAILURE() << "bind " << source;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // What arrives within `timeout` (until the server closes, or `until` is seen).
  std::string receive(std::chrono::milliseconds timeout, const std::string& until = "") {
    std::string got;
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 1))) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) {
        closed_by_server_ = true;
        break;
      }
      got.append(buffer, static_cast<size_t>(n));
      if (!until.empty() && got.find(until) != std::string::npos) break;
    }
    return got;
  }
  bool closed_by_server() const { return closed_by_server_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_by_server_ = false;
};

std::string http_post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

class HostileClientTest : public test::ServerTest {
 protected:
  std::string metrics() { return client_->Get("/metrics")->body; }
  // The value of a metric line (0 when absent).
  double metric(const std::string& name) {
    const std::string text = metrics();
    const size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? 0 : std::stod(text.substr(at + name.size() + 2));
  }
  // Waits (bounded) until nothing runs or waits in the scheduler.
  bool engine_idle(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      const std::string text = metrics();
      if (text.find("frugal_requests_running 0") != std::string::npos &&
          text.find("frugal_requests_waiting 0") != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  static json long_chat(int max_tokens, bool stream) {
    json body = chat_body("Tell a long story.", stream);
    body["max_tokens"] = max_tokens;
    return body;
  }
};

TEST_F(HostileClientTest, AChunkedBodyOverTheLimitIsRefusedWithoutBeingRead) {
  ServerOptions options;
  options.max_body_bytes = 4096;
  start(options);
  RawClient raw(server_->port());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"));
  // 8 MiB in 64 KiB chunks; the server stops reading long before the end.
  const std::string piece(64 << 10, ' ');
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
  size_t sent = 0;
  for (int i = 0; i < 128; ++i) {
    if (!raw.send(size_line + piece + "\r\n")) break;  // the server closed the connection
    sent += piece.size();
  }
  const std::string reply = raw.receive(std::chrono::milliseconds(5000), "}}");
  EXPECT_NE(reply.find("413"), std::string::npos) << reply.substr(0, 200);
  EXPECT_NE(reply.find("too large"), std::string::npos) << reply.substr(0, 400);
  EXPECT_LT(sent, size_t{8} << 20) << "the whole body was read";
  EXPECT_EQ(client_->Get("/health")->status, 200);
}

TEST_F(HostileClientTest, StalledConnectionsLeaveHealthAndRequestsAnswered) {
  ServerOptions options;
  options.header_timeout_seconds = 2;
  start(options);
  // 300 connections from another address that send half their headers and stall.
  std::vector<std::unique_ptr<RawClient>> stalled;
  for (int i = 0; i < 300; ++i) {
    stalled.push_back(std::make_unique<RawClient>(server_->port(), "127.0.0.2"));
    ASSERT_TRUE(stalled.back()->connected());
    stalled.back()->send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  httplib::Client quick("127.0.0.1", server_->port());
  quick.set_connection_timeout(1, 0);
  quick.set_read_timeout(1, 0);
  const auto before = Clock::now();
  auto health = quick.Get("/health");
  ASSERT_TRUE(health) << "GET /health got no answer within 1 s";
  EXPECT_EQ(health->status, 200);
  auto answer = quick.Post("/v1/chat/completions", chat_body("hi").dump(), "application/json");
  ASSERT_TRUE(answer) << "a normal request got no answer within 1 s";
  EXPECT_EQ(answer->status, 200);
  EXPECT_LT(Clock::now() - before, std::chrono::seconds(2));
  // Beyond the per-client cap, connections were answered 429 at once; the
  // others are closed when their header deadline passes.
  size_t refused = 0, closed = 0;
  for (auto& client : stalled) {
    const std::string reply = client->receive(std::chrono::milliseconds(1), "}}");
    if (reply.find("429") != std::string::npos) ++refused;
  }
  EXPECT_EQ(refused, 300 - options.max_connections_per_client);
  const auto deadline = Clock::now() + std::chrono::seconds(6);  // the 2 s deadline, with room for a busy machine
  for (auto& client : stalled) {
    client->receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (client->closed_by_server()) ++closed;
  }
  EXPECT_EQ(closed, stalled.size()) << "stalled connections outlived the header deadline";
}

TEST_F(HostileClientTest, ConnectionsBeyondTheMaximumAreTurnedAwayAtOnce) {
  ServerOptions options;
  options.max_connections = 4;
  start(options);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawClient>(server_->port(), "127.0.0.3"));
    held.back()->send("GET /health HTTP/1.1\r\n");  // never finished
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  RawClient extra(server_->port(), "127.0.0.4");
  extra.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string reply = extra.receive(std::chrono::milliseconds(2000), "}}");
  EXPECT_NE(reply.find("503"), std::string::npos) << reply;
  EXPECT_NE(reply.find("too many open connections"), std::string::npos) << reply;
}

TEST_F(HostileClientTest, AWholeAnswerIsCancelledWhenItsClientHangsUp) {
  start();
  {
    RawClient raw(server_->port());
    ASSERT_TRUE(raw.send(http_post("/v1/chat/completions", long_chat(2000, false).dump())));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }  // hung up without reading
  ASSERT_TRUE(engine_idle()) << metrics();
  EXPECT_LT(metric("frugal_completion_tokens_total"), 1000) << metrics();
  EXPECT_EQ(post("/v1/chat/completions", chat_body("hi"))->status, 200);
}

TEST_F(HostileClientTest, AdmissionCountsSequencesNotRequests) {
  ServerOptions options;
  options.parallel = 1;
  options.queue_limit = 2;  // three sequences at once
  start(options);
  json four = chat_body("hi");
  four["n"] = 4;
  auto refused = post("/v1/chat/completions", four);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  EXPECT_EQ(json::parse(refused->body)["error"]["param"], "n");
  // One long answer running: a request for three more does not fit.
  std::thread slow([&] {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(60, 0);
    client.Post("/v1/chat/completions", long_chat(400, true).dump(), "application/json");
  });
  for (int i = 0; i < 500 && metric("frugal_requests_running") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  json three = chat_body("hi");
  three["n"] = 3;
  auto busy = post("/v1/chat/completions", three);
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 429);
  server_->stop();
  slow.join();
}

TEST_F(HostileClientTest, AnAbandonedWaitingStreamLeavesTheQueueAtOnce) {
  ServerOptions options;
  options.parallel = 1;
  options.queue_limit = 1;
  start(options);
  std::thread slow([&] {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(60, 0);
    client.Post("/v1/chat/completions", long_chat(2000, true).dump(), "application/json");
  });
  for (int i = 0; i < 500 && metric("frugal_requests_running") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    RawClient waiting(server_->port());
    ASSERT_TRUE(waiting.send(http_post("/v1/chat/completions", long_chat(50, true).dump())));
    for (int i = 0; i < 500 && metric("frugal_requests_waiting") < 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(metric("frugal_requests_waiting"), 1);
  }  // hangs up while waiting
  // It leaves the queue while the long answer still runs, and its place counts until then.
  bool left = false;
  for (int i = 0; i < 200 && !left; ++i) {
    left = metric("frugal_requests_waiting") == 0;
    if (!left) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(left) << metrics();
  EXPECT_EQ(metric("frugal_requests_running"), 1);
  server_->stop();
  slow.join();
}

TEST_F(HostileClientTest, ARequestWhoseBodyStallsClosesItsConnection) {
  ServerOptions options;
  options.body_timeout_seconds = 0.5;
  start(options);
  RawClient raw(server_->port());
  ASSERT_TRUE(raw.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 100\r\n\r\n{\"model\": "));
  raw.receive(std::chrono::milliseconds(1500));  // the error, once the body's deadline passed
  // Whatever comes next on that connection is never read as a new request.
  raw.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string after = raw.receive(std::chrono::milliseconds(500));
  EXPECT_EQ(after.find("\"status\""), std::string::npos) << after;
  EXPECT_TRUE(raw.closed_by_server());
}

TEST_F(HostileClientTest, AStreamCutByShutdownEndsWithAnErrorNotDone) {
  start();
  RawClient raw(server_->port());
  ASSERT_TRUE(raw.send(http_post("/v1/chat/completions", long_chat(2000, true).dump())));
  std::string got = raw.receive(std::chrono::milliseconds(5000), "data: ");
  ASSERT_NE(got.find("data: "), std::string::npos);
  server_->stop();
  got += raw.receive(std::chrono::milliseconds(5000));
  EXPECT_NE(got.find("shutting down"), std::string::npos) << got.substr(got.size() > 600 ? got.size() - 600 : 0);
  EXPECT_EQ(got.find("[DONE]"), std::string::npos);
  EXPECT_EQ(got.find("\"finish_reason\":\"stop\""), std::string::npos);
}

TEST_F(HostileClientTest, MetricsNeedTheKeyUnlessPublic) {
  ServerOptions options;
  options.api_key = "secret";
  start(options);
  EXPECT_EQ(client_->Get("/metrics")->status, 401);
  EXPECT_EQ(client_->Get("/metrics", {{"Authorization", "Bearer secreT"}})->status, 401);
  EXPECT_EQ(client_->Get("/metrics", {{"Authorization", "Bearer secret"}})->status, 200);
  EXPECT_EQ(client_->Get("/health")->status, 200);  // health stays open for load balancers
  server_->stop();
  thread_.join();
  options.metrics_public = true;
  start(options);
  EXPECT_EQ(client_->Get("/metrics")->status, 200);
}

TEST_F(HostileClientTest, AStopBeforeServingMakesServeReturn) {
  ServerOptions options;
  options.port = 0;
  Server server(*model_, *tokenizer_, options);
  server.bind();
  server.stop();  // as a signal during start-up would
  auto served = std::async(std::launch::async, [&] { server.serve(); });
  EXPECT_EQ(served.wait_for(std::chrono::seconds(5)), std::future_status::ready) << "serve() did not return";
  if (served.wait_for(std::chrono::seconds(0)) != std::future_status::ready) std::_Exit(1);  // it would hang
}

TEST_F(HostileClientTest, ASecondServerOnTheSamePortFails) {
  start();
  ServerOptions options;
  options.port = server_->port();
  Server second(*model_, *tokenizer_, options);
  try {
    second.bind();
    ADD_FAILURE() << "a second server bound the port in use";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the port is in use"), std::string::npos) << e.what();
  }
}

TEST_F(HostileClientTest, ASignalAtStartUpStopsTheServerProcess) {
  // frugal serve gets SIGINT at different moments of its start-up; it must
  // exit (cleanly) every time, never keep running deaf to signals.
  for (int delay_ms : {0, 3, 6, 10, 20, 40, 80}) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const std::string model = test::shared_path("models/mini-llama-spm-q8_0.gguf").string();
      ::execl(FRUGAL_BINARY, FRUGAL_BINARY, "serve", "-m", model.c_str(), "--port", "0", nullptr);
      std::_Exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGINT);
    int status = 0;
    pid_t done = 0;
    for (int i = 0; i < 1000 && done == 0; ++i) {  // 10 s
      done = ::waitpid(pid, &status, WNOHANG);
      if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (done == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "frugal serve ignored SIGINT sent " << delay_ms << " ms after launch";
      continue;
    }
    // Exit 0 after a clean stop, or killed by SIGINT if it came before the
    // server took the signals over.
    EXPECT_TRUE((WIFEXITED(status) && WEXITSTATUS(status) == 0) || (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT))
        << delay_ms << " ms: status " << status;
  }
}

TEST_F(HostileClientTest, BeamRequestsAreCappedCancelledAndStoppable) {
  start();
  json beam = chat_body("Tell a long story.");
  beam["beam_width"] = 16;
  beam["max_tokens"] = 1000;  // 16 000 beam tokens: over the cap
  auto refused = post("/v1/chat/completions", beam);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  EXPECT_EQ(json::parse(refused->body)["error"]["param"], "beam_width");
  // A client that hangs up stops its search.
  beam["max_tokens"] = 256;
  {
    RawClient raw(server_->port());
    ASSERT_TRUE(raw.send(http_post("/v1/chat/completions", beam.dump())));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (int i = 0; i < 500 && metrics().find("code=\"499\"") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(metrics().find("endpoint=\"/v1/chat/completions\",code=\"499\"} 1"), std::string::npos) << metrics();
  // A stop ends a running search at its next pass: 503, not a late 200.
  auto answer = std::async(std::launch::async, [&] {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(60, 0);
    return client.Post("/v1/chat/completions", beam.dump(), "application/json");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server_->stop();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto result = answer.get();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 503) << result->body;
}

TEST_F(HostileClientTest, StreamedAnswersGoOnDuringABeamSearch) {
  start();
  // A streamed answer and a beam search at once: pieces of the stream keep
  // arriving while the search runs (its passes alternate with batch steps).
  std::atomic<bool> beam_running{false}, beam_done{false};
  size_t during_beam = 0;
  auto stream = std::async(std::launch::async, [&] {
    return post_streaming(long_chat(2000, true), [&](const char*, size_t) {
      if (beam_running && !beam_done) ++during_beam;
    });
  });
  for (int i = 0; i < 500 && metric("frugal_requests_running") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  json beam = chat_body("Tell a long story.");
  beam["beam_width"] = 8;
  beam["max_tokens"] = 64;
  beam_running = true;
  auto r = post("/v1/chat/completions", beam);
  beam_done = true;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GT(during_beam, 5u) << "the stream stalled while the beam search ran";
  server_->stop();
  stream.wait();
}

}  // namespace
}  // namespace frugal
