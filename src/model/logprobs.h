// Log-probabilities of tokens under a model's own distribution: log_softmax of the raw logits, before
// temperature, top-k or top-p, as OpenAI's API and vLLM report them; with the k most likely alternatives.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace chatmill::model {

constexpr int64_t kMaxTopLogprobs = 20;

struct TokenLogprob {
  int64_t id = 0;
  double logprob = 0;
  std::vector<std::pair<int64_t, double>> top;  // the k most likely tokens there, most likely first
};

// logits: (L, V), any device and float dtype; ids: (L) the token whose log-probability each row gives. One
// host transfer for all rows.
std::vector<TokenLogprob> token_logprobs(const at::Tensor& logits, const std::vector<int64_t>& ids, int64_t k);

}  // namespace chatmill::model
