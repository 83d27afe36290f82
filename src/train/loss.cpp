#include "train/loss.h"

#include <ATen/ATen.h>

#include "data/ignore_label.h"

namespace chatmill::train {

at::Tensor token_loss_sum(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t V = logits.size(-1);
  // Shift the labels, not the logits (as HF's ForCausalLMLoss does): slicing the (B, T, V) logits would cost
  // a full-size zero-filled gradient in backward.
  return at::cross_entropy_loss(logits.to(at::kFloat).reshape({-1, V}), shift_labels(labels).reshape({-1}), {},
                                at::Reduction::Sum, data::kIgnoreLabel);
}

at::Tensor shift_labels(const at::Tensor& labels) {
  at::Tensor last = at::full({labels.size(0), 1}, data::kIgnoreLabel, labels.options());
  return at::cat({labels.narrow(1, 1, labels.size(1) - 1), last}, 1);
}

int64_t trained_tokens(const at::Tensor& labels) {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(data::kIgnoreLabel).sum().item<int64_t>();
}

model::AttentionMask document_mask(const at::Tensor& doc) {
  // One document filling every row: plain causal attention (SDPA's fast kernels), the same result.
  model::AttentionMask m;
  if (doc.min().item<int64_t>() == 0 && doc.max().item<int64_t>() == 0) {
    m.is_causal = true;
    return m;
  }
  const int64_t T = doc.size(1);
  at::Tensor q = doc.unsqueeze(2), k = doc.unsqueeze(1);  // (B, T, 1), (B, 1, T)
  at::Tensor pos = at::arange(T, doc.options().dtype(at::kLong));
  at::Tensor causal = pos.unsqueeze(0) <= pos.unsqueeze(1);                 // (T, T): key <= query
  at::Tensor same = (q == k) & (q >= 0);                                     // same real document
  at::Tensor self = at::eye(T, doc.options().dtype(at::kBool));
  m.mask = ((same & causal) | self).unsqueeze(1);  // (B, 1, T, T)
  // The same as runs of the flattened positions: a run starts at each row start and each change of document
  // (padding runs too: no real position attends to them, and their outputs feed no loss).
  at::Tensor flat = doc.reshape({-1});
  const int64_t N = flat.size(0);
  at::Tensor starts = at::ones({N}, doc.options().dtype(at::kBool));
  if (N > 1) starts.narrow(0, 1, N - 1).copy_(flat.narrow(0, 1, N - 1) != flat.narrow(0, 0, N - 1));
  starts.index_put_({at::arange(0, N, T, doc.options().dtype(at::kLong))}, true);
  at::Tensor idx = at::cat({at::nonzero(starts).view({-1}), at::full({1}, N, doc.options().dtype(at::kLong))});
  m.segment_starts = idx.to(at::kInt);
  m.max_segment = (idx.narrow(0, 1, idx.size(0) - 1) - idx.narrow(0, 0, idx.size(0) - 1)).max().item<int64_t>();
  return m;
}

}  // namespace chatmill::train
