// OpenAI-compatible request parsing and response bodies (chat completions, completions, errors), kept apart
// from the HTTP server so that each rule is tested on its own.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/record.h"
#include "infer/engine.h"
#include "model/logprobs.h"
#include "model/tokenizer.h"

namespace chatmill::serve {

// A client error: HTTP status, OpenAI error type, the offending parameter, a message that says how to fix it.
struct ApiError {
  int status = 400;
  std::string message, type = "invalid_request_error", param, code;
  nlohmann::ordered_json body() const;
};

struct ParsedRequest {
  bool chat = true;
  std::string model;
  data::Conversation conversation;  // chat
  struct Prompt {
    std::string text;          // encoded with bos by the server, unless
    std::vector<int64_t> ids;  // the prompt came as token ids
  };
  std::vector<Prompt> prompts;      // completions: one choice per prompt (OpenAI's list of prompts)
  std::optional<int64_t> max_tokens;
  infer::EngineRequest engine;      // sampling, seed, stops (prompt filled by the server)
  bool stream = false, include_usage = false;
  bool echo = false;  // completions: the prompt comes back before the completion (with its logprobs if asked)
};

// Parses and validates a request body (JSON text). `chat`: /v1/chat/completions, else /v1/completions.
// Returns the error instead when the body is not a valid request.
std::optional<ApiError> parse_request(const std::string& body, bool chat, ParsedRequest& out);

// "stop", "length" as the API names finish reasons.
const char* finish_reason(model::FinishReason r);

nlohmann::ordered_json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// A token as text in logprobs: its piece with SentencePiece's "▁" as a space and a byte piece as that byte.
std::string token_text(const model::Tokenizer& tok, int64_t id);

// Completions' "logprobs" object: tokens, token_logprobs, top_logprobs, text_offset. With `prompt` (echo: ids
// of the prompt and prompt_lp for ids 1..n-1), the prompt's tokens come first, the first one without a value.
nlohmann::ordered_json completion_logprobs_json(const model::Tokenizer& tok, const std::vector<int64_t>& prompt,
                                                const std::vector<model::TokenLogprob>& prompt_lp,
                                                const std::vector<model::TokenLogprob>& generated,
                                                int64_t first_offset = 0);  // text_offset of the first token
// Chat's "logprobs" object: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}.
nlohmann::ordered_json chat_logprobs_json(const model::Tokenizer& tok, const std::vector<model::TokenLogprob>& generated);

}  // namespace chatmill::serve
