// The training-side fused kernels' entry points (model/cuda/autograd_kernels.h): the launch code of
// model/cuda/autograd_kernels.cuh on the current stream of the tensors' device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/autograd_kernels.cuh"
#include "model/cuda/autograd_kernels.h"
#include "model/cuda/launch.cuh"

namespace chatmill::model::autograd_cuda {

namespace {

// Plain launches (no PDL: these run among LibTorch's own kernels).
cuda_launch::StreamLauncher on_current_stream() { return cuda_launch::StreamLauncher::current(false); }

}  // namespace

void qkv_rotary_forward(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& q,
                        const at::Tensor& k, const at::Tensor& v) {
  const c10::cuda::CUDAGuard guard(qkv.device());
  qkv_rotary<true>(on_current_stream(), qkv, q, k, v, cos, sin);
}

void qkv_rotary_backward(const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv, const at::Tensor& cos,
                         const at::Tensor& sin, const at::Tensor& d_qkv) {
  const c10::cuda::CUDAGuard guard(d_qkv.device());
  qkv_rotary<false>(on_current_stream(), d_qkv, dq, dk, dv, cos, sin);
}

void swiglu_forward(const at::Tensor& gate_up, const at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(gate_up.device());
  autograd_cuda::swiglu_forward(on_current_stream(), gate_up, out);
}

void swiglu_backward(const at::Tensor& gate_up, const at::Tensor& grad, const at::Tensor& d_gate_up) {
  const c10::cuda::CUDAGuard guard(gate_up.device());
  autograd_cuda::swiglu_backward(on_current_stream(), gate_up, grad, d_gate_up);
}

}  // namespace chatmill::model::autograd_cuda
