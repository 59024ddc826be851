// httplib's server, hardened against clients that stall, flood or hang up:
//  - each connection reads its request under deadlines (headers, then body)
//    and a byte budget that holds however the body arrives (chunked too);
//  - connections are served by threads made on demand up to a maximum, with
//    a cap per client address; beyond either, a connection gets a short 503
//    or 429 at once instead of waiting for a thread;
//  - a route can ask whether its client is still there (the socket is known
//    to the thread serving it), so abandoned work is cancelled.
// httplib (Debian's 0.11) has none of these; its connection loop is
// replaced here through its virtual process_and_close_socket, and requests
// are still parsed and routed by httplib itself.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

namespace frugal::server {

struct ConnectionLimits {
  size_t max_connections = 256;            // open at once; more get 503 at once
  size_t max_connections_per_client = 64;  // per remote address; more get 429 at once
  std::chrono::milliseconds header_timeout{10000};  // from a request's first byte to its last header
  std::chrono::milliseconds body_timeout{30000};    // from the last header to the body's end
  size_t max_request_bytes = (1 << 20) + (64 << 10);  // request line, headers and body together
};

// The connection the calling thread is serving, if any.
class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  // True when the client has hung up (or the connection broke). Never blocks.
  virtual bool peer_closed() const = 0;
  // True when the current request was cut off by the byte budget.
  virtual bool over_budget() const = 0;
  // The request's headers are read: from now on the body's deadline holds.
  virtual void headers_read() = 0;
};
ClientConnection* current_client_connection();

class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(ConnectionLimits limits);

  const ConnectionLimits& limits() const { return limits_; }
  // After binding: lets the kernel queue `connections` not yet accepted
  // (httplib listens with a backlog of 5, so a burst of clients would wait
  // in SYN retries of a second and more before they are even seen).
  void set_backlog(int connections);

 private:
  bool process_and_close_socket(socket_t sock) override;
  bool serving() const;
  // Counts a connection from `address`; false when that client has too many.
  bool add_client(const std::string& address);
  void remove_client(const std::string& address);

  ConnectionLimits limits_;
  std::mutex clients_mutex_;
  std::map<std::string, size_t> clients_;  // open connections per remote address
};

// httplib's own errors (an unknown path, a body too large) with an
// OpenAI-style body; a body cut off by the byte budget is a 413.
void write_http_error(const httplib::Request& request, httplib::Response& response);

// Binds `http` to host:port (0: any free port) and returns the port; throws
// an error that says why not in words a user can act on (the port is taken,
// the address is not this machine's, ...). `max_connections` sizes the
// kernel's queue of connections not yet accepted.
int bind_listener(GuardedHttpServer& http, const std::string& host, int port, size_t max_connections);

}  // namespace frugal::server
