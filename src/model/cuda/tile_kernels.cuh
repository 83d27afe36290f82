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
// Then the warps' partial sums meet in shared memory, and 2 or 4 warps (one for each half of x and column parity)
// store the results through the plan.
//
// The order of k within a dot product is free, so each lane loads 8 consecutive values of a row (16 bytes) and
// the 16 bytes of x at the same k, and these fill the A and B fragments of two mma's: values 0-3 stand for
// columns 2t, 2t+1, 2t+8, 2t+9 of the first (t = lane % 4), values 4-7 for those of the second. A row's slab
// is read by the 4 lanes of a group, 64 contiguous bytes an instruction a row.
//
// x (M, K) comes from global memory through the read-only path (every block reads all of it; L1 and L2 serve
// the re-reads). Each block normalising x for itself from the residual, as the skinny kernel's prologue does,
// would read the residual twice (~256 KB a block at 16 rows of 4096) before its first multiply. Instead, with a
// NormX (kNormX), the normalisation happens as x is loaded, from each row's sum of squares, which the kernel
// that last added to the residual left as partial sums, one a tile (ResidualPlan: residual += x W^T in the
// epilogue, HF's rounding). So the step at 3 to 16 rows needs no norm kernels between layers: q/k/v with the
// norm and rotary, attention, o with the residual add, gate/up with the norm and SwiGLU, down with the residual
// add. The partial sums are added in a fixed order: the same step gives the same bits every time.
// Plain device code: compiled by nvcc (fused_kernels.cu) and, in the tests, for the CPU emulator.
// Shape legend: M rows of x, K inner dim, C hidden.
#pragma once
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <type_traits>

#include "model/cuda/mma.cuh"
#include "model/cuda/pdl.cuh"
#include "model/cuda/rms_norm_row.cuh"
#include "model/cuda/skinny_kernels.cuh"

namespace chatmill::model::fused::kernels {

constexpr int kTileRows = 16;  // most rows of x: two n = 8 halves of the mma
constexpr int kTileWarps = 8;  // warps a block, splitting K
constexpr int kTileDepth = 4;  // slabs (32 values of a row) each lane has in flight

// x = rms_norm(residual) * weight, row by row, rounded as fused::add_rms_norm rounds, from sumsq: parts x
// kTileRows partial sums of each row's squares (ResidualPlan's, one part a tile of its output).
template <typename T>
struct NormX {
  const T* residual = nullptr;  // (M, K)
  const T* weight = nullptr;    // (K)
  const float* sumsq = nullptr;
  int64_t parts = 0;
  float eps = 0.f;
};

// residual (M, N) += x W^T, rounded as HF's residual + o_proj(...) is (the projection's output to T, then the
// sum to T), in place: each element is read and written by the one lane that computes it. One row per item.
// Each tile also leaves the sums of squares of its 16 columns of every row in sumsq (tiles x kTileRows),
// what a NormX needs of the new residual.
template <typename T>
struct ResidualPlan {
  const T* w;     // (N, K)
  T* residual;    // (M, N)
  float* sumsq;   // (tiles, kTileRows)
  int64_t N;

  static constexpr int kRows = 1;
  static constexpr bool kStats = true;
  __host__ __device__ __forceinline__ int64_t items() const { return N; }
  __device__ __forceinline__ void rows(int64_t n, int64_t K, const T*& r0, const T*& r1) const {
    r0 = w + n * K;
    r1 = r0;
  }
  // Returns the new element's square, for the row's sum.
  __device__ __forceinline__ float store(int64_t n, int m, float a0, float) const {
    return add(n, m, a0, residual[m * N + n]);
  }
  // The element's old value, loaded as the tile starts (RowAhead: see EpilogueAhead).
  struct RowAhead {
    T old{};
  };
  __device__ __forceinline__ RowAhead row_ahead(int64_t n, int m) const {
    return {cuda_math::load_early(residual + m * N + n)};
  }
  __device__ __forceinline__ float store(int64_t n, int m, float a0, float, const RowAhead& a) const {
    return add(n, m, a0, a.old);
  }
  __device__ __forceinline__ float add(int64_t n, int m, float a0, T old) const {
    const float h = cuda_math::rnd<T>(static_cast<float>(old) + cuda_math::rnd<T>(a0));
    residual[m * N + n] = static_cast<T>(h);
    return h * h;
  }
  __device__ __forceinline__ void row_stat(int64_t tile, int m, float v) const { sumsq[tile * kTileRows + m] = v; }
};

// Whether a plan leaves row statistics (ResidualPlan); the others' store returns nothing.
template <typename Plan, typename = void>
struct PlanStats : std::false_type {};
template <typename Plan>
struct PlanStats<Plan, std::void_t<decltype(Plan::kStats)>> : std::integral_constant<bool, Plan::kStats> {};

// The plan's store (with what it takes besides the results, if anything): a stats plan's square, else 0.
template <typename Plan, typename... Extra>
__device__ __forceinline__ float store_item(const Plan& plan, int64_t n, int m, float a0, float a1,
                                            const Extra&... extra) {
  if constexpr (PlanStats<Plan>::value) {
    return plan.store(n, m, a0, a1, extra...);
  } else {
    plan.store(n, m, a0, a1, extra...);
    return 0.f;
  }
}

// What an epilogue lane's stores read besides the results (Plan::RowAhead: RopePlan's position, column and
// inv_freq; ResidualPlan's old residual), loaded as the tile starts so that their latency passes under the
// tile's rounds: loaded in the stores, they held the whole block (the barrier after the epilogue) for a loaded
// DRAM latency a tile. Slot i: item n0 + 8 i (one-row plans: two items a lane; two-row plans: one).
template <typename Plan, typename = void>
struct EpilogueAhead {  // plans whose stores read nothing else
  __device__ __forceinline__ void load(const Plan&, int64_t, int) {}
  __device__ __forceinline__ float store(const Plan& plan, int64_t n, int, int m, float a0, float a1) const {
    return store_item(plan, n, m, a0, a1);
  }
};
template <typename Plan>
struct EpilogueAhead<Plan, std::void_t<typename Plan::RowAhead>> {
  typename Plan::RowAhead a[Plan::kRows == 2 ? 1 : 2];
  __device__ __forceinline__ void load(const Plan& plan, int64_t n0, int m) {
#pragma unroll
    for (int i = 0; i < (Plan::kRows == 2 ? 1 : 2); ++i)
      if (n0 + 8 * i < plan.items()) a[i] = plan.row_ahead(n0 + 8 * i, m);
  }
  __device__ __forceinline__ float store(const Plan& plan, int64_t n, int i, int m, float a0, float a1) const {
    return store_item(plan, n, m, a0, a1, a[i]);
  }
};

// inv[m] = 1 / sqrt(mean of row m's squares + eps) for m < kTileRows, from a NormX's partial sums, added in a
// fixed order (16 threads a row, then one). Every thread of the block calls it (blockDim.x == 256).
template <typename T>
__device__ __forceinline__ void row_inv_rms(const NormX<T>& in, int64_t K, float* inv) {
  __shared__ float part[16][kTileRows];
  const int m = threadIdx.x % kTileRows, p = threadIdx.x / kTileRows;
  float s = 0.f;
  for (int64_t i = p; i < in.parts; i += 16) s += in.sumsq[i * kTileRows + m];
  part[p][m] = s;
  __syncthreads();
  if (threadIdx.x < kTileRows) {
    float total = 0.f;
    for (int q = 0; q < 16; ++q) total += part[q][threadIdx.x];
    inv[threadIdx.x] = rsqrtf(total / static_cast<float>(K) + in.eps);
  }
  __syncthreads();
}

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

// NT: halves of 8 rows of x (1: M <= 8, 2: M <= 16). Tiles blockIdx.x, + gridDim.x, ... x: (M, K), or with
// kNormX the rows `norm` describes (x unused).
template <typename T, int NT, typename Plan, bool kNormX>
__global__ void __launch_bounds__(kTileWarps * 32, 2)
    tile_kernel(const T* __restrict__ x, NormX<T> norm, int M, Plan plan, int64_t K) {
  static_assert(kTileWarps * 32 == 16 * kTileRows, "row_inv_rms: 16 threads a row");
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
  __shared__ float inv_rms[kTileRows];
  if constexpr (kNormX) row_inv_rms(norm, K, inv_rms);
  const uint4* xr[2];  // the rows of x (or of the residual) this lane's B fragments take: g, and g + 8
  float xinv[2];       // with kNormX, those rows' 1 / rms
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const T* base = kNormX ? norm.residual : x;
    xr[j] = g + 8 * j < M ? reinterpret_cast<const uint4*>(base) + (g + 8 * j) * chunks : nullptr;
    xinv[j] = kNormX && g + 8 * j < M ? inv_rms[g + 8 * j] : 0.f;  // rows past M: their sums are nobody's
  }
  // This lane's row of x in the epilogue (warps 0 to 2 NT - 1: see there).
  const int m_out = 8 * (warp / 2) + 2 * t + warp % 2;
  for (; tile < tiles; tile += gridDim.x) {
    EpilogueAhead<Plan> ahead;
    if (warp < 2 * NT && m_out < M) ahead.load(plan, Plan::kRows == 2 ? tile * 8 + g : tile * 16 + g, m_out);
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
        uint4 wn = make_uint4(0, 0, 0, 0);  // with kNormX, the norm weight's chunk c
        if constexpr (kNormX) {
          if (c < chunks) wn = __ldg(reinterpret_cast<const uint4*>(norm.weight) + c);
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          uint4 xv = xr[j] != nullptr && c < chunks ? __ldg(xr[j] + c) : make_uint4(0, 0, 0, 0);
          if constexpr (kNormX) xv = cuda_math::normalise_chunk<T>(xv, wn, xinv[j]);  // zeros stay zeros (xinv finite)
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
    // The epilogue, one warp for each (half j of x, column parity e) of the lanes' accumulators: warp 2j + e
    // adds up the 8 warps' D[g][2t + e] and D[g + 8][2t + e], for x row m = 8j + 2t + e, and stores them.
    if (warp < 2 * NT) {
      const int j = warp / 2, e = warp % 2, m = m_out;
      float lo = 0.f, hi = 0.f;
      for (int v = 0; v < kTileWarps; ++v) {
        lo += partial[v][j * 4 + e][lane];
        hi += partial[v][j * 4 + 2 + e][lane];
      }
      const int64_t items = plan.items();
      float stat = 0.f;  // a stats plan's: this lane's share of row m's sum
      if (m < M) {
        if constexpr (Plan::kRows == 2) {
          const int64_t n = tile * 8 + g;
          if (n < items) stat += ahead.store(plan, n, 0, m, lo, hi);
        } else {
          const int64_t n = tile * 16 + g;
          if (n < items) stat += ahead.store(plan, n, 0, m, lo, 0.f);
          if (n + 8 < items) stat += ahead.store(plan, n + 8, 1, m, hi, 0.f);
        }
      }
      if constexpr (PlanStats<Plan>::value) {
        // Row m's sum over the tile's columns: over the 8 lanes of the same t (g = 0..7), by the whole warp.
        for (int offset = 4; offset < 32; offset *= 2) stat += __shfl_xor_sync(0xffffffffu, stat, offset);
        if (g == 0 && m < M) plan.row_stat(tile, m, stat);
      }
    }
    __syncthreads();  // partial is the next tile's
  }
}

}  // namespace chatmill::model::fused::kernels
