// Decode attention for model/fused_ops.h's decode_attention: one query token per row against its cache prefix,
// split over the columns (flash-decoding), then combined. Two split kernels: a vectorised one (each lane loads 16
// bytes of a row, a group of lanes takes a column, so a warp works on several columns at once) for head dims
// whose rows split into a power-of-two number of 16-byte pieces, and a scalar one (a warp per column) for the rest.
//
// The combine is either a kernel of its own or, given a counter per (row, head), done by the split block that
// finishes last (it takes a ticket after its partial is visible; the last ticket combines and resets the
// counter to zero for the next launch), so the step launches one attention kernel, not two.
// Plain device code: compiled by nvcc (decode_attention.cu) and, in the tests, for the CPU emulator.
#pragma once
#include <cstdint>

#include "model/cuda/device_math.cuh"
#include "model/cuda/pdl.cuh"
#include "model/cuda/reduce.cuh"

namespace chatmill::model::fused::kernels {

using cuda_launch::allow_next_kernel;
using cuda_launch::wait_for_previous_kernel;
using cuda_math::group_sum;
using cuda_math::warp_sum;

constexpr int kWarps = 4;       // warps per split block
constexpr int kMaxPerLane = 8;  // scalar kernel: head dim up to 256

// exp(m - M) for merging a partial softmax with running max m into one with max M >= m; 0 for an empty one.
__device__ __forceinline__ float rescale(float m, float M) { return m == -INFINITY ? 0.f : expf(m - M); }

// A split block's shared memory: each of its kW warps' partial sum, max and denominator.
template <int kW>
struct SplitShared {
  float acc[kW][kMaxPerLane * 32];
  float m[kW], l[kW];
};

// Merges the warps' partials into the block's, written to part_acc / part_ml.
template <int kW>
__device__ __forceinline__ void write_block_partial(const SplitShared<kW>& sh, float* __restrict__ part_acc,
                                                    float* __restrict__ part_ml, int64_t part, int D) {
  float M = -INFINITY;
  for (int w = 0; w < kW; ++w) M = fmaxf(M, sh.m[w]);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.f;
    for (int w = 0; w < kW; ++w) a += sh.acc[w][d] * rescale(sh.m[w], M);
    part_acc[part * D + d] = a;
  }
  if (threadIdx.x == 0) {
    float L = 0.f;
    for (int w = 0; w < kW; ++w) L += sh.l[w] * rescale(sh.m[w], M);
    part_ml[part * 2] = M;
    part_ml[part * 2 + 1] = L;
  }
}

// out[bh] = the merged partials of (row, head) bh, by the threads of the block (all of them call it). The
// partials' maxima and denominators a split per thread, read once (each thread merges its own splits as it
// reads them, then the block reduces the maxima and the denominators rescaled to the block's), and the sums of
// each element eight splits at a time: the loads go out together instead of one L2 round trip per split on the
// combine's critical path. Reads through L2 (__ldcg): in the last-block combine, other blocks wrote them, and
// this SM's L1 is not coherent with theirs.
template <typename T>
__device__ __forceinline__ void combine_head(const float* part_acc, const float* part_ml, T* __restrict__ out,
                                             int64_t bh, int splits, int D) {
  const float* ml = part_ml + bh * splits * 2;    // (splits, 2): max, denominator
  const float* acc = part_acc + bh * splits * D;  // (splits, D)
  float m = -INFINITY, l = 0.f;  // this thread's splits merged: their max, and their denominator at it
  for (int s = threadIdx.x; s < splits; s += blockDim.x) {
    const float ms = __ldcg(ml + 2 * s), ls = __ldcg(ml + 2 * s + 1);
    const float m_new = fmaxf(m, ms);
    l = l * rescale(m, m_new) + ls * rescale(ms, m_new);
    m = m_new;
  }
  const float M = cuda_math::block_max(m);
  const float L = cuda_math::block_sum(l * rescale(m, M));
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.f;
#pragma unroll 8
    for (int s = 0; s < splits; ++s) a += __ldcg(acc + s * D + d) * rescale(__ldcg(ml + 2 * s), M);
    out[bh * D + d] = static_cast<T>(a / L);
  }
}

// After a split block wrote its partial: the block that finishes last for (row, head) bh combines them all and
// sets counters[bh] back to zero. Every thread of the block calls it.
template <typename T>
__device__ __forceinline__ void combine_if_last(const float* part_acc, const float* part_ml, int* counters,
                                                T* __restrict__ out, int64_t bh, int splits, int D) {
  __shared__ bool s_last;
  __threadfence();  // this block's partial is visible to every SM before its ticket is
  __syncthreads();
  if (threadIdx.x == 0) {
    s_last = atomicAdd(counters + bh, 1) == splits - 1;
    if (s_last) counters[bh] = 0;  // every ticket of this launch is taken: ready for the next
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  combine_head<T>(part_acc, part_ml, out, bh, splits, D);
}

// The end of a split block, once each warp's sums are in sh.acc: each warp's running (max m, denominator l) into
// shared memory, the block's partial out, and, with counters, the combine by the head's last block.
template <typename T, int kW>
__device__ __forceinline__ void finish_split(SplitShared<kW>& sh, float m, float l, float* part_acc, float* part_ml,
                                             T* out, int* counters, int bh, int split, int splits, int D) {
  if (threadIdx.x % 32 == 0) {
    sh.m[threadIdx.x / 32] = m;
    sh.l[threadIdx.x / 32] = l;
  }
  __syncthreads();
  write_block_partial<kW>(sh, part_acc, part_ml, static_cast<int64_t>(bh) * splits + split, D);
  if (counters) combine_if_last<T>(part_acc, part_ml, counters, out, bh, splits, D);
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
                                    float* __restrict__ part_acc, float* __restrict__ part_ml, T* __restrict__ out,
                                    int* __restrict__ counters, int H, int Hkv, int64_t S, int D, float scale) {
  __shared__ SplitShared<kWarps> sh;
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
    if (e < per_lane && lane * per_lane + e < D) sh.acc[warp][lane * per_lane + e] = acc[e];
  finish_split<T, kWarps>(sh, m, l, part_acc, part_ml, out, counters, bh, split, splits, D);
}

// ---- vectorised split kernel ------------------------------------------------------------------------------
// A column is taken by a group of G = D / kVec lanes, each holding kVec consecutive elements of the head (one
// 16-byte load of k and one of v per column); a warp works on 32 / G columns at once, two rounds of them per
// iteration, with all four loads issued before any arithmetic. Columns are interleaved over splits, warps and
// groups as in the scalar kernel. Each group keeps its own online softmax; the groups of a warp merge at the end.
// kPipelined: each iteration's loads go out before the previous iteration's arithmetic, so that a warp with
// several iterations (batch 16: three at length 192) waits about one round trip instead of one an iteration; it
// costs 16 registers, which the persistent step's attention (one iteration at batch 1) cannot spare.
// q, k and v are read through L2 (__ldcg): in the persistent step an earlier stage of the same kernel wrote them.

// One iteration's k and v: the columns s0 and s0 + round of a group (zeros past the length).
struct KvPair {
  uint4 k0, k1, v0, v1;
};
template <typename T>
__device__ __forceinline__ KvPair load_kv_pair(const T* kh, const T* vh, int64_t s0, int64_t round, int64_t len,
                                               int D) {
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const int64_t s1 = s0 + round;
  KvPair p;
  p.k0 = s0 < len ? __ldcg(reinterpret_cast<const uint4*>(kh + s0 * D)) : zero;
  p.k1 = s1 < len ? __ldcg(reinterpret_cast<const uint4*>(kh + s1 * D)) : zero;
  p.v0 = s0 < len ? __ldcg(reinterpret_cast<const uint4*>(vh + s0 * D)) : zero;
  p.v1 = s1 < len ? __ldcg(reinterpret_cast<const uint4*>(vh + s1 * D)) : zero;
  return p;
}

// Where a lane of split `split` of (row, head) bh works, and what it loads first: the row's length and, for the
// pipelined loop, its group's first iteration of k and v (split_vec_begin), from which split_vec_finish goes on.
template <typename T>
struct VecSplitStart {
  const T* kh;  // the lane's 16 bytes of column 0 of its kv head's k cache
  const T* vh;  // and of the v cache
  int64_t len;    // the row's columns
  int64_t first;  // the warp's first column (its group's: + group)
  int64_t round;  // the columns all blocks of a head take at once
  KvPair kv;      // columns first + group and + round (kLoad)
};

template <typename T, int G, int kW, bool kLoad = true>
__device__ __forceinline__ VecSplitStart<T> split_vec_begin(const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                                                            const int64_t* __restrict__ lengths, int H, int Hkv,
                                                            int64_t S, int bh, int split, int splits) {
  constexpr int kVec = 16 / sizeof(T), D = G * kVec, kCols = 32 / G;  // kCols: columns per warp per round
  const int b = bh / H, kvh = bh % H / (H / Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / G, gl = lane % G;
  VecSplitStart<T> st;
  st.len = min(lengths[b], S);
  st.round = static_cast<int64_t>(splits) * kW * kCols;
  st.first = (static_cast<int64_t>(split) * kW + warp) * kCols;
  st.kh = k_cache + (static_cast<int64_t>(b) * Hkv + kvh) * S * D + gl * kVec;
  st.vh = v_cache + (static_cast<int64_t>(b) * Hkv + kvh) * S * D + gl * kVec;
  if constexpr (kLoad) st.kv = load_kv_pair<T>(st.kh, st.vh, st.first + group, st.round, st.len, D);
  return st;
}

// Where split_vec_begin ran before the wait: column `fresh` (the one the kernel before wrote) loaded again if
// it is one of the first iteration's.
template <typename T, int G>
__device__ __forceinline__ void reload_fresh(VecSplitStart<T>& st, int64_t fresh) {
  constexpr int D = G * (16 / sizeof(T));
  const int64_t s0 = st.first + static_cast<int>(threadIdx.x % 32) / G, s1 = s0 + st.round;
  if (s0 == fresh && s0 < st.len) {
    st.kv.k0 = __ldcg(reinterpret_cast<const uint4*>(st.kh + s0 * D));
    st.kv.v0 = __ldcg(reinterpret_cast<const uint4*>(st.vh + s0 * D));
  }
  if (s1 == fresh && s1 < st.len) {
    st.kv.k1 = __ldcg(reinterpret_cast<const uint4*>(st.kh + s1 * D));
    st.kv.v1 = __ldcg(reinterpret_cast<const uint4*>(st.vh + s1 * D));
  }
}

// Split `split` of (row, head) bh by a block of kW warps, from split_vec_begin's start (kPipelined: with its
// first iteration loaded; else each iteration loads its own as it starts, one iteration's registers at a time).
template <typename T, int G, int kW, bool kPipelined>
__device__ __forceinline__ void split_vec_finish(SplitShared<kW>& sh, const T* __restrict__ q,
                                                 const VecSplitStart<T>& st, float* __restrict__ part_acc,
                                                 float* __restrict__ part_ml, T* __restrict__ out,
                                                 int* __restrict__ counters, float scale, int bh, int split,
                                                 int splits) {
  constexpr int kVec = 16 / sizeof(T), D = G * kVec;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / G, gl = lane % G;
  const int64_t len = st.len, round = st.round;

  float qv[kVec], acc[kVec];
  {
    cuda_math::unpack16<T>(__ldcg(reinterpret_cast<const uint4*>(q + static_cast<int64_t>(bh) * D + gl * kVec)), qv);
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      qv[e] *= scale;
      acc[e] = 0.f;
    }
  }
  float m = -INFINITY, l = 0.f;
  // Warp-uniform loop (the group shuffles need every lane); a lane whose column is past the length loads
  // nothing and leaves its state alone.
  KvPair next;
  if constexpr (kPipelined) next = st.kv;
  for (int64_t base = st.first; base < len; base += 2 * round) {
    const int64_t s0 = base + group, s1 = s0 + round;
    const bool ok0 = s0 < len, ok1 = s1 < len;
    KvPair kv;
    if constexpr (kPipelined) {  // the next iteration's loads in flight during this one's arithmetic
      kv = next;
      if (base + 2 * round < len) next = load_kv_pair<T>(st.kh, st.vh, s0 + 2 * round, round, len, D);
    } else {
      kv = load_kv_pair<T>(st.kh, st.vh, s0, round, len, D);
    }
    float k0f[kVec], k1f[kVec], v0f[kVec], v1f[kVec];
    cuda_math::unpack16<T>(kv.k0, k0f);
    cuda_math::unpack16<T>(kv.k1, k1f);
    float dot0 = 0.f, dot1 = 0.f;
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      dot0 += qv[e] * k0f[e];
      dot1 += qv[e] * k1f[e];
    }
    dot0 = group_sum<G>(dot0);
    dot1 = group_sum<G>(dot1);
    if (ok0) {  // else s1 is past the length too
      const float m_new = fmaxf(m, ok1 ? fmaxf(dot0, dot1) : dot0);
      const float corr = rescale(m, m_new), p0 = expf(dot0 - m_new), p1 = ok1 ? expf(dot1 - m_new) : 0.f;
      l = l * corr + p0 + p1;
      cuda_math::unpack16<T>(kv.v0, v0f);
      cuda_math::unpack16<T>(kv.v1, v1f);
#pragma unroll
      for (int e = 0; e < kVec; ++e)
        acc[e] = acc[e] * corr + p0 * v0f[e] + p1 * v1f[e];
      m = m_new;
    }
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
    for (int e = 0; e < kVec; ++e) sh.acc[warp][gl * kVec + e] = acc[e];
  }
  finish_split<T, kW>(sh, m, l, part_acc, part_ml, out, counters, bh, split, splits, D);
}

// Split `split` of (row, head) bh by a block of kW warps, all of it after any wait (the persistent step's).
template <typename T, int G, int kW, bool kPipelined = false>
__device__ __forceinline__ void split_vec_block(SplitShared<kW>& sh, const T* __restrict__ q,
                                                const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                                                const int64_t* __restrict__ lengths, float* __restrict__ part_acc,
                                                float* __restrict__ part_ml, T* __restrict__ out,
                                                int* __restrict__ counters, int H, int Hkv, int64_t S, float scale,
                                                int bh, int split, int splits) {
  split_vec_finish<T, G, kW, kPipelined>(
      sh, q, split_vec_begin<T, G, kW, kPipelined>(k_cache, v_cache, lengths, H, Hkv, S, bh, split, splits), part_acc,
      part_ml, out, counters, scale, bh, split, splits);
}

// Block (b*H + h, split), pipelined. At most 64 registers, so that 8 blocks fit a SM: the pipeline alone took
// 71, and 7 blocks (ptxas, sm_90: no spills).
// fresh: null, or (B) the cache column the kernel before wrote in each row (the step's new token). Then the
// block loads the row's length and its first iteration of k and v before it waits for that kernel, all but
// column fresh[b] (loaded again after the wait): the cache's other columns are earlier steps', and the lengths
// and fresh columns the step's inputs, which kernels before the one before wrote, complete by then (every kernel
// here lets the next one start only after its own wait). At one row all the columns a block takes are in its
// first iteration: their DRAM round trip overlaps the end of the kernel before instead of following it. Head
// dims 16 to 128 only (kEarly).
template <typename T, int G>
__global__ void __launch_bounds__(kWarps * 32, 8)
    split_vec_kernel(const T* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                     const int64_t* __restrict__ lengths, const int64_t* __restrict__ fresh,
                     float* __restrict__ part_acc, float* __restrict__ part_ml, T* __restrict__ out,
                     int* __restrict__ counters, int H, int Hkv, int64_t S, float scale) {
  __shared__ SplitShared<kWarps> sh;
  const int bh = static_cast<int>(blockIdx.x), split = static_cast<int>(blockIdx.y), splits = static_cast<int>(gridDim.y);
  // Head dims 8 and 256 (G 1 and 32) without the early loads: with them ptxas spilled there (24 and 4 bytes).
  constexpr bool kEarly = G >= 2 && G <= 16;
  const bool early = kEarly && fresh != nullptr;
  VecSplitStart<T> st;
  int64_t fresh_column = -1;
  if (early) {
    fresh_column = fresh[bh / H];
    st = split_vec_begin<T, G, kWarps>(k_cache, v_cache, lengths, H, Hkv, S, bh, split, splits);
  }
  wait_for_previous_kernel();  // q and the cache's new column come from the kernel before
  allow_next_kernel();
  if (early) reload_fresh<T, G>(st, fresh_column);
  else st = split_vec_begin<T, G, kWarps>(k_cache, v_cache, lengths, H, Hkv, S, bh, split, splits);
  split_vec_finish<T, G, kWarps, true>(sh, q, st, part_acc, part_ml, out, counters, scale, bh, split, splits);
}

template <typename T>
__global__ void combine_kernel(const float* __restrict__ part_acc, const float* __restrict__ part_ml,
                               T* __restrict__ out, int splits, int D) {
  wait_for_previous_kernel();
  allow_next_kernel();
  combine_head<T>(part_acc, part_ml, out, blockIdx.x, splits, D);
}

}  // namespace chatmill::model::fused::kernels
