// The kernel of model/step_advance.h and its launch code, generic over the launcher (model/cuda/decode_launch.cuh
// says what one is) so that the tests run it on the CPU emulator too.
#pragma once
#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>

namespace chatmill::model::step_advance {

namespace kernels {

constexpr int kThreads = 1024;
constexpr int kUnroll = 4;  // 16-byte loads a thread has in flight: a 32000-float row is two rounds of them

// Whether (x, i) comes before (best, best_i) in at::argmax's order: the larger value, NaN above all, the lower
// index among equals (so the order in which a thread sees its elements does not matter).
__device__ __forceinline__ bool before(float x, int64_t i, float best, int64_t best_i) {
  if (x != x) return best == best ? true : i < best_i;
  if (best != best) return false;
  return x > best || (x == best && i < best_i);
}

__device__ __forceinline__ void keep(float x, int64_t i, float& best, int64_t& best_i) {
  if (before(x, i, best, best_i)) {
    best = x;
    best_i = i;
  }
}

// One block a row b < n: the row's greedy id, first into ring[(columns[b] & 1) * B + b] (host memory the device
// writes: the step's result; only where advance[b] is 1), then as the row's next input; then the row moves on by
// advance[b].
// state: (4, B) int64: ids, columns, lengths, advance. logits: (n, V) float32, rows V apart; with kVec, V % 4 == 0
// and 16-byte aligned rows.
template <bool kVec>
__global__ void __launch_bounds__(kThreads) advance_greedy_kernel(const float* logits, int64_t V, int64_t* state, int64_t B, int64_t* ring) {
  const int64_t b = blockIdx.x;
  const float* row = logits + b * V;
  float best = -INFINITY;
  int64_t best_i = INT64_MAX;
  if (kVec) {
    const float4* row4 = reinterpret_cast<const float4*>(row);
    const int64_t V4 = V / 4, stride = static_cast<int64_t>(blockDim.x) * kUnroll;
    for (int64_t base = threadIdx.x; base < V4; base += stride) {
      float4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t j = base + static_cast<int64_t>(u) * blockDim.x;
        v[u] = j < V4 ? row4[j] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t i = 4 * (base + static_cast<int64_t>(u) * blockDim.x);
        keep(v[u].x, i, best, best_i);
        keep(v[u].y, i + 1, best, best_i);
        keep(v[u].z, i + 2, best, best_i);
        keep(v[u].w, i + 3, best, best_i);
      }
    }
  } else {
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) keep(row[i], i, best, best_i);
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const float x = __shfl_xor_sync(0xffffffffu, best, offset);
    const int64_t i = __shfl_xor_sync(0xffffffffu, best_i, offset);
    keep(x, i, best, best_i);
  }
  __shared__ float values[32];
  __shared__ int64_t indices[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    values[warp] = best;
    indices[warp] = best_i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) keep(values[w], indices[w], best, best_i);
    int64_t* ids = state;
    int64_t* columns = state + B;
    int64_t* lengths = state + 2 * B;
    const int64_t* advance = state + 3 * B;
    const int64_t column = columns[b];
    if (advance[b] != 0) ring[(column & 1) * B + b] = best_i;  // an idle row's id is nobody's: its entry stays -1
    ids[b] = best_i;
    columns[b] = column + advance[b];
    lengths[b] += advance[b];
  }
}

}  // namespace kernels

namespace launchers {

// logits (n, V) float32 contiguous rows, state (4, B) int64 contiguous, both on the device; ring: the device's
// address of the (2, B) int64 host buffer.
template <class L>
void advance_greedy(const L& launch, const at::Tensor& logits, const at::Tensor& state, int64_t* ring) {
  const int64_t n = logits.size(0);
  if (n == 0) return;
  const int64_t V = logits.size(1);
  const bool vec = V % 4 == 0 && reinterpret_cast<uintptr_t>(logits.data_ptr()) % 16 == 0;
  auto go = [&](auto kernel) {
    launch(kernel, dim3(static_cast<unsigned>(n)), dim3(kernels::kThreads), logits.data_ptr<float>(), V,
           state.data_ptr<int64_t>(), state.size(1), ring);
  };
  if (vec) go(kernels::advance_greedy_kernel<true>);
  else go(kernels::advance_greedy_kernel<false>);
}

}  // namespace launchers

}  // namespace chatmill::model::step_advance
