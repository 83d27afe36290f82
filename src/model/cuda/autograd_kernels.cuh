// The training-side fused kernels of model/fused_autograd.h: the packed q/k/v projections split into heads with
// q and k rotated (and its backward, the rotation with -sin, packed back), and the SwiGLU product of the packed
// gate/up projection with its backward. Elementwise, one pass over memory each, float32 math; the rotation
// rounds to T wherever HF's ops do, the SwiGLU backward rounds once. Grid-stride loops.
//
// Plain device code and launch code generic over the launcher (model/cuda/decode_launch.cuh says what a
// launcher is): compiled by nvcc (autograd_kernels.cu) and, in the tests, for the CPU emulator.
// Shape legend: N positions (B*T), H heads, Hkv kv heads, D head dim, W = (H + 2 Hkv) D, F intermediate.
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "model/cuda/device_math.cuh"
#include "model/cuda/reduce.cuh"

namespace chatmill::model::autograd_cuda {

namespace kernels {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) { return cuda_math::grid_stride_blocks(n, kThreads); }

// Where pair j of head `hh` of packed row n lives in the per-head tensors: hh < H a q head, then Hkv k heads,
// then Hkv v heads.
struct HeadSlot {
  int64_t offset;  // element offset of the head's first value in q, k or v
  int which;       // 0 q, 1 k, 2 v
};

__device__ __forceinline__ HeadSlot head_slot(int64_t n, int hh, int H, int Hkv, int D) {
  if (hh < H) return {(n * H + hh) * D, 0};
  if (hh < H + Hkv) return {(n * Hkv + hh - H) * D, 1};
  return {(n * Hkv + hh - H - Hkv) * D, 2};
}

// One thread per pair (j, j + D/2) of one head (q, k or v) of one position.
template <typename T, bool kForward>
__global__ void qkv_rotary_kernel(T* __restrict__ packed, T* __restrict__ q, T* __restrict__ k, T* __restrict__ v,
                                  const T* __restrict__ cos, const T* __restrict__ sin, int64_t pairs, int H, int Hkv,
                                  int D) {
  const int half = D / 2, heads = H + 2 * Hkv;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pairs;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = p / (static_cast<int64_t>(heads) * half);
    const int rem = static_cast<int>(p % (static_cast<int64_t>(heads) * half));
    const int hh = rem / half, j = rem % half;
    const HeadSlot slot = head_slot(n, hh, H, Hkv, D);
    T* head = (slot.which == 0 ? q : slot.which == 1 ? k : v) + slot.offset;
    T* row = packed + n * heads * D + static_cast<int64_t>(hh) * D;
    const T* src = kForward ? row : head;
    T* dst = kForward ? head : row;
    float y1 = static_cast<float>(src[j]), y2 = static_cast<float>(src[j + half]);
    if (slot.which != 2) {  // the backward rotates with -sin
      const T *c = cos + n * D, *s = sin + n * D;
      const float sign = kForward ? 1.f : -1.f;
      cuda_math::rotate_pair<T>(y1, y2, static_cast<float>(c[j]), sign * static_cast<float>(s[j]),
                                static_cast<float>(c[j + half]), sign * static_cast<float>(s[j + half]), y1, y2);
    }
    dst[j] = static_cast<T>(y1);
    dst[j + half] = static_cast<T>(y2);
  }
}

template <typename T>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate_up, T* __restrict__ out, int64_t n, int64_t F) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / F, c = i % F;
    const float g = static_cast<float>(gate_up[r * 2 * F + c]), u = static_cast<float>(gate_up[r * 2 * F + F + c]);
    out[i] = static_cast<T>(cuda_math::silu<T>(g) * u);
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(const T* __restrict__ gate_up, const T* __restrict__ grad,
                                       T* __restrict__ d_gate_up, int64_t n, int64_t F) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / F, c = i % F, gi = r * 2 * F + c;
    const float g = static_cast<float>(gate_up[gi]), u = static_cast<float>(gate_up[gi + F]);
    const float dy = static_cast<float>(grad[i]);
    const float s = 1.f / (1.f + expf(-g));
    d_gate_up[gi] = static_cast<T>(dy * u * s * (1.f + g * (1.f - s)));  // silu'(g) = s (1 + g (1 - s))
    d_gate_up[gi + F] = static_cast<T>(dy * g * s);
  }
}

}  // namespace kernels

// packed: (N, W); q: (N, H, D), k, v: (N, Hkv, D); cos, sin: (N, D), all contiguous. Forward: packed -> q, k, v;
// backward: q, k, v (the gradients) -> packed.
template <bool kForward, class L>
void qkv_rotary(const L& launch, const at::Tensor& packed, const at::Tensor& q, const at::Tensor& k,
                const at::Tensor& v, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t N = q.size(0);
  const int H = static_cast<int>(q.size(1)), Hkv = static_cast<int>(k.size(1)), D = static_cast<int>(q.size(2));
  const int64_t pairs = N * (H + 2 * Hkv) * (D / 2);
  if (pairs == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "qkv_rotary", [&] {
    launch(kernels::qkv_rotary_kernel<scalar_t, kForward>, dim3(kernels::blocks_for(pairs)), dim3(kernels::kThreads),
           packed.data_ptr<scalar_t>(), q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
           cos.data_ptr<scalar_t>(), sin.data_ptr<scalar_t>(), pairs, H, Hkv, D);
  });
}

// gate_up: (N, 2F) -> out: (N, F).
template <class L>
void swiglu_forward(const L& launch, const at::Tensor& gate_up, const at::Tensor& out) {
  const int64_t n = out.numel(), F = out.size(-1);
  if (n == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "swiglu_forward", [&] {
    launch(kernels::swiglu_forward_kernel<scalar_t>, dim3(kernels::blocks_for(n)), dim3(kernels::kThreads),
           gate_up.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, F);
  });
}

// gate_up: (N, 2F), grad: (N, F) -> d_gate_up: (N, 2F).
template <class L>
void swiglu_backward(const L& launch, const at::Tensor& gate_up, const at::Tensor& grad, const at::Tensor& d_gate_up) {
  const int64_t n = grad.numel(), F = grad.size(-1);
  if (n == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "swiglu_backward", [&] {
    launch(kernels::swiglu_backward_kernel<scalar_t>, dim3(kernels::blocks_for(n)), dim3(kernels::kThreads),
           gate_up.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), d_gate_up.data_ptr<scalar_t>(), n, F);
  });
}

}  // namespace chatmill::model::autograd_cuda
