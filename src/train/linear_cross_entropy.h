// The LM head and the next-token loss in one autograd function, computed over chunks of positions: the
// (positions, V) logits, their softmax and its gradient never exist for the whole batch at once
// (at Llama-2's 32000-word vocabulary they are the largest tensors of a training step). The forward
// computes the gradients for the hidden states and the head weight chunk by chunk while each chunk's
// logits are at hand; the backward only scales them. Without grad mode (or when neither input requires
// grad) only the loss is computed.
//
// Shape legend: B rows, T row length, C hidden, V vocab.
#pragma once
#include <ATen/core/Tensor.h>

#include "model/fused_ops.h"

namespace chatmill::train {

// hidden: (B, T, C) after the final norm; weight: (V, C) the LM head in the same dtype; labels: (B, T)
// int64. -> the sum of token_loss_sum(hidden weight^T, labels): logits in the hidden dtype, widened to float32
// (as HF), the labels shifted by one, -100 ignored. `chunk_positions` 0 sizes chunks to about 64M logits.
// On CUDA each chunk's loss and its gradient come from one fused kernel (cross_entropy_rows); `ref` keeps the
// ATen ops there too, for tests.
at::Tensor linear_cross_entropy_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                    int64_t chunk_positions = 0, model::fused::ForceReference ref = {});

// logits: (n, V) contiguous, any floating dtype; targets: (n) int64, data::kIgnoreLabel ignored. -> (n) float32
// losses lse - logits[target] (0 where ignored), in float32. With `grad`, also overwrites logits with
// d loss / d logits = softmax - one_hot(target) (0 on ignored rows), computed in float32 and rounded once to the
// logits' dtype. On CUDA (builds with -DCHATMILL_CUDA=ON, unless `ref`) one kernel, train/cuda/cross_entropy.h;
// elsewhere the ATen ops it is tested against. A target outside [0, V) fails on the ATen path, and gives that
// row a NaN loss and gradient in the kernel.
at::Tensor cross_entropy_rows(const at::Tensor& logits, const at::Tensor& targets, bool grad,
                              model::fused::ForceReference ref = {});

// The positions per chunk that chunk_positions = 0 picks for a vocabulary of V.
int64_t default_chunk_positions(int64_t vocab);

}  // namespace chatmill::train
