// The tensor-core GEMM of decode's projections at 3 to 16 rows of x (model/fused_ops.h: LaunchOptions::
// tile_gemm): out = x W^T through the one-row kernel's plans (skinny_kernels.cuh: PartsPlan; RopePlan and
// SiluPlan with their epilogues), each weight streamed once, each 16 rows of it multiplied into all rows of x
// by mma.sync (model/cuda/mma.cuh), where the skinny kernel's CUDA-core FMAs and x re-reads bind past 2 rows.
//
// A block works on one tile at a time: the 16 rows of A. For a two-row plan (SiluPlan, RopePlan) that is 8
// items, their first rows as A's rows 0-7 and their second rows as rows 8-15, so that the lane holding an item's
// first result holds its second too, for the epilogue; for a one-row plan, 16 items. The block's 8 warps split
// K: warp w reads 32-value slabs w, w + 8, ... of the 16 rows, so that together they read every row front to back,
// 512 bytes a round, kTileDepth slabs a lane in flight, the last round of a tile loading the next tile's first.
// Then the warps' partial sums meet in shared memory, and warp 0 stores the results through the plan.
//
// The order of k within a dot product is free, so each lane loads 8 consecutive values of a row (16 bytes) and
// the 16 bytes of x at the same k, and these fill the A and B fragments of two mma's: values 0-3 stand for
// columns 2t, 2t+1, 2t+8, 2t+9 of the first (t = lane % 4), values 4-7 for those of the second. A row's slab
// is read by the 4 lanes of a group, 64 contiguous bytes an instruction a row.
//
// x (M, K) comes from global memory through the read-only path (every block reads all of it; L1 and L2 serve
// the re-reads). The norm stays a kernel of its own before it (fused::add_rms_norm): at 16 rows, each block
// normalising x for itself, as the skinny kernel's prologue does, would read ~256 KB a block from L2.
// Plain device code: compiled by nvcc (fused_kernels.cu) and, in the tests, for the CPU emulator.
// Shape legend: M rows of x, K inner dim.
#pragma once
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <type_traits>

#include "model/cuda/mma.cuh"
#include "model/cuda/pdl.cuh"
#include "model/cuda/skinny_kernels.cuh"

namespace chatmill::model::fused::kernels {

constexpr int kTileRows = 16;  // most rows of x: two n = 8 halves of the mma
constexpr int kTileWarps = 8;  // warps a block, splitting K
constexpr int kTileDepth = 4;  // slabs (32 values of a row) each lane has in flight

// The tiles of a plan: 16 / kRows items each.
template <typename Plan>
__host__ __device__ __forceinline__ int64_t tile_count(const Plan& plan) {
  constexpr int64_t kItems = kTileRows / Plan::kRows;
  return (plan.items() + kItems - 1) / kItems;
}

// A's rows g and g + 8 of `tile` (nulls past the plan's items).
template <typename T, typename Plan>
__device__ __forceinline__ void tile_rows(const Plan& plan, int64_t tile, int64_t K, int g, const uint4* (&w)[2]) {
  const uint4* r[2];
  if constexpr (Plan::kRows == 2) {
    item_rows<T>(plan, tile * 8 + g, K, r);
    w[0] = r[0];
    w[1] = r[1];
  } else {
    item_rows<T>(plan, tile * 16 + g, K, r);
    w[0] = r[0];
    item_rows<T>(plan, tile * 16 + 8 + g, K, r);
    w[1] = r[0];
  }
}

// Lane t of its group's chunks of slabs s0, s0 + kTileWarps, ... (kTileDepth of them) of both rows; zeros past
// the row's end and for a null row. Streamed: never reused.
__device__ __forceinline__ void tile_load(const uint4* const (&w)[2], uint4 (&buf)[kTileDepth][2], int64_t s0,
                                          int64_t chunks, int t) {
#pragma unroll
  for (int u = 0; u < kTileDepth; ++u) {
    const int64_t c = (s0 + u * kTileWarps) * 4 + t;
#pragma unroll
    for (int r = 0; r < 2; ++r) buf[u][r] = w[r] != nullptr && c < chunks ? __ldcs(w[r] + c) : make_uint4(0, 0, 0, 0);
  }
}

// NT: halves of 8 rows of x (1: M <= 8, 2: M <= 16). Tiles blockIdx.x, + gridDim.x, ...
template <typename T, int NT, typename Plan>
__global__ void __launch_bounds__(kTileWarps * 32, 2)
    tile_kernel(const T* __restrict__ x, int M, Plan plan, int64_t K) {
  constexpr bool kBf16 = std::is_same<T, c10::BFloat16>::value;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t chunks = K / 8, slabs = (chunks + 3) / 4, tiles = tile_count(plan);
  const int64_t rounds = (slabs + kTileWarps * kTileDepth - 1) / (kTileWarps * kTileDepth);
  __shared__ float partial[kTileWarps][NT * 4][32];
  int64_t tile = blockIdx.x;
  const uint4* w[2];
  uint4 buf[kTileDepth][2];
  tile_rows<T>(plan, tile, K, g, w);
  tile_load(w, buf, warp, chunks, t);  // weights: no kernel's output, so before the wait
  cuda_launch::wait_for_previous_kernel();
  cuda_launch::allow_next_kernel();
  const uint4* xr[2];  // the rows of x this lane's B fragments take: g, and g + 8
#pragma unroll
  for (int j = 0; j < 2; ++j) xr[j] = g + 8 * j < M ? reinterpret_cast<const uint4*>(x) + (g + 8 * j) * chunks : nullptr;
  for (; tile < tiles; tile += gridDim.x) {
    float d[NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j) d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.f;
    for (int64_t round = 0; round < rounds; ++round) {
      // The next loads go out before this round's multiplies: the next round's, or the next tile's first.
      const uint4* w_next[2] = {w[0], w[1]};
      int64_t s_next = warp + (round + 1) * kTileWarps * kTileDepth;
      if (round + 1 == rounds) {
        tile_rows<T>(plan, tile + gridDim.x, K, g, w_next);  // nulls past the last tile: zeros
        s_next = warp;
      }
      uint4 next[kTileDepth][2];
      tile_load(w_next, next, s_next, chunks, t);
#pragma unroll
      for (int u = 0; u < kTileDepth; ++u) {
        // Past the last slab, zeros in both operands: no branch, so that x's loads can be issued together.
        const int64_t c = (warp + (round * kTileDepth + u) * kTileWarps) * 4 + t;
        const uint32_t a0[4] = {buf[u][0].x, buf[u][1].x, buf[u][0].y, buf[u][1].y};
        const uint32_t a1[4] = {buf[u][0].z, buf[u][1].z, buf[u][0].w, buf[u][1].w};
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const uint4 xv = xr[j] != nullptr && c < chunks ? __ldg(xr[j] + c) : make_uint4(0, 0, 0, 0);
          const uint32_t b0[2] = {xv.x, xv.y}, b1[2] = {xv.z, xv.w};
          cuda_math::mma_16816<T, kBf16>(d[j], a0, b0);
          cuda_math::mma_16816<T, kBf16>(d[j], a1, b1);
        }
      }
#pragma unroll
      for (int u = 0; u < kTileDepth; ++u) {
        buf[u][0] = next[u][0];
        buf[u][1] = next[u][1];
      }
      if (round + 1 == rounds) {
        w[0] = w_next[0];
        w[1] = w_next[1];
      }
    }
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[warp][j * 4 + i][lane] = d[j][i];
    __syncthreads();
    if (warp == 0) {
      const int64_t items = plan.items();
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        float sum[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          sum[i] = 0.f;
          for (int v = 0; v < kTileWarps; ++v) sum[i] += partial[v][j * 4 + i][lane];
        }
        // sum[e]: D[g][2t + e], sum[2 + e]: D[g + 8][2t + e], for x row m = 8j + 2t + e.
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int m = 8 * j + 2 * t + e;
          if (m >= M) continue;
          if constexpr (Plan::kRows == 2) {
            const int64_t n = tile * 8 + g;
            if (n < items) plan.store(n, m, sum[e], sum[2 + e]);
          } else {
            const int64_t n = tile * 16 + g;
            if (n < items) plan.store(n, m, sum[e], 0.f);
            if (n + 8 < items) plan.store(n + 8, m, sum[2 + e], 0.f);
          }
        }
      }
    }
    __syncthreads();  // partial is the next tile's
  }
}

}  // namespace chatmill::model::fused::kernels
