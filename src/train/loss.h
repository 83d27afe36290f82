// Next-token loss over packed or padded rows, and the attention mask that keeps documents apart.
//
// Shape legend: B rows, T row length, V vocab.
#pragma once
#include <ATen/core/Tensor.h>

#include "model/attention.h"

namespace chatmill::train {

// Sum over positions t of -log p(labels[t+1] | tokens[..t]) where labels[t+1] != -100 (HF's shift).
// logits: (B, T, V) any float dtype (computed in float32); labels: (B, T) int64 -> scalar float32.
at::Tensor token_loss_sum(const at::Tensor& logits, const at::Tensor& labels);
// labels: (B, T) -> (B, T): position t holds labels[t+1], the last -100 (the target each position predicts).
at::Tensor shift_labels(const at::Tensor& labels);
// Trained positions of the same shift: count of labels[:, 1:] != -100.
int64_t trained_tokens(const at::Tensor& labels);

// doc: (B, T) int32, -1 for padding. Query t sees key s iff s <= t and doc[s] == doc[t]; a padding
// query sees itself only (no empty row). (B, 1, T, T) bool, or plain causal when every row is one document;
// with the mask, the same documents as runs of the flattened positions (segment_starts) for flash varlen.
model::AttentionMask document_mask(const at::Tensor& doc);

}  // namespace chatmill::train
