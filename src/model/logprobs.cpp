#include "model/logprobs.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace chatmill::model {

std::vector<TokenLogprob> token_logprobs(const at::Tensor& logits, const std::vector<int64_t>& ids, int64_t k) {
  const int64_t L = logits.size(0);
  CHATMILL_CHECK(logits.dim() == 2 && static_cast<int64_t>(ids.size()) == L, "token_logprobs: ", L,
                 " rows of logits for ", ids.size(), " ids");
  CHATMILL_CHECK(k >= 0 && k <= kMaxTopLogprobs, "top log-probabilities: k must be in [0, ", kMaxTopLogprobs,
                 "], got ", k);
  const at::Tensor lp = at::log_softmax(logits.to(at::kFloat), -1);  // (L, V)
  const at::Tensor index = at::tensor(ids, at::TensorOptions().dtype(at::kLong)).to(lp.device()).view({L, 1});
  const at::Tensor chosen = lp.gather(1, index).view({L}).to(at::kDouble).cpu();
  at::Tensor top_values, top_ids;
  if (k > 0) {
    auto [v, i] = lp.topk(k, -1);  // sorted, most likely first
    top_values = v.to(at::kDouble).cpu();
    top_ids = i.cpu();
  }
  std::vector<TokenLogprob> out(static_cast<size_t>(L));
  for (int64_t r = 0; r < L; ++r) {
    out[r].id = ids[r];
    out[r].logprob = chosen.data_ptr<double>()[r];
    for (int64_t j = 0; j < k; ++j)
      out[r].top.emplace_back(top_ids.data_ptr<int64_t>()[r * k + j], top_values.data_ptr<double>()[r * k + j]);
  }
  return out;
}

}  // namespace chatmill::model
