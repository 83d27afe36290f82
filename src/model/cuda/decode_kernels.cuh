// The decode step's elementwise kernels (model/fused_ops.h says what each computes): the residual add with
// RMSNorm, the SwiGLU product, and the rotary embedding with the cache append. Each is one pass over memory,
// accumulating in float32 and rounding to the activations' dtype T exactly where HF's eager ops do.
// Plain device code: compiled by nvcc (fused_kernels.cu) and, in the tests, for the CPU emulator
// (tests/common/cuda_emu.h).
#pragma once
#include <cstdint>

#include "model/cuda/device_math.cuh"
#include "model/cuda/pdl.cuh"
#include "model/cuda/reduce.cuh"
#include "model/cuda/rms_norm_row.cuh"

namespace chatmill::model::fused::kernels {

using cuda_launch::allow_next_kernel;
using cuda_launch::wait_for_previous_kernel;
using cuda_math::block_sum;
using cuda_math::rnd;
using cuda_math::rotate_pair;

// ---- residual add + RMSNorm: one block per row ------------------------------------------------------------
// kVec: 16 bytes a load (C a multiple of 16 / sizeof(T), rows and weight 16-byte aligned), so that a thread's
// loads go out together rather than one round trip per element; otherwise one element at a time.
template <typename T, bool kVec>
__global__ void add_rms_norm_kernel(T* __restrict__ residual, const T* __restrict__ delta, int64_t delta_stride,
                                    const T* __restrict__ w, T* __restrict__ out, int64_t C, float eps) {
  wait_for_previous_kernel();
  allow_next_kernel();
  T* r = residual + blockIdx.x * C;
  const T* d = delta ? delta + blockIdx.x * delta_stride : nullptr;
  T* o = out + blockIdx.x * C;
  if constexpr (kVec) {
    constexpr int kN = 16 / sizeof(T);
    uint4* rv = reinterpret_cast<uint4*>(r);
    cuda_math::add_rms_norm_row<T>(rv, reinterpret_cast<const uint4*>(d), d ? rv : nullptr, reinterpret_cast<uint4*>(o),
                                   reinterpret_cast<const uint4*>(w), C / kN, eps);
  } else {
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      float h = static_cast<float>(r[i]);
      if (d) {
        h = rnd<T>(h + static_cast<float>(d[i]));  // HF: residual + hidden, stored in T
        r[i] = static_cast<T>(h);
      }
      ss += h * h;
    }
    const float inv = rsqrtf(block_sum(ss) / static_cast<float>(C) + eps);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {  // each thread rereads what it wrote itself
      const float h = static_cast<float>(r[i]);
      o[i] = static_cast<T>(static_cast<float>(w[i]) * rnd<T>(h * inv));  // normalised in f32, cast, scaled in T
    }
  }
}

// ---- SwiGLU activation: silu(gate) * up -------------------------------------------------------------------
template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gate, int64_t gate_stride, const T* __restrict__ up,
                                int64_t up_stride, T* __restrict__ out, int64_t F) {
  wait_for_previous_kernel();
  allow_next_kernel();
  const int64_t row = blockIdx.y;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < F; i += gridDim.x * blockDim.x) {
    const float g = static_cast<float>(gate[row * gate_stride + i]);
    const float act = cuda_math::silu<T>(g);
    out[row * F + i] = static_cast<T>(act * static_cast<float>(up[row * up_stride + i]));
  }
}

// ---- rotary on q and k, k/v into the cache: blocks (row, range of items) ----------------------------------
// One thread per rotated pair or copied v element: a batch-1 step spreads over many SMs, not one block.
// Pairs (j, j + D/2) rotate by angle positions[b] * inv_freq[j]: HF's rotate_half with cos/sin tables in T.
template <typename T>
__global__ void rope_append_kernel(const T* __restrict__ q, int64_t q_stride, const T* __restrict__ k, int64_t k_stride,
                                   const T* __restrict__ v, int64_t v_stride, const int64_t* __restrict__ positions,
                                   const int64_t* __restrict__ columns, const float* __restrict__ inv_freq,
                                   T* __restrict__ k_cache, T* __restrict__ v_cache, T* __restrict__ q_out, int H,
                                   int Hkv, int64_t S, int D) {
  wait_for_previous_kernel();
  allow_next_kernel();
  const int b = blockIdx.x, half = D / 2;
  const float pos = static_cast<float>(positions[b]);
  const int64_t col = columns[b];
  const int q_pairs = H * half, k_pairs = Hkv * half, v_items = Hkv * D;
  for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < q_pairs + k_pairs + v_items; i += gridDim.y * blockDim.x) {
    if (i < q_pairs + k_pairs) {
      const bool is_q = i < q_pairs;
      const int p = is_q ? i : i - q_pairs;
      const int head = p / half, j = p % half;
      const float angle = pos * inv_freq[j];
      const float c = rnd<T>(cosf(angle)), s = rnd<T>(sinf(angle));
      const T* src = is_q ? q + b * q_stride : k + b * k_stride;
      float y1, y2;
      rotate_pair<T>(static_cast<float>(src[head * D + j]), static_cast<float>(src[head * D + j + half]), c, s, c, s,
                     y1, y2);
      T* dst = is_q ? q_out + (static_cast<int64_t>(b) * H + head) * D
                    : k_cache + ((static_cast<int64_t>(b) * Hkv + head) * S + col) * D;
      dst[j] = static_cast<T>(y1);
      dst[j + half] = static_cast<T>(y2);
    } else {
      const int p = i - q_pairs - k_pairs, head = p / D, d = p % D;
      v_cache[((static_cast<int64_t>(b) * Hkv + head) * S + col) * D + d] = v[b * v_stride + p];
    }
  }
}

}  // namespace chatmill::model::fused::kernels
