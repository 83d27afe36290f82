// The residual add and RMSNorm of one row, 16 bytes a load, rounded where HF's eager ops round
// (fused::add_rms_norm): shared by the add_rms_norm kernel (decode_kernels.cuh) and the normalised projections'
// prologue (skinny_kernels.cuh). 16-byte loads, so that a thread's loads go out together.
// Plain device code: compiled by nvcc and, in the tests, for the CPU emulator.
#pragma once
#include <cstdint>

#include "model/cuda/device_math.cuh"
#include "model/cuda/reduce.cuh"

namespace chatmill::model::cuda_math {

// A 16-byte chunk of rms_norm's output from the same chunk of the residual row and of the norm weight, given the
// row's 1 / rms: weight * rnd(residual * inv), normalised in float32, cast, scaled (HF's order). Shared with the
// tile GEMM, which normalises x as it loads it (tile_kernels.cuh).
template <typename T>
__device__ __forceinline__ uint4 normalise_chunk(const uint4& residual, const uint4& weight, float inv) {
  constexpr int kN = 16 / sizeof(T);
  float h[kN], g[kN];
  unpack16<T>(residual, h);
  unpack16<T>(weight, g);
#pragma unroll
  for (int e = 0; e < kN; ++e) h[e] = g[e] * rnd<T>(h[e] * inv);
  return pack16<T>(h);
}

// h = residual + delta (rounded to T; delta may be null) into residual_out (may be null, or residual itself) and
// into dst; then dst = rms_norm(h) * weight (normalised in float32, cast, scaled). Rows of `chunks` 16-byte
// chunks, all 16-byte aligned. Every thread of the block calls it; each rereads only what it wrote. The residual
// and delta are read through L2: in the persistent step an earlier stage of the same kernel wrote them.
template <typename T>
__device__ __forceinline__ void add_rms_norm_row(const uint4* residual, const uint4* delta, uint4* residual_out,
                                                 uint4* dst, const uint4* weight, int64_t chunks, float eps) {
  constexpr int kN = 16 / sizeof(T);
  float ss = 0.f;
#pragma unroll 4
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    float h[kN];
    unpack16<T>(__ldcg(residual + c), h);
    if (delta) {
      float d[kN];
      unpack16<T>(__ldcg(delta + c), d);
#pragma unroll
      for (int e = 0; e < kN; ++e) h[e] = rnd<T>(h[e] + d[e]);  // HF: residual + hidden, stored in T
    }
    const uint4 packed = pack16<T>(h);  // exact: each h is a T already
    if (residual_out) residual_out[c] = packed;
    dst[c] = packed;
#pragma unroll
    for (int e = 0; e < kN; ++e) ss += h[e] * h[e];
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(chunks * kN) + eps);
#pragma unroll 4
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) dst[c] = normalise_chunk<T>(dst[c], __ldg(weight + c), inv);
}

}  // namespace chatmill::model::cuda_math
