// Batched text generation over a KV cache: prefill the prompts, then decode one token per step.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/sampler.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace chatmill::model {

struct GenerationRequest {
  std::vector<int64_t> prompt;  // token ids, bos included when wanted
  SamplingParams sampling;
  uint64_t seed = 0;
  int64_t max_new_tokens = 128;
  std::vector<std::string> stop_strings;  // needs a tokenizer
  bool stop_on_eos = true;
};

enum class FinishReason { Eos, StopString, Length };
const char* finish_reason_name(FinishReason r);  // "eos", "stop", "length"

struct GenerationResult {
  std::vector<int64_t> tokens;  // generated ids; a final eos is included, as HF's generate returns it
  std::string text;             // decoded, without eos and cut before a stop string (empty without tokenizer)
  FinishReason finish = FinishReason::Length;
};

// Runs all requests as one left-padded batch; each row has its own positions, padding keys are masked, and
// each row samples from its own seeded stream, so a request gives the same tokens alone or in a batch.
// `on_token(row, id)` (optional) is called for every generated token as it is chosen.
std::vector<GenerationResult> generate(const Model& m, const std::vector<GenerationRequest>& requests,
                                       const Tokenizer* tokenizer = nullptr,
                                       const std::function<void(size_t, int64_t)>& on_token = {});

}  // namespace chatmill::model
