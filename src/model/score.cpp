#include "model/score.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "common/error.h"

namespace chatmill::model {

at::Tensor next_token_logits(const Model& m, const std::vector<std::vector<int64_t>>& prompts) {
  c10::InferenceMode guard;
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 1;
  for (const auto& p : prompts) {
    CHATMILL_CHECK(!p.empty(), "an empty prompt has no next token to score");
    T = std::max<int64_t>(T, p.size());
  }
  std::vector<int64_t> ids(B * T, 0), pos(B * T, 0);
  std::vector<uint8_t> valid(B * T, 0);
  bool padded = false;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size()), pad = T - n;
    padded |= pad > 0;
    for (int64_t j = 0; j < n; ++j) {
      ids[b * T + pad + j] = prompts[b][j];
      pos[b * T + pad + j] = j;
      valid[b * T + pad + j] = 1;
    }
  }
  const at::Device dev = m.device();
  at::Tensor tokens = at::tensor(ids, at::kLong).view({B, T}).to(dev);
  at::Tensor positions = at::tensor(pos, at::kLong).view({B, T}).to(dev);
  at::Tensor key_valid = padded ? at::tensor(at::ArrayRef<uint8_t>(valid)).view({B, T}).to(at::kBool).to(dev) : at::Tensor();
  at::Tensor h = forward_hidden(m, tokens, positions, nullptr, key_valid);
  return lm_logits(m, h.narrow(1, T - 1, 1)).squeeze(1);  // (B, V)
}

}  // namespace chatmill::model
