#include "server/guarded_http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "frugal/error.h"
#include "server/openai_api.h"

namespace frugal::server {

namespace {

using Clock = std::chrono::steady_clock;

// Set while the accepting thread turns a connection away (every thread busy):
// process_and_close_socket then only answers 503 and closes.
thread_local bool t_turn_away = false;
thread_local ClientConnection* t_connection = nullptr;

int poll_one(int fd, short events, int timeout_ms, short* revents = nullptr) {
  pollfd p{fd, events, 0};
  int n;
  do {
    n = ::poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  if (revents) *revents = p.revents;
  return n;
}

std::string address_of(int fd, bool peer, int* port = nullptr) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  const int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length)
                      : ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  if (rc != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    if (port) *port = ntohs(v4->sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    if (port) *port = ntohs(v6->sin6_port);
  }
  return text;
}

// A complete short response written without reading the request, for a
// connection turned away; then the connection is closed.
void refuse(int fd, int status, const char* reason, const std::string& message, const char* code) {
  const std::string body = error_body(ApiError(status, status == 429 ? "rate_limit_error" : "server_error", message,
                                               "", code));
  const std::string response = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n"
      "Retry-After: 1\r\n\r\n{}",
      status, reason, body.size(), body);
  [[maybe_unused]] const ssize_t n = ::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  // Read what the client already sent (without waiting) before closing:
  // closing with unread bytes resets the connection, and the client would
  // see "connection reset" instead of this answer.
  ::shutdown(fd, SHUT_WR);
  char drain[4096];
  for (size_t total = 0; total < (64u << 10);) {
    const ssize_t got = ::recv(fd, drain, sizeof drain, MSG_DONTWAIT);
    if (got <= 0) break;
    total += static_cast<size_t>(got);
  }
  ::close(fd);
}

// One client connection as httplib's Stream: buffered reads under the
// request's deadline and byte budget.
class ConnectionStream final : public httplib::Stream, public ClientConnection {
 public:
  ConnectionStream(int fd, const ConnectionLimits& limits, std::chrono::milliseconds write_timeout)
      : fd_(fd), limits_(limits), write_timeout_(write_timeout) {}

  // A new request starts with its first byte: the header deadline and the
  // byte budget start again.
  void begin_request() {
    deadline_ = Clock::now() + limits_.header_timeout;
    request_bytes_ = 0;
    over_budget_ = false;
    timed_out_ = false;
    read_failed_ = false;
  }
  // A request that could not be read whole (over budget, past its deadline,
  // a read error): its connection must not serve another, since what
  // follows in the stream may be the rest of this one.
  bool broken() const { return over_budget_ || timed_out_ || read_failed_; }
  bool has_buffered() const { return begin_ < end_; }

  // ClientConnection
  bool peer_closed() const override {
    short revents = 0;
    if (poll_one(fd_, POLLIN | POLLRDHUP, 0, &revents) <= 0) return false;
    if (revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
    char byte;
    return ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
  bool over_budget() const override { return over_budget_; }
  void headers_read() override { deadline_ = Clock::now() + limits_.body_timeout; }

  // httplib::Stream
  bool is_readable() const override { return has_buffered() || wait_for_request_bytes(); }
  bool is_writable() const override { return poll_one(fd_, POLLOUT, static_cast<int>(write_timeout_.count())) > 0; }

  ssize_t read(char* ptr, size_t size) override {
    if (size == 0) return 0;
    if (!has_buffered()) {
      if (request_bytes_ >= limits_.max_request_bytes) {
        over_budget_ = true;
        return -1;
      }
      if (!wait_for_request_bytes()) {
        read_failed_ = true;
        return -1;
      }
      const size_t want = std::min(sizeof(buffer_), limits_.max_request_bytes - request_bytes_);
      ssize_t n;
      do {
        n = ::recv(fd_, buffer_, want, 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        read_failed_ = true;
        return n < 0 ? -1 : 0;
      }
      begin_ = 0;
      end_ = static_cast<size_t>(n);
      request_bytes_ += static_cast<size_t>(n);
    }
    const size_t count = std::min(size, end_ - begin_);
    std::memcpy(ptr, buffer_ + begin_, count);
    begin_ += count;
    return static_cast<ssize_t>(count);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do {
      n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = address_of(fd_, true, &port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = address_of(fd_, false, &port); }
  socket_t socket() const override { return fd_; }

  bool wait_readable(std::chrono::milliseconds timeout) const {
    return poll_one(fd_, POLLIN, static_cast<int>(timeout.count())) > 0;
  }

 private:
  // Waits for more of the request, never past its deadline (httplib asks
  // is_readable() as well as read(), and each must keep the deadline).
  bool wait_for_request_bytes() const {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
    // The deadline alone bounds the wait: a slow upload may pause longer than
    // one read timeout as long as it ends in time.
    if (left.count() <= 0 || !wait_readable(left)) {
      if (Clock::now() >= deadline_) timed_out_ = true;
      return false;
    }
    return true;
  }

  int fd_;
  const ConnectionLimits& limits_;
  std::chrono::milliseconds write_timeout_;
  Clock::time_point deadline_{};
  size_t request_bytes_ = 0;
  bool over_budget_ = false, read_failed_ = false;
  mutable bool timed_out_ = false;
  char buffer_[4096];
  size_t begin_ = 0, end_ = 0;
};

// Threads for connections, made when every existing one is busy, up to a
// maximum; a connection that finds all of them busy is turned away at once
// (a queue would only make it wait behind stalled clients).
class ConnectionThreads final : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(size_t max_threads) : max_threads_(std::max<size_t>(max_threads, 1)) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> task) override {
    bool full = false;
    {
      std::lock_guard lock(mutex_);
      if (tasks_.size() >= idle_) {  // no idle thread left for this one
        full = threads_.size() >= max_threads_;
        if (!full) {
          try {
            threads_.emplace_back([this] { work(); });
          } catch (const std::system_error&) {
            full = true;  // the system allows no more threads (a pids limit): turn the connection away
          }
        }
      }
      if (!full) tasks_.push_back(std::move(task));
    }
    if (full) {
      t_turn_away = true;
      task();  // answers 503 and closes, without reading
      t_turn_away = false;
      return;
    }
    wake_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      --idle_;
      if (tasks_.empty()) return;  // stopping, nothing left
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  const size_t max_threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace

ClientConnection* current_client_connection() { return t_connection; }

GuardedHttpServer::GuardedHttpServer(ConnectionLimits limits) : limits_(limits) {
  const size_t threads = limits_.max_connections;
  new_task_queue = [threads] { return new ConnectionThreads(threads); };
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a
  // second server on the same port starts silently and takes half the
  // connections instead of failing.
  set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // The body's deadline starts once its headers are in.
  set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    if (auto* connection = current_client_connection()) connection->headers_read();
    return httplib::Server::HandlerResponse::Unhandled;
  });
}

void GuardedHttpServer::set_backlog(int connections) {
  if (svr_sock_ != INVALID_SOCKET) ::listen(svr_sock_, connections);  // Linux takes a new backlog this way
}

bool GuardedHttpServer::serving() const { return svr_sock_ != INVALID_SOCKET; }

bool GuardedHttpServer::add_client(const std::string& address) {
  std::lock_guard lock(clients_mutex_);
  size_t& open = clients_[address];
  if (open >= limits_.max_connections_per_client) {
    if (open == 0) clients_.erase(address);
    return false;
  }
  ++open;
  return true;
}

void GuardedHttpServer::remove_client(const std::string& address) {
  std::lock_guard lock(clients_mutex_);
  const auto it = clients_.find(address);
  if (it != clients_.end() && --it->second == 0) clients_.erase(it);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  if (t_turn_away) {
    refuse(sock, 503, "Service Unavailable", "the server has too many open connections; retry later",
           "too_many_connections");
    return false;
  }
  const std::string client = address_of(sock, true);
  if (!add_client(client)) {
    refuse(sock, 429, "Too Many Requests",
           fmt::format("too many open connections from {} (at most {}); retry later", client,
                       limits_.max_connections_per_client),
           "too_many_connections");
    return false;
  }
  using std::chrono::milliseconds;
  const auto write_timeout = milliseconds(write_timeout_sec_ * 1000 + write_timeout_usec_ / 1000);
  ConnectionStream stream(sock, limits_, write_timeout);
  t_connection = &stream;
  bool ok = false;
  // Keep-alive: up to keep_alive_max_count_ requests, each waited for at
  // most keep_alive_timeout_sec_ (in short slices, to notice a stop).
  for (size_t left = keep_alive_max_count_; left > 0 && serving(); --left) {
    bool ready = stream.has_buffered();
    for (auto waited = std::chrono::milliseconds(0);
         !ready && serving() && waited < std::chrono::seconds(keep_alive_timeout_sec_);
         waited += std::chrono::milliseconds(100)) {
      ready = stream.wait_readable(std::chrono::milliseconds(100));
    }
    if (!ready || !serving()) break;
    stream.begin_request();
    bool connection_closed = false;
    ok = process_request(stream, left == 1, connection_closed, nullptr);
    if (!ok || connection_closed || stream.broken()) break;
  }
  t_connection = nullptr;
  remove_client(client);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

namespace {

// Why binding `host`:`port` fails, in words a user can act on (httplib only
// says that it failed).
std::string bind_failure(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return fmt::format("cannot listen on {}: not an address or a known host name ({}); give --host an address of "
                       "this machine, such as 127.0.0.1 or 0.0.0.0",
                       host, ::gai_strerror(rc));
  }
  int error = 0;
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    const int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    const bool bound = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    error = bound ? 0 : errno;
    ::close(fd);
    if (bound) break;
  }
  ::freeaddrinfo(found);
  switch (error) {
    case EADDRINUSE:
      return fmt::format("cannot listen on {}:{}: the port is in use (another server?); choose another with --port",
                         host, port);
    case EADDRNOTAVAIL:
      return fmt::format("cannot listen on {}:{}: {} is not an address of this machine; give --host one of its "
                         "addresses, 127.0.0.1 or 0.0.0.0",
                         host, port, host);
    case EACCES:
      return fmt::format("cannot listen on {}:{}: ports below 1024 need privileges; choose a port from 1024 up with "
                         "--port",
                         host, port);
    default:
      return fmt::format("cannot listen on {}:{}: {}", host, port, error ? std::strerror(error) : "unknown error");
  }
}

}  // namespace

void write_http_error(const httplib::Request& request, httplib::Response& response) {
  if (!response.body.empty()) return;
  // A body cut off by the byte budget (a chunked one: its length was not
  // known before) is too large, not malformed.
  if (const auto* connection = current_client_connection(); connection && connection->over_budget()) {
    response.status = 413;
  }
  const std::string message = response.status == 404   ? fmt::format("no route {} {}", request.method, request.path)
                              : response.status == 413 ? "the request body is too large"
                                                       : "the request could not be handled";
  response.set_content(error_body(ApiError(response.status, "invalid_request_error", message)), "application/json");
}

int bind_listener(GuardedHttpServer& http, const std::string& host, int port, size_t max_connections) {
  if (host.empty()) throw Error("--host is empty; give an address such as 127.0.0.1 or 0.0.0.0");
  const int bound = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound < 0) throw Error(bind_failure(host, port));
  http.set_backlog(static_cast<int>(std::min<size_t>(max_connections * 2, 4096)));
  return bound;
}

}  // namespace frugal::server
