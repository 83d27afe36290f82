// Next-token scores after each prompt of a batch (multiple-choice evaluation).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace chatmill::model {

// prompts: token ids (bos included when wanted) -> (N, V) float32 logits of the token after each prompt.
// Prompts of different lengths run in one left-padded batch with per-row positions; a prompt's scores do not
// depend on its batch.
at::Tensor next_token_logits(const Model& m, const std::vector<std::vector<int64_t>>& prompts);

}  // namespace chatmill::model
