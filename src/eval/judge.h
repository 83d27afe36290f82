// Judges: a model that reads a system prompt and a user prompt and answers. Either a model chatmill loads
// (run in this process), or any OpenAI-compatible chat endpoint over HTTP.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace chatmill::eval {

struct JudgeRequest {
  std::string system;
  std::string user;
  double temperature = 0.0;
  int64_t max_tokens = 2048;
};

struct JudgeReply {
  std::string text;
  std::string error;  // non-empty when this request failed (after retries); the others stand
};

class Judge {
 public:
  virtual ~Judge() = default;
  virtual std::string name() const = 0;  // recorded with every judgment and part of the cache key
  // One reply per request, in order; a request that fails says so in its reply without losing the others.
  virtual std::vector<JudgeReply> complete(const std::vector<JudgeRequest>& requests) = 0;
};

// A model in this process, prompted through its chat template (greedy when temperature is 0).
std::unique_ptr<Judge> make_local_judge(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl,
                                        std::string name, int64_t batch_size = 8);

struct HttpJudgeOptions {
  std::string base_url;        // e.g. http://127.0.0.1:8000/v1 (POSTs to {base_url}/chat/completions)
  std::string model;           // the "model" field of the requests
  std::string api_key_env;     // name of the environment variable holding the key (empty: none)
  double timeout_s = 120;      // per request
  int retries = 3;             // on connection errors, timeouts, 429 and 5xx, with exponential backoff
  double backoff_s = 1.0;
  int concurrency = 4;         // requests in flight
};

std::unique_ptr<Judge> make_http_judge(const HttpJudgeOptions& o);

}  // namespace chatmill::eval
