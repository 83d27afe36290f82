// Decode attention for model/fused_ops.h's decode_attention: one query token per row against its cache prefix,
// split over the columns (flash-decoding), then combined. Two split kernels: a vectorised one (each lane loads 16
// bytes of a row, a group of lanes takes a column, so a warp works on several columns at once) for head dims
// whose rows split into a power-of-two number of 16-byte pieces, and a scalar one (a warp per column) for the rest.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "model/cuda/fused_kernels.h"
#include "model/cuda/launch.cuh"
#include "model/cuda/reduce.cuh"

namespace chatmill::model::fused::cuda {

namespace {

using cuda_math::group_sum;
using cuda_math::threads_for;
using cuda_math::warp_sum;
using cuda_launch::allow_next_kernel;
using cuda_launch::launch;
using cuda_launch::wait_for_previous_kernel;

constexpr int kWarps = 4;       // warps per split block
constexpr int kMaxPerLane = 8;  // scalar kernel: head dim up to 256

// exp(m - M) for merging a partial softmax with running max m into one with max M >= m; 0 for an empty one.
__device__ __forceinline__ float rescale(float m, float M) { return m == -INFINITY ? 0.f : expf(m - M); }

// Merges the warps' partials (s_acc, s_m, s_l) into the block's, written to part_acc / part_ml.
__device__ void write_block_partial(float (*s_acc)[kMaxPerLane * 32], const float* s_m, const float* s_l,
                                    float* __restrict__ part_acc, float* __restrict__ part_ml, int64_t part, int D) {
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.f;
    for (int w = 0; w < kWarps; ++w) a += s_acc[w][d] * rescale(s_m[w], M);
    part_acc[part * D + d] = a;
  }
  if (threadIdx.x == 0) {
    float L = 0.f;
    for (int w = 0; w < kWarps; ++w) L += s_l[w] * rescale(s_m[w], M);
    part_ml[part * 2] = M;
    part_ml[part * 2 + 1] = L;
  }
}

// ---- scalar split kernel ----------------------------------------------------------------------------------
// Block (b*H + h, split) takes the groups of kWarps columns numbered split, split + splits, ... below lengths[b],
// one column per warp: interleaved, so every split has work at any length (the split count follows the cache
// capacity, fixed for a CUDA graph, not the length). A lane holds `per_lane` consecutive elements of the head (a
// warp reads whole rows); online softmax in float32. The block writes its unnormalised sum and (max,
// denominator) for the combine kernel, which does not depend on which columns a split took.
template <typename T>
__global__ void split_scalar_kernel(const T* __restrict__ q, const T* __restrict__ k_cache,
                                    const T* __restrict__ v_cache, const int64_t* __restrict__ lengths,
                                    float* __restrict__ part_acc, float* __restrict__ part_ml, int H, int Hkv,
                                    int64_t S, int D, float scale) {
  __shared__ float s_acc[kWarps][kMaxPerLane * 32];
  __shared__ float s_m[kWarps], s_l[kWarps];
  const int bh = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int b = bh / H, h = bh % H, kvh = h / (H / Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int per_lane = (D + 31) / 32;
  wait_for_previous_kernel();  // q and the cache's new column come from the kernel before
  allow_next_kernel();
  const int64_t len = min(lengths[b], S);
  const int64_t step = static_cast<int64_t>(splits) * kWarps;

  float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) {
    const int d = lane * per_lane + e;
    qv[e] = (e < per_lane && d < D) ? static_cast<float>(q[static_cast<int64_t>(bh) * D + d]) * scale : 0.f;
    acc[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int64_t head_base = (static_cast<int64_t>(b) * Hkv + kvh) * S * D;
  for (int64_t s = static_cast<int64_t>(split) * kWarps + warp; s < len; s += step) {
    const T* kr = k_cache + head_base + s * D;
    const T* vr = v_cache + head_base + s * D;
    float dot = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int d = lane * per_lane + e;
      if (e < per_lane && d < D) dot += qv[e] * static_cast<float>(kr[d]);
    }
    dot = warp_sum(dot);
    const float m_new = fmaxf(m, dot);
    const float corr = expf(m - m_new);  // 0 on the first column (m = -inf)
    const float p = expf(dot - m_new);
    l = l * corr + p;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int d = lane * per_lane + e;
      if (e < per_lane && d < D) acc[e] = acc[e] * corr + p * static_cast<float>(vr[d]);
    }
    m = m_new;
  }
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e)
    if (e < per_lane && lane * per_lane + e < D) s_acc[warp][lane * per_lane + e] = acc[e];
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
  __syncthreads();
  write_block_partial(s_acc, s_m, s_l, part_acc, part_ml, static_cast<int64_t>(bh) * splits + split, D);
}

// ---- vectorised split kernel ------------------------------------------------------------------------------
// A column is taken by a group of G = D / kVec lanes, each holding kVec consecutive elements of the head (one
// 16-byte load of k and one of v per column); a warp works on 32 / G columns at once, two rounds of them per
// iteration, with all four loads issued before any arithmetic. Columns are interleaved over splits, warps and
// groups as in the scalar kernel. Each group keeps its own online softmax; the groups of a warp merge at the end.
template <typename T, int G>
__global__ void split_vec_kernel(const T* __restrict__ q, const T* __restrict__ k_cache,
                                 const T* __restrict__ v_cache, const int64_t* __restrict__ lengths,
                                 float* __restrict__ part_acc, float* __restrict__ part_ml, int H, int Hkv, int64_t S,
                                 float scale) {
  constexpr int kVec = 16 / sizeof(T), D = G * kVec, kCols = 32 / G;  // kCols: columns per warp per round
  __shared__ float s_acc[kWarps][kMaxPerLane * 32];
  __shared__ float s_m[kWarps], s_l[kWarps];
  const int bh = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int b = bh / H, h = bh % H, kvh = h / (H / Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / G, gl = lane % G;
  wait_for_previous_kernel();  // q and the cache's new column come from the kernel before
  allow_next_kernel();
  const int64_t len = min(lengths[b], S);
  const int64_t round = static_cast<int64_t>(splits) * kWarps * kCols;  // columns all blocks of a head take at once

  float qv[kVec], acc[kVec];
  {
    const uint4 raw = *reinterpret_cast<const uint4*>(q + static_cast<int64_t>(bh) * D + gl * kVec);
    const T* qt = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      qv[e] = static_cast<float>(qt[e]) * scale;
      acc[e] = 0.f;
    }
  }
  float m = -INFINITY, l = 0.f;
  const T* kh = k_cache + (static_cast<int64_t>(b) * Hkv + kvh) * S * D + gl * kVec;
  const T* vh = v_cache + (static_cast<int64_t>(b) * Hkv + kvh) * S * D + gl * kVec;
  // Warp-uniform loop (the group shuffles need every lane); a lane whose column is past the length loads
  // nothing and leaves its state alone.
  for (int64_t base = (static_cast<int64_t>(split) * kWarps + warp) * kCols; base < len; base += 2 * round) {
    const int64_t s0 = base + group, s1 = s0 + round;
    const bool ok0 = s0 < len, ok1 = s1 < len;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const uint4 k0 = ok0 ? __ldg(reinterpret_cast<const uint4*>(kh + s0 * D)) : zero;
    const uint4 k1 = ok1 ? __ldg(reinterpret_cast<const uint4*>(kh + s1 * D)) : zero;
    const uint4 v0 = ok0 ? __ldg(reinterpret_cast<const uint4*>(vh + s0 * D)) : zero;
    const uint4 v1 = ok1 ? __ldg(reinterpret_cast<const uint4*>(vh + s1 * D)) : zero;
    const T* k0t = reinterpret_cast<const T*>(&k0);
    const T* k1t = reinterpret_cast<const T*>(&k1);
    float dot0 = 0.f, dot1 = 0.f;
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      dot0 += qv[e] * static_cast<float>(k0t[e]);
      dot1 += qv[e] * static_cast<float>(k1t[e]);
    }
    dot0 = group_sum<G>(dot0);
    dot1 = group_sum<G>(dot1);
    if (!ok0) continue;  // then s1 is past the length too
    const float m_new = fmaxf(m, ok1 ? fmaxf(dot0, dot1) : dot0);
    const float corr = rescale(m, m_new), p0 = expf(dot0 - m_new), p1 = ok1 ? expf(dot1 - m_new) : 0.f;
    l = l * corr + p0 + p1;
    const T* v0t = reinterpret_cast<const T*>(&v0);
    const T* v1t = reinterpret_cast<const T*>(&v1);
#pragma unroll
    for (int e = 0; e < kVec; ++e)
      acc[e] = acc[e] * corr + p0 * static_cast<float>(v0t[e]) + p1 * static_cast<float>(v1t[e]);
    m = m_new;
  }
  // Merge the warp's groups: lane gl of every group holds the same elements.
#pragma unroll
  for (int offset = G; offset < 32; offset *= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset), l2 = __shfl_xor_sync(0xffffffffu, l, offset);
    const float M = fmaxf(m, m2), c1 = rescale(m, M), c2 = rescale(m2, M);
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[e] = acc[e] * c1 + __shfl_xor_sync(0xffffffffu, acc[e], offset) * c2;
    l = l * c1 + l2 * c2;
    m = M;
  }
  if (group == 0) {
#pragma unroll
    for (int e = 0; e < kVec; ++e) s_acc[warp][gl * kVec + e] = acc[e];
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
  __syncthreads();
  write_block_partial(s_acc, s_m, s_l, part_acc, part_ml, static_cast<int64_t>(bh) * splits + split, D);
}

template <typename T>
__global__ void combine_kernel(const float* __restrict__ part_acc, const float* __restrict__ part_ml,
                               T* __restrict__ out, int splits, int D) {
  wait_for_previous_kernel();
  allow_next_kernel();
  const int64_t bh = blockIdx.x;
  const float* ml = part_ml + bh * splits * 2;  // (splits, 2): max, denominator
  const float* acc = part_acc + bh * splits * D;  // (splits, D)
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, ml[2 * s]);
  float L = 0.f;
  for (int s = 0; s < splits; ++s) L += ml[2 * s + 1] * rescale(ml[2 * s], M);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.f;
    for (int s = 0; s < splits; ++s) a += acc[s * D + d] * rescale(ml[2 * s], M);
    out[bh * D + d] = static_cast<T>(a / L);
  }
}

// Lanes per column of the vectorised kernel for head dim D in T (16-byte pieces per row), or 0 where it does
// not apply (not a power of two up to 32, or pointers not 16-byte aligned).
template <typename T>
int vec_group(int64_t D, const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache) {
  constexpr int64_t kVec = 16 / sizeof(T);
  if (D % kVec != 0) return 0;
  const int64_t g = D / kVec;
  if (g < 1 || g > 32 || (g & (g - 1)) != 0) return 0;
  for (const at::Tensor* t : {&q, &k_cache, &v_cache})
    if (reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 != 0) return 0;
  return static_cast<int>(g);
}

}  // namespace

void decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                      const at::Tensor& lengths, const at::Tensor& out, bool programmatic) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2);
  const int64_t Hkv = k_cache.size(1), S = k_cache.size(2);
  if (B == 0) return;
  // About two blocks per head per SM-resident slot at batch 1 (splits over columns), few partials to combine at
  // large batch. Fixed by (B, H, S) only, so a CUDA graph captured once serves every length.
  const int64_t max_splits = std::max<int64_t>(1, (S + 63) / 64);
  const int64_t splits = std::min(max_splits, std::max<int64_t>(1, (2048 + B * H - 1) / (B * H)));
  at::Tensor part_acc = at::empty({B * H * splits, D}, q.options().dtype(at::kFloat));
  at::Tensor part_ml = at::empty({B * H * splits, 2}, q.options().dtype(at::kFloat));
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const c10::cuda::CUDAGuard guard(q.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  const dim3 grid(static_cast<unsigned>(B * H), static_cast<unsigned>(splits)), block(kWarps * 32);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "decode_attention", [&] {
    const scalar_t* qp = q.data_ptr<scalar_t>();
    const scalar_t* kp = k_cache.data_ptr<scalar_t>();
    const scalar_t* vp = v_cache.data_ptr<scalar_t>();
    const int64_t* lp = lengths.data_ptr<int64_t>();
    float* pa = part_acc.data_ptr<float>();
    float* pm = part_ml.data_ptr<float>();
    const int h = static_cast<int>(H), hkv = static_cast<int>(Hkv);
    auto vec = [&](auto g) {  // g: std::integral_constant, the lanes per column
      launch(split_vec_kernel<scalar_t, decltype(g)::value>, grid, block, stream, programmatic, qp, kp, vp, lp, pa,
             pm, h, hkv, S, scale);
    };
    switch (vec_group<scalar_t>(D, q, k_cache, v_cache)) {
      case 1: vec(std::integral_constant<int, 1>{}); break;
      case 2: vec(std::integral_constant<int, 2>{}); break;
      case 4: vec(std::integral_constant<int, 4>{}); break;
      case 8: vec(std::integral_constant<int, 8>{}); break;
      case 16: vec(std::integral_constant<int, 16>{}); break;
      case 32: vec(std::integral_constant<int, 32>{}); break;
      default:
        launch(split_scalar_kernel<scalar_t>, grid, block, stream, programmatic, qp, kp, vp, lp, pa, pm, h, hkv, S,
               static_cast<int>(D), scale);
    }
    launch(combine_kernel<scalar_t>, static_cast<unsigned>(B * H), threads_for(D), stream, programmatic, pa, pm,
           out.data_ptr<scalar_t>(), static_cast<int>(splits), static_cast<int>(D));
  });
}

}  // namespace chatmill::model::fused::cuda
