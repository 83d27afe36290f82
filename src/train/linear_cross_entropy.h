// The LM head and the next-token loss in one autograd function, computed over chunks of positions: the
// (positions, V) float32 logits, their softmax and its gradient never exist for the whole batch at once
// (at Llama-2's 32000-word vocabulary they are the largest tensors of a training step). The forward
// computes the gradients for the hidden states and the head weight chunk by chunk while each chunk's
// logits are at hand; the backward only scales them. Without grad mode (or when neither input requires
// grad) only the loss is computed.
//
// Shape legend: B rows, T row length, C hidden, V vocab.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::train {

// hidden: (B, T, C) after the final norm; weight: (V, C) the LM head in the same dtype; labels: (B, T)
// int64. -> the sum of token_loss_sum(hidden weight^T, labels): logits in the hidden dtype, widened to float32
// (as HF), the labels shifted by one, -100 ignored. `chunk_positions` 0 sizes chunks to about 64M logits.
at::Tensor linear_cross_entropy_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                    int64_t chunk_positions = 0);

// The positions per chunk that chunk_positions = 0 picks for a vocabulary of V.
int64_t default_chunk_positions(int64_t vocab);

}  // namespace chatmill::train
