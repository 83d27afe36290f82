// RMSNorm as Llama (and HF LlamaRMSNorm) computes it.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model {

// x: (..., C), weight: (C) -> (..., C) in x's dtype. The statistics are taken in float32.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace chatmill::model
