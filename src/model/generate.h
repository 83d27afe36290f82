// Batched text generation over a KV cache: prefill the prompts, then decode one token per step.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/sampler.h"
#include "model/streaming_text.h"
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

struct GenerationStats {
  int64_t prompt_tokens = 0;     // real prompt tokens (padding excluded)
  int64_t generated_tokens = 0;  // tokens chosen for unfinished rows
  double prefill_seconds = 0;    // start to the first tokens chosen (time to first token)
  double decode_seconds = 0;     // the rest
};

struct GenerateOptions {
  const Tokenizer* tokenizer = nullptr;  // for text and stop strings
  // Called for every generated token as it is chosen: (row, id).
  std::function<void(size_t, int64_t)> on_token;
  // Decode with fixed shapes (StaticDecoder); required for cuda_graph, and equal to the dynamic path.
  bool static_decode = false;
  bool cuda_graph = false;  // capture the static step in a CUDA graph (CUDA builds and devices only)
  GenerationStats* stats = nullptr;
};

struct GenerationResult {
  std::vector<int64_t> tokens;  // generated ids; a final eos is included, as HF's generate returns it
  std::string text;             // decoded, without eos and cut before a stop string (empty without tokenizer)
  FinishReason finish = FinishReason::Length;
};

// Runs all requests as one left-padded batch; each row has its own positions, padding keys are masked, and
// each row samples from its own seeded stream, so a request gives the same tokens alone or in a batch.
std::vector<GenerationResult> generate(const Model& m, const std::vector<GenerationRequest>& requests,
                                       const GenerateOptions& options = {});

}  // namespace chatmill::model
