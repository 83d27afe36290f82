// The block-order GEMV of bench/block_gemv.h.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "block_gemv.h"
#include "cuda_util.cuh"

namespace chatmill::bench {

namespace {

constexpr int kWarps = 8;
constexpr int kStep = kWarps * 32;  // 16-byte chunks of a row a block reads at once: 4 KB
constexpr int kMaxChunks = 11008 / 8;

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  const auto* wp = reinterpret_cast<const __nv_bfloat162*>(&w);
  const auto* xp = reinterpret_cast<const __nv_bfloat162*>(&x);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = __bfloat1622float2(wp[i]), b = __bfloat1622float2(xp[i]);
    s += a.x * b.x + a.y * b.y;
  }
  return s;
}

// Block item i: rows 8i..8i+7. A row's chunks c = j * kStep + warp * 32 + lane (j < J, c < chunks): in one step
// (a row and a j) the block reads 4 KB of the row front to back. Slots t = 0..8J-1 go row by row (row t / J,
// step t % J), 8 a batch, each batch's loads in flight while the one before is multiplied; the last batch of an
// item loads the next item's first. Each warp keeps a partial sum of each of the 8 rows; the block adds them up.
template <int J>
__global__ void __launch_bounds__(kWarps * 32, 2)
    block_gemv_kernel(const uint4* __restrict__ w, const uint4* __restrict__ x, __nv_bfloat16* __restrict__ out,
                      int64_t items, int chunks) {
  __shared__ uint4 xs[kMaxChunks];
  __shared__ float partial[kWarps][8];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) xs[c] = x[c];
  __syncthreads();
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 cur[8], nxt[8];
  auto load = [&](uint4 (&dst)[8], int64_t item, int batch) {
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int t = batch * 8 + u, r = t / J, c = (t % J) * kStep + warp * 32 + lane;
      dst[u] = c < chunks ? __ldcs(w + (item * 8 + r) * chunks + c) : zero;
    }
  };
  int64_t item = blockIdx.x;
  if (item < items) load(cur, item, 0);
  for (; item < items; item += gridDim.x) {
    float acc[8];
#pragma unroll
    for (int r = 0; r < 8; ++r) acc[r] = 0.f;
#pragma unroll
    for (int batch = 0; batch < J; ++batch) {  // 8 J slots: J batches of 8
      if (batch + 1 < J) load(nxt, item, batch + 1);
      else if (item + gridDim.x < items) load(nxt, item + gridDim.x, 0);
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const int t = batch * 8 + u, r = t / J, c = (t % J) * kStep + warp * 32 + lane;
        if (c < chunks) acc[r] += dot8(cur[u], xs[c]);
        cur[u] = nxt[u];
      }
    }
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      float v = acc[r];
#pragma unroll
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) partial[warp][r] = v;
    }
    __syncthreads();
    if (threadIdx.x < 8) {
      float s = 0.f;
      for (int k = 0; k < kWarps; ++k) s += partial[k][threadIdx.x];
      out[item * 8 + threadIdx.x] = __float2bfloat16(s);
    }
    __syncthreads();
  }
}

template <int J>
void launch(const void* w, const void* x, void* out, int64_t N, int64_t K, cudaStream_t stream) {
  const int64_t items = N / 8;
  const int64_t grid = std::min<int64_t>(items, cuda_util::resident(block_gemv_kernel<J>, kWarps * 32, 0, "block_gemv"));
  block_gemv_kernel<J><<<static_cast<unsigned>(grid), kWarps * 32, 0, stream>>>(
      static_cast<const uint4*>(w), static_cast<const uint4*>(x), static_cast<__nv_bfloat16*>(out), items,
      static_cast<int>(K / 8));
  cuda_util::check(cudaGetLastError(), "block_gemv", "launch");
}

}  // namespace

void block_gemv_bf16(const void* w, const void* x, void* out, int64_t N, int64_t K, cudaStream_t stream) {
  for (const void* p : {w, x, static_cast<const void*>(out)})
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) throw std::invalid_argument("block_gemv: pointers must be 16-byte aligned");
  if (N % 8 != 0) throw std::invalid_argument("block_gemv: N must be a multiple of 8, got " + std::to_string(N));
  if (K == 4096) launch<2>(w, x, out, N, K, stream);          // 512 chunks a row: 2 steps
  else if (K == 11008) launch<6>(w, x, out, N, K, stream);    // 1376 chunks: 6 steps, the last partial
  else throw std::invalid_argument("block_gemv: K must be 4096 or 11008, got " + std::to_string(K));
}

}  // namespace chatmill::bench
