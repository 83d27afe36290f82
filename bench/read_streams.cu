// The read patterns of bench/read_streams.h. Each kernel XORs what it reads into a register and writes it out only
// if it equals a constant a zeroed buffer cannot give, so the loads stay and nothing else touches memory.
#include <cuda/ptx>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda_util.cuh"
#include "read_streams.h"

namespace chatmill::bench {

namespace {

constexpr unsigned kImpossible = 0x9e3779b9u;  // a zeroed buffer XORs to 0

__device__ __forceinline__ unsigned fold(const uint4& v) { return v.x ^ v.y ^ v.z ^ v.w; }

// Sweep: thread i of T reads 16-byte pieces i, i + T, ..., eight at a time.
__global__ void __launch_bounds__(256) sweep_kernel(const uint4* __restrict__ p, size_t n, float* sink) {
  const size_t T = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned acc = 0;
  for (; i + 7 * T < n; i += 8 * T) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = __ldcs(p + i + u * T);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= fold(v[u]);
  }
  for (; i < n; i += T) acc ^= fold(__ldcs(p + i));
  if (acc == kImpossible) *sink = static_cast<float>(acc);
}

// Rows as the skinny GEMM streams them: warp w of the grid takes items w, w + warps, ...; an item is a row of
// kRowChunks 16-byte pieces (R = 2: that row of each half of the buffer). Lanes read pieces lane, lane + 32, ...,
// kDepth a row at a time with the next kDepth in flight, and the last round of an item loads the next item's
// first (the skinny GEMM: kDepth 4).
constexpr int kRowChunks = 512;  // 8 KB: a 4096-wide bf16 row
template <int R, int kDepth>
__global__ void __launch_bounds__(256, 2) rows_kernel(const uint4* __restrict__ p, size_t n, float* sink) {
  const size_t half = n / R, items = half / kRowChunks, stride = static_cast<size_t>(gridDim.x) * 8;
  constexpr int kBatch = 32 * kDepth;  // pieces of a row a round covers
  const int lane = threadIdx.x % 32;
  unsigned acc = 0;
  size_t item = static_cast<size_t>(blockIdx.x) * 8 + threadIdx.x / 32;
  uint4 cur[R][kDepth], nxt[R][kDepth];
  auto load = [&](uint4 (&dst)[R][kDepth], size_t it, int c0) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int u = 0; u < kDepth; ++u) dst[r][u] = __ldcs(p + r * half + it * kRowChunks + c0 + u * 32);
  };
  if (item < items) load(cur, item, lane);
  for (; item < items; item += stride) {
    for (int c0 = lane; c0 < kRowChunks; c0 += kBatch) {
      if (c0 + kBatch < kRowChunks) load(nxt, item, c0 + kBatch);
      else if (item + stride < items) load(nxt, item + stride, lane);
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int u = 0; u < kDepth; ++u) {
          acc ^= fold(cur[r][u]);
          cur[r][u] = nxt[r][u];
        }
    }
  }
  if (acc == kImpossible) *sink = static_cast<float>(acc);
}

// Block rows: block b takes the regions of 8 rows (64 KB) b, b + blocks, ... and its 8 warps read each region
// front to back together, 4 KB a step (warp w the w-th 512 bytes of it), 4 steps at a time with the next 4 in
// flight: the rows' bytes in the order a sweep reads them, each warp then holding partial sums of all 8 rows.
constexpr int kRegionChunks = 8 * kRowChunks;
__global__ void __launch_bounds__(256, 2) block_rows_kernel(const uint4* __restrict__ p, size_t n, float* sink) {
  const size_t regions = n / kRegionChunks;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kStep = 256;  // pieces a step: 8 warps x 32 lanes
  unsigned acc = 0;
  uint4 cur[4], nxt[4];
  size_t region = blockIdx.x;
  auto load = [&](uint4 (&dst)[4], size_t rg, int step) {
#pragma unroll
    for (int u = 0; u < 4; ++u) dst[u] = __ldcs(p + rg * kRegionChunks + (step + u) * kStep + warp * 32 + lane);
  };
  if (region < regions) load(cur, region, 0);
  for (; region < regions; region += gridDim.x) {
    for (int step = 0; step < kRegionChunks / kStep; step += 4) {
      if (step + 4 < kRegionChunks / kStep) load(nxt, region, step + 4);
      else if (region + gridDim.x < regions) load(nxt, region + gridDim.x, 0);
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        acc ^= fold(cur[u]);
        cur[u] = nxt[u];
      }
    }
  }
  if (acc == kImpossible) *sink = static_cast<float>(acc);
}

// Bulk: block b takes the kChunk-byte chunks b, b + blocks, ...; thread 0 keeps kStages of them in flight, each one
// cp.async.bulk into a shared-memory stage that signals an mbarrier when its bytes land; every thread reads each
// landed stage, and the stage is refilled once all have.
constexpr int kStages = 4;
constexpr unsigned kChunk = 16384;
constexpr unsigned kMaxWaits = 1u << 20;  // a copy that never lands fails the launch (seconds) instead of hanging

__global__ void __launch_bounds__(256) bulk_kernel(const unsigned char* __restrict__ p, size_t bytes, float* sink) {
  extern __shared__ __align__(128) unsigned char stages[];  // kStages * kChunk
  __shared__ uint64_t full[kStages];
  const size_t chunks = bytes / kChunk;
  const size_t mine = blockIdx.x < chunks ? (chunks - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) cuda::ptx::mbarrier_init(&full[s], 1);
    cuda::ptx::fence_mbarrier_init(cuda::ptx::sem_release, cuda::ptx::scope_cluster);
  }
  __syncthreads();
  auto issue = [&](size_t k) {
    const int s = static_cast<int>(k % kStages);
    const uint32_t size = kChunk;  // the wrappers take it by reference
    cuda::ptx::mbarrier_arrive_expect_tx(cuda::ptx::sem_release, cuda::ptx::scope_cta, cuda::ptx::space_shared,
                                         &full[s], size);
    cuda::ptx::cp_async_bulk(cuda::ptx::space_cluster, cuda::ptx::space_global, stages + s * kChunk,
                             p + (blockIdx.x + k * gridDim.x) * kChunk, size, &full[s]);
  };
  if (threadIdx.x == 0)
    for (size_t k = 0; k < kStages && k < mine; ++k) issue(k);
  unsigned acc = 0;
  for (size_t k = 0; k < mine; ++k) {
    const int s = static_cast<int>(k % kStages);
    const uint32_t parity = static_cast<uint32_t>((k / kStages) & 1);
    unsigned waits = 0;
    while (!cuda::ptx::mbarrier_try_wait_parity(&full[s], parity))
      if (++waits == kMaxWaits) __trap();
    const uint4* stage = reinterpret_cast<const uint4*>(stages + s * kChunk);
    for (unsigned i = threadIdx.x; i < kChunk / 16; i += blockDim.x) acc ^= fold(stage[i]);
    __syncthreads();  // every thread is done with stage s
    if (threadIdx.x == 0 && k + kStages < mine) issue(k + kStages);
  }
  if (acc == kImpossible) *sink = static_cast<float>(acc);
}

void check(cudaError_t e, const char* what) { cuda_util::check(e, "read_streams", what); }

template <typename K>
int resident(K kernel, int threads, size_t smem) {
  return cuda_util::resident(kernel, threads, smem, "read_streams");
}

}  // namespace

const char* describe(ReadPattern p) {
  switch (p) {
    case ReadPattern::Sweep: return "sweep: the grid front to back, 8 x 16-byte loads a thread in flight";
    case ReadPattern::Rows: return "rows: a warp an 8 KB row at a time, as the skinny GEMM (one row an item)";
    case ReadPattern::RowsDeep: return "rows, 16 loads a lane in flight (twice the skinny GEMM's)";
    case ReadPattern::RowPairs: return "row pairs: a warp two 8 KB rows at once, as gate,up";
    case ReadPattern::BlockRows: return "block rows: a block's 8 warps read its 8 rows' 64 KB front to back together";
    case ReadPattern::Bulk: return "bulk: cp.async.bulk of 16 KB into 4 shared-memory stages a block";
  }
  return "?";
}

void read_once(ReadPattern p, const void* buf, size_t bytes, float* sink, cudaStream_t stream) {
  if (reinterpret_cast<uintptr_t>(buf) % 16 != 0 || bytes % 65536 != 0)
    throw std::invalid_argument("read_streams: the buffer must be 16-byte aligned and a multiple of 64 KB");
  const auto* u = static_cast<const uint4*>(buf);
  const size_t n = bytes / 16;
  switch (p) {
    case ReadPattern::Sweep:
      sweep_kernel<<<resident(sweep_kernel, 256, 0), 256, 0, stream>>>(u, n, sink);
      break;
    case ReadPattern::Rows:
      rows_kernel<1, 4><<<resident(rows_kernel<1, 4>, 256, 0), 256, 0, stream>>>(u, n, sink);
      break;
    case ReadPattern::RowsDeep:
      rows_kernel<1, 8><<<resident(rows_kernel<1, 8>, 256, 0), 256, 0, stream>>>(u, n, sink);
      break;
    case ReadPattern::RowPairs:
      rows_kernel<2, 4><<<resident(rows_kernel<2, 4>, 256, 0), 256, 0, stream>>>(u, n, sink);
      break;
    case ReadPattern::BlockRows:
      block_rows_kernel<<<resident(block_rows_kernel, 256, 0), 256, 0, stream>>>(u, n, sink);
      break;
    case ReadPattern::Bulk: {
      const size_t smem = kStages * kChunk;
      check(cudaFuncSetAttribute(bulk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
            "shared memory attribute");
      bulk_kernel<<<resident(bulk_kernel, 256, smem), 256, smem, stream>>>(static_cast<const unsigned char*>(buf),
                                                                          bytes, sink);
      break;
    }
  }
  check(cudaGetLastError(), describe(p));
}

}  // namespace chatmill::bench
