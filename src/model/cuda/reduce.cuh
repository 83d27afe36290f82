// Warp and block reductions and the block-size rule the decode kernels (model/cuda/*.cu) share.
#pragma once
#include <cmath>
#include <cstdint>

namespace chatmill::model::cuda_math {

// Sum over the lanes of a group of `Width` consecutive lanes (a power of two, at most 32); every lane of the
// group gets its group's total. All 32 lanes of the warp must call it.
template <int Width = 32>
__device__ __forceinline__ float group_sum(float x) {
  for (int offset = Width / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__device__ __forceinline__ float warp_sum(float x) { return group_sum<32>(x); }

struct Add {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct Max {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// op over the 32 lanes of the warp; every lane gets the result (for Add, warp_sum's order).
template <class Op>
__device__ __forceinline__ float warp_reduce(float x, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

// op over the block, `identity` op's neutral value; every thread gets the result. blockDim.x is a multiple of
// 32, at most 1024.
template <class Op>
__device__ __forceinline__ float block_reduce(float x, float identity, Op op) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_reduce(x, op);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  x = lane < warps ? partial[lane] : identity;
  return warp_reduce(x, op);
}

__device__ __forceinline__ float block_sum(float x) { return block_reduce(x, 0.f, Add{}); }
__device__ __forceinline__ float block_max(float x) { return block_reduce(x, -INFINITY, Max{}); }

// Blocks of `threads` for a grid-stride loop over `work` items: a thread an item, up to `max_blocks` (enough to
// fill the device several times over; the loop covers the rest).
inline unsigned grid_stride_blocks(int64_t work, int threads, int64_t max_blocks = 65535) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks));
}

// The smallest power-of-two block, from 32 to 1024 threads, that gives each of `work` items a thread.
inline int threads_for(int64_t work) {
  int t = 32;
  while (t < work && t < 1024) t *= 2;
  return t;
}

}  // namespace chatmill::model::cuda_math
