// A one-row GEMV in block order (bench/block_gemv.cu), for bench_kernels to set against the skinny GEMM
// (model/cuda/skinny_kernels.cuh) on the 7B shapes: the skinny GEMM gives each warp its own weight row, so the
// device streams ~2000 rows at once; here a block's 8 warps read 8 consecutive rows together, 4 KB of one row a
// step, in the order a sweep of memory reads them. bench/read_streams.h measures the two orders as plain reads;
// this measures them as the GEMV itself, with its arithmetic and its loads in flight.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace chatmill::bench {

// out (N) = w (N, K) x (K), bf16 in and out, float32 sums. K: 4096 or 11008; N a multiple of 8; every pointer
// 16-byte aligned. Throws std::invalid_argument for other shapes.
void block_gemv_bf16(const void* w, const void* x, void* out, int64_t N, int64_t K, cudaStream_t stream);

}  // namespace chatmill::bench
