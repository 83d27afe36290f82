// SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
#pragma once
#include <ATen/core/Tensor.h>

#include "model/fused_autograd.h"
#include "model/weights.h"

namespace chatmill::model {

// x: (B, T, C) -> (B, T, C). Kernels::Fused: one packed gate/up GEMM and swiglu_fused.
at::Tensor feed_forward(const LayerWeights& w, const at::Tensor& x, Kernels kernels = Kernels::Reference);

}  // namespace chatmill::model
