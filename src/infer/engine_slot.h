// Engine::Slot, the state of one of the engine's slots: shared by engine.cpp (requests, tokens, events) and
// engine_step.cpp (the decode step's queue).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "infer/engine.h"
#include "model/streaming_text.h"

namespace chatmill::infer {

struct Engine::Slot {
  bool active = false;
  EngineRequest request;
  std::shared_ptr<RequestHandle> handle;
  std::unique_ptr<model::SequenceRng> rng;
  std::vector<int64_t> tokens, unsent_tokens;
  std::vector<model::TokenLogprob> unsent_logprobs, prompt_logprobs;
  int64_t length = 0;   // columns of this slot's cache row in use
  uint64_t epoch = 0;   // which request holds the slot: one more at each admission
  std::optional<model::StreamingText> text;  // with a tokenizer: the text so far
  size_t sent = 0;      // bytes of text already sent
  std::chrono::steady_clock::time_point submitted, first_token;
};

}  // namespace chatmill::infer
