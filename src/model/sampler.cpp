#include "model/sampler.h"

#include <ATen/ATen.h>

#include <limits>

#include "common/error.h"

namespace chatmill::model {

void SamplingParams::validate() const {
  CHATMILL_CHECK(temperature >= 0, "temperature must be >= 0, got ", temperature);
  CHATMILL_CHECK(top_k >= 0, "top_k must be >= 0 (0 turns it off), got ", top_k);
  CHATMILL_CHECK(top_p > 0 && top_p <= 1, "top_p must be in (0, 1], got ", top_p);
}

at::Tensor warp_logits(const at::Tensor& logits, const SamplingParams& p) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  at::Tensor scores = logits / p.temperature;
  if (p.top_k > 0 && p.top_k < scores.size(-1)) {
    at::Tensor kth = std::get<0>(at::topk(scores, p.top_k, -1)).narrow(-1, p.top_k - 1, 1);  // (B, 1)
    scores = scores.masked_fill(scores < kth, neg_inf);
  }
  if (p.top_p < 1.0) {
    auto [sorted, order] = at::sort(scores, -1, /*descending=*/false);
    at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove = cumulative <= (1.0 - p.top_p);
    remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);  // always keep the most likely token
    scores = scores.masked_fill(remove.scatter(-1, order, remove), neg_inf);
  }
  return scores;
}

std::vector<int64_t> sample_tokens(const at::Tensor& logits, const SamplingParams& p,
                                   const std::vector<double>& uniforms) {
  const int64_t B = logits.size(0);
  std::vector<int64_t> out(B);
  if (p.greedy()) {
    at::Tensor ids = logits.argmax(-1).to(at::kCPU);
    for (int64_t b = 0; b < B; ++b) out[b] = ids[b].item<int64_t>();
    return out;
  }
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(uniforms.size()) == B);
  at::Tensor probs = warp_logits(logits.to(at::kFloat), p).softmax(-1).to(at::kCPU, at::kDouble);
  at::Tensor cdf = probs.cumsum(-1);  // (B, V)
  auto acc = cdf.accessor<double, 2>();
  const int64_t V = cdf.size(1);
  for (int64_t b = 0; b < B; ++b) {
    const double target = uniforms[b] * acc[b][V - 1];
    // First index whose cumulative mass exceeds the draw; zero-probability tokens can never be picked.
    int64_t lo = 0, hi = V - 1;
    while (lo < hi) {
      int64_t mid = (lo + hi) / 2;
      if (acc[b][mid] > target) hi = mid;
      else lo = mid + 1;
    }
    out[b] = lo;
  }
  return out;
}

}  // namespace chatmill::model
