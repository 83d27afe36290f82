// Entry points of src/model/cuda/autograd_kernels.cu (CUDA builds only); model/fused_autograd.h documents
// the ops. Tensors arrive contiguous and checked; kernels launch on the current stream.
//
// Shape legend: N positions (B*T), H heads, Hkv kv heads, D head dim, W = (H + 2 Hkv) D, F intermediate.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model::autograd_cuda {

// qkv: (N, W) packed projections; cos, sin: (N, D). q: (N, H, D), k, v: (N, Hkv, D) out: q and k rotated
// (x cos + rotate_half(x) sin), v copied.
void qkv_rotary_forward(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& q,
                        const at::Tensor& k, const at::Tensor& v);
// The gradients of those three back into one (N, W): rotated with -sin, v's copied.
void qkv_rotary_backward(const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv, const at::Tensor& cos,
                         const at::Tensor& sin, const at::Tensor& d_qkv);
// gate_up: (N, 2F) = [gate | up] per row -> out: (N, F) silu(gate) * up.
void swiglu_forward(const at::Tensor& gate_up, const at::Tensor& out);
// grad: (N, F) -> d_gate_up: (N, 2F) = [grad * up * silu'(gate) | grad * silu(gate)].
void swiglu_backward(const at::Tensor& gate_up, const at::Tensor& grad, const at::Tensor& d_gate_up);

}  // namespace chatmill::model::autograd_cuda
