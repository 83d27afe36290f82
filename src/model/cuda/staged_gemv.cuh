// The one- or two-row GEMV of a projection that follows a stage which leaves DRAM idle (decode attention at
// one row: 3 MB read in about 6 us). Launched with PDL during that stage, each warp copies the first 8 KB of its
// first weight row into shared memory (cp.async) before waiting on the kernel before, so those bytes stream
// while the stage runs; after the wait it multiplies the staged prefix from shared memory and streams the rest.
// Why not an L2 prefetch: in the persistent step, per-line and bulk L2 prefetches of the o rows during attention
// both measured slower on an H200 (bench/README.md, runs 5 and 6); a copy into shared memory is a load the
// kernel itself waits on, not a hint.
//
// Shapes: x (M, K), w (N, K), out (M, N), all contiguous, K % 8 == 0, 16-byte aligned. M: 1 or 2.
#pragma once
#include <cstdint>

#include "model/cuda/device_math.cuh"
#include "model/cuda/pdl.cuh"
#include "model/cuda/reduce.cuh"

namespace chatmill::model::fused::kernels {

constexpr int kStagedWarps = 6;            // warps a block: 6 x 8 KB = 48 KB, the static shared-memory limit
constexpr int64_t kStagedChunks = 512;     // 16-byte chunks staged a warp: 8 KB, one 4096-wide bf16 row
constexpr int kStreamedInFlight = 4;       // 16-byte loads a lane keeps in flight on the streamed rows
// At most 40 registers a thread (__launch_bounds__ for 8 blocks an SM: 65536 / (8 x 192), allocated in eights;
// shared memory allows 4): at one row the attention kernel before holds about half of each SM's registers (512
// blocks of 128 threads at 64), and 4 staged blocks of 192 threads fit in the other half only so.
constexpr int kStagedMinBlocks = 8;

// dst = src, 16 bytes, asynchronously (cp.async.cg: through L2 only); a plain copy off the GPU.
__device__ __forceinline__ void copy_async16(uint4* dst, const uint4* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src) : "memory");
#else
  *dst = *src;
#endif
}

// Waits for this thread's copy_async16 copies (then __syncwarp makes the warp's visible to each other).
__device__ __forceinline__ void wait_async_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;" ::: "memory");
#endif
}

// *p: a plain load from shared memory, a streaming one (evict first: read once) from global memory.
template <bool kShared>
__device__ __forceinline__ uint4 load_weights16(const uint4* p) {
  if constexpr (kShared) return *p;
  else return __ldcs(p);
}

// acc[m] += x_m . w over chunks [c0, c_end) step 32 (the lane's), w in shared (kShared) or global memory; x: M
// rows of `chunks` chunks.
template <typename T, int M, bool kShared>
__device__ __forceinline__ void staged_dot(const uint4* w, const uint4* __restrict__ x, int64_t chunks, int64_t c0,
                                           int64_t c_end, float (&acc)[M]) {
  for (int64_t base = c0; base < c_end; base += 32 * kStreamedInFlight) {
    uint4 v[kStreamedInFlight];
#pragma unroll
    for (int u = 0; u < kStreamedInFlight; ++u) {
      const int64_t c = base + 32 * u;
      v[u] = c < c_end ? load_weights16<kShared>(w + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kStreamedInFlight; ++u) {
      const int64_t c = base + 32 * u;
      if (c >= c_end) break;
      float wf[8];
      cuda_math::unpack16<T>(v[u], wf);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[8];
        cuda_math::unpack16<T>(__ldg(x + m * chunks + c), xf);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[m] += wf[e] * xf[e];
      }
    }
  }
}

// Rows n = warp id, + all warps, ...; the first of each warp has its first kStagedChunks chunks staged.
template <typename T, int M>
__global__ void __launch_bounds__(kStagedWarps * 32, kStagedMinBlocks) staged_gemv_kernel(const T* __restrict__ x,
                                                                        const T* __restrict__ w, T* __restrict__ out,
                                                                        int64_t N, int64_t K) {
  __shared__ uint4 stage[kStagedWarps][kStagedChunks];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t chunks = K / 8, staged = chunks < kStagedChunks ? chunks : kStagedChunks;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kStagedWarps + warp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kStagedWarps;
  const uint4* wv = reinterpret_cast<const uint4*>(w);
  if (first < N)  // the weights are no kernel's output: copied before the wait
    for (int64_t c = lane; c < staged; c += 32) copy_async16(&stage[warp][c], wv + first * chunks + c);
  cuda_launch::wait_for_previous_kernel();  // x comes from the kernel before
  cuda_launch::allow_next_kernel();
  wait_async_copies();
  __syncwarp();
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  for (int64_t n = first; n < N; n += stride) {
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] = 0.f;
    const uint4* row = wv + n * chunks;
    if (n == first) {
      staged_dot<T, M, true>(stage[warp], xv, chunks, lane, staged, acc);
      staged_dot<T, M, false>(row, xv, chunks, staged + lane, chunks, acc);
    } else {
      staged_dot<T, M, false>(row, xv, chunks, lane, chunks, acc);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float s = cuda_math::warp_sum(acc[m]);
      if (lane == 0) out[m * N + n] = static_cast<T>(s);
    }
  }
}

}  // namespace chatmill::model::fused::kernels
