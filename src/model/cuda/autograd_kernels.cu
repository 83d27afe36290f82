// The training-side fused kernels of model/fused_autograd.h: rotary embedding (forward and, with -sin, its
// backward) and the SwiGLU product with its backward. Elementwise, one pass over memory each, float32 math;
// the rotary rounds to T wherever HF's ops do, the SwiGLU backward rounds once.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>

#include "model/cuda/autograd_kernels.h"

namespace chatmill::model::autograd_cuda {

namespace {

template <typename T>
__device__ __forceinline__ float rnd(float x) {
  return static_cast<float>(static_cast<T>(x));
}

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  // Grid-stride loops: enough blocks to fill the device several times over, no more.
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)));
}

// One thread per rotated pair (j, j + D/2) of one head of one position.
template <typename T>
__global__ void rotary_kernel(const T* __restrict__ x, const T* __restrict__ cos, const T* __restrict__ sin,
                              float sign, T* __restrict__ out, int64_t pairs, int H, int D) {
  const int half = D / 2;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pairs;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t nh = p / half, n = nh / H;
    const int j = static_cast<int>(p % half);
    const int64_t xi = nh * D + j, ti = n * D + j;
    const float x1 = static_cast<float>(x[xi]), x2 = static_cast<float>(x[xi + half]);
    const float c1 = static_cast<float>(cos[ti]), c2 = static_cast<float>(cos[ti + half]);
    const float s1 = sign * static_cast<float>(sin[ti]), s2 = sign * static_cast<float>(sin[ti + half]);
    out[xi] = static_cast<T>(rnd<T>(x1 * c1) + rnd<T>(-x2 * s1));  // HF: x * cos + cat(-x2, x1) * sin
    out[xi + half] = static_cast<T>(rnd<T>(x2 * c2) + rnd<T>(x1 * s2));
  }
}

template <typename T>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                      int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = static_cast<float>(gate[i]);
    out[i] = static_cast<T>(rnd<T>(g / (1.f + expf(-g))) * static_cast<float>(up[i]));  // silu stored in T, as HF
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(const T* __restrict__ gate, const T* __restrict__ up, const T* __restrict__ grad,
                                       T* __restrict__ d_gate, T* __restrict__ d_up, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = static_cast<float>(gate[i]), u = static_cast<float>(up[i]), dy = static_cast<float>(grad[i]);
    const float s = 1.f / (1.f + expf(-g));
    d_up[i] = static_cast<T>(dy * g * s);
    d_gate[i] = static_cast<T>(dy * u * s * (1.f + g * (1.f - s)));  // silu'(g) = s (1 + g (1 - s))
  }
}

}  // namespace

void rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, float sign, const at::Tensor& out) {
  const int H = static_cast<int>(x.size(1)), D = static_cast<int>(x.size(2));
  const int64_t pairs = x.size(0) * H * (D / 2);
  if (pairs == 0) return;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "rotary", [&] {
    rotary_kernel<scalar_t><<<blocks_for(pairs), kThreads, 0, stream>>>(
        x.data_ptr<scalar_t>(), cos.data_ptr<scalar_t>(), sin.data_ptr<scalar_t>(), sign, out.data_ptr<scalar_t>(),
        pairs, H, D);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void swiglu_forward(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out) {
  const int64_t n = gate.numel();
  if (n == 0) return;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gate.scalar_type(), "swiglu_forward", [&] {
    swiglu_forward_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        gate.data_ptr<scalar_t>(), up.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void swiglu_backward(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& grad, const at::Tensor& d_gate,
                     const at::Tensor& d_up) {
  const int64_t n = gate.numel();
  if (n == 0) return;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gate.scalar_type(), "swiglu_backward", [&] {
    swiglu_backward_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        gate.data_ptr<scalar_t>(), up.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), d_gate.data_ptr<scalar_t>(),
        d_up.data_ptr<scalar_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace chatmill::model::autograd_cuda
