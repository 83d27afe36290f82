#include "train/loss.h"

#include <ATen/ATen.h>

namespace chatmill::train {

at::Tensor token_loss_sum(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t V = logits.size(-1);
  // Shift the labels, not the logits (as HF's ForCausalLMLoss does): slicing the (B, T, V) logits would cost
  // a full-size zero-filled gradient in backward.
  return at::cross_entropy_loss(logits.to(at::kFloat).reshape({-1, V}), shift_labels(labels).reshape({-1}), {},
                                at::Reduction::Sum, -100);
}

at::Tensor shift_labels(const at::Tensor& labels) {
  return at::cat({labels.narrow(1, 1, labels.size(1) - 1), at::full({labels.size(0), 1}, -100, labels.options())}, 1);
}

int64_t trained_tokens(const at::Tensor& labels) {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(-100).sum().item<int64_t>();
}

model::AttentionMask document_mask(const at::Tensor& doc) {
  // One document filling every row: plain causal attention (SDPA's fast kernels), the same result.
  if (doc.min().item<int64_t>() == 0 && doc.max().item<int64_t>() == 0) return {at::Tensor(), true};
  const int64_t T = doc.size(1);
  at::Tensor q = doc.unsqueeze(2), k = doc.unsqueeze(1);  // (B, T, 1), (B, 1, T)
  at::Tensor pos = at::arange(T, doc.options().dtype(at::kLong));
  at::Tensor causal = pos.unsqueeze(0) <= pos.unsqueeze(1);                 // (T, T): key <= query
  at::Tensor same = (q == k) & (q >= 0);                                     // same real document
  at::Tensor self = at::eye(T, doc.options().dtype(at::kBool));
  return {((same & causal) | self).unsqueeze(1), false};                    // (B, 1, T, T)
}

}  // namespace chatmill::train
