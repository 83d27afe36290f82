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
#include "model/streaming_text.h"
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

// A token's bytes: its piece with SentencePiece's "▁" as a space, a byte piece as that byte.
std::string token_bytes(const model::Tokenizer& tok, int64_t id);
// A token as text in logprobs: its bytes, or for one byte of a longer character, "bytes:\xe2" as OpenAI
// writes it (a lone byte is no UTF-8 text; as a JSON key it would collide with others as U+FFFD).
std::string token_text(const model::Tokenizer& tok, int64_t id);

// Where each token starts, in characters, in the text a completion returns: the ids are decoded as they come
// (as the engine decodes its answer), from `base` on: the answer from the echoed prompt's length (utf8_length),
// or 0; kept across the chunks of a stream.
class TextOffsets {
 public:
  TextOffsets(const model::Tokenizer& tok, int64_t base);
  int64_t next(int64_t id);  // the offset of this token; then takes it

 private:
  model::StreamingText text_;
  int64_t at_;          // characters before the next token
  size_t counted_ = 0;  // bytes of text_ counted into at_
};

// Completions' "logprobs" object: tokens, token_logprobs, top_logprobs, text_offset. With `prompt` (echo: ids
// of the prompt and prompt_lp for ids 1..n-1), the prompt's tokens come first, from offset 0, the first one
// without a value; the generated ones are placed by `answer_offsets`. top_logprobs holds the k alternatives and
// the chosen token, as OpenAI's does.
nlohmann::ordered_json completion_logprobs_json(const model::Tokenizer& tok, const std::vector<int64_t>& prompt,
                                                const std::vector<model::TokenLogprob>& prompt_lp,
                                                const std::vector<model::TokenLogprob>& generated,
                                                TextOffsets& answer_offsets);
// Chat's "logprobs" object: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}.
nlohmann::ordered_json chat_logprobs_json(const model::Tokenizer& tok, const std::vector<model::TokenLogprob>& generated);

}  // namespace chatmill::serve
