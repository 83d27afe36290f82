// Chat models for evaluation: the model under test, a judge, a rater or a moderator. Either a model chatmill
// loads (run in this process, through its chat template), or any OpenAI-compatible chat endpoint over HTTP.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/chat_template.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace chatmill::eval {

struct ChatRequest {
  std::string system;
  std::vector<std::pair<std::string, std::string>> history;  // earlier (user, assistant) turns: shots, or turn 1
  std::string user;
  double temperature = 0.0;  // < 1e-4: greedy
  int64_t max_tokens = 2048;
  uint64_t seed = 0;         // for sampling (local models; sent to endpoints as "seed")
};

struct ChatReply {
  std::string text;
  std::string error;  // non-empty when this request failed (after retries); the others stand
};

class ChatModel {
 public:
  virtual ~ChatModel() = default;
  virtual std::string name() const = 0;  // recorded with every result and part of cache keys
  // One reply per request, in order; a request that fails says so in its reply without losing the others.
  virtual std::vector<ChatReply> complete(const std::vector<ChatRequest>& requests) = 0;
};

// A model in this process, prompted through its chat template; requests are generated in batches. `stop`
// (optional), polled while generating: true cancels the call's requests and throws chatmill::Interrupted.
std::unique_ptr<ChatModel> make_local_chat(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl,
                                           std::string name, int64_t batch_size = 8,
                                           std::function<bool()> stop = {});

// `inner` (kept by the caller) asked in slices of `slice` requests, `stop` polled before each: true throws
// chatmill::Interrupted. For judges and moderators outside the process during training's evaluation, where a
// stop signal must not wait for every answer.
std::unique_ptr<ChatModel> make_stoppable_chat(ChatModel& inner, std::function<bool()> stop, size_t slice = 16);

struct HttpChatOptions {
  std::string base_url;        // e.g. http://127.0.0.1:8000/v1 (POSTs to {base_url}/chat/completions)
  std::string model;           // the "model" field of the requests
  std::string api_key_env;     // name of the environment variable holding the key (empty: none)
  double timeout_s = 120;      // per request
  int retries = 3;             // on connection errors, timeouts, 429 and 5xx, with exponential backoff
  double backoff_s = 1.0;
  int concurrency = 4;         // requests in flight
  std::string name;            // default: model@base_url
};

std::unique_ptr<ChatModel> make_http_chat(const HttpChatOptions& o);

}  // namespace chatmill::eval
