#include "train/loss.h"

#include <ATen/ATen.h>

namespace chatmill::train {

at::Tensor token_loss_sum(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t V = logits.size(-1);
  at::Tensor l = logits.narrow(1, 0, logits.size(1) - 1).to(at::kFloat).reshape({-1, V});
  at::Tensor y = labels.narrow(1, 1, labels.size(1) - 1).reshape({-1});
  // reduction 2 = sum; ignore_index -100 as in HF and FastChat.
  return at::cross_entropy_loss(l, y, {}, at::Reduction::Sum, -100);
}

int64_t trained_tokens(const at::Tensor& labels) {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(-100).sum().item<int64_t>();
}

model::AttentionMask document_mask(const at::Tensor& doc) {
  const int64_t T = doc.size(1);
  at::Tensor q = doc.unsqueeze(2), k = doc.unsqueeze(1);  // (B, T, 1), (B, 1, T)
  at::Tensor pos = at::arange(T, doc.options().dtype(at::kLong));
  at::Tensor causal = pos.unsqueeze(0) <= pos.unsqueeze(1);                 // (T, T): key <= query
  at::Tensor same = (q == k) & (q >= 0);                                     // same real document
  at::Tensor self = at::eye(T, doc.options().dtype(at::kBool));
  return {((same & causal) | self).unsqueeze(1), false};                    // (B, 1, T, T)
}

}  // namespace chatmill::train
