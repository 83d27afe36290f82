// Next-token choice: greedy, or temperature -> top-k -> top-p -> draw (the order HF applies its warpers).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <vector>

namespace chatmill::model {

struct SamplingParams {
  double temperature = 0.0;  // below 1e-5: greedy (argmax)
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  bool greedy() const { return temperature < 1e-5; }
  void validate() const;     // throws chatmill::Error naming the bad value
};

// A per-sequence random stream: the same seed gives the same draws whatever else is in the batch.
class SequenceRng {
 public:
  explicit SequenceRng(uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  std::mt19937_64 engine_;
};

// Applies temperature, top-k and top-p to logits (B, V) float32: removed entries become -inf.
at::Tensor warp_logits(const at::Tensor& logits, const SamplingParams& p);

// logits: (B, V) float32 -> token ids (B) int64 on the CPU. `uniforms` holds one draw in [0, 1) per row
// (ignored when greedy): the token is the one whose cumulative probability first exceeds the draw.
std::vector<int64_t> sample_tokens(const at::Tensor& logits, const SamplingParams& p, const std::vector<double>& uniforms);

}  // namespace chatmill::model
