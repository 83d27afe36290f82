// Entry points of src/model/cuda/autograd_kernels.cu (CUDA builds only); model/fused_autograd.h documents
// the ops. Tensors arrive contiguous and checked; kernels launch on the current stream.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model::autograd_cuda {

// x, out: (N, H, D) with N = B*T; cos, sin: (N, D). out = x * cos + rotate_half(x) * (sign * sin).
void rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, float sign, const at::Tensor& out);
// All (n) elements: out = silu(gate) * up.
void swiglu_forward(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out);
// All (n) elements: d_gate = grad * up * silu'(gate), d_up = grad * silu(gate).
void swiglu_backward(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& grad, const at::Tensor& d_gate,
                     const at::Tensor& d_up);

}  // namespace chatmill::model::autograd_cuda
