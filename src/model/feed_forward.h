// SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
#pragma once
#include <ATen/core/Tensor.h>

#include "model/weights.h"

namespace chatmill::model {

// x: (B, T, C) -> (B, T, C)
at::Tensor feed_forward(const LayerWeights& w, const at::Tensor& x);

}  // namespace chatmill::model
