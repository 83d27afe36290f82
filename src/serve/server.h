// `chatmill serve`: an OpenAI-compatible HTTP server (cpp-httplib) over the continuous-batching engine.
//   POST /v1/chat/completions, POST /v1/completions (streamed as server-sent events or not), GET /v1/models,
//   GET /health (with the engine's counters).
// Binds 127.0.0.1 by default; optional Bearer key; limits on body size, max_tokens and requests in flight
// (over the limit: HTTP 429, never a crash); stop() stops accepting and lets the requests in flight finish.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "data/chat_template.h"
#include "infer/engine.h"
#include "model/tokenizer.h"

namespace httplib {
class Server;
}

namespace chatmill::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                    // 0: any free port (see Server::port())
  std::string model_name = "chatmill";
  std::string api_key;                // empty: no authentication
  size_t max_body_bytes = 1 << 20;
  int64_t max_tokens_limit = 0;       // a request asking more gets HTTP 400; 0: the context
  int64_t max_in_flight = 64;         // more concurrent requests get HTTP 429
  std::string chat_template = "vicuna_v1.1";
};

class Server {
 public:
  Server(infer::Engine& engine, const model::Tokenizer& tok, ServerOptions o);
  ~Server();
  // Binds; returns the port (the chosen one when o.port is 0). Throws chatmill::Error when it cannot bind.
  int bind();
  // Serves until stop(); returns once the requests in flight have finished.
  void run();
  void stop();
  // Graceful: new requests get HTTP 503 while those in flight finish (up to `timeout`), then stop().
  void drain_and_stop(std::chrono::milliseconds timeout);
  int port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace chatmill::serve
