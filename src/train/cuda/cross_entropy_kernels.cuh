// The LM head's cross-entropy over rows of logits in one kernel (train/linear_cross_entropy.cpp on CUDA): one
// block per row reads the row once for its max and sum of exponentials (a running pair per thread, merged over
// the block), writes the row's loss lse - x[target] and, for the gradient, reads the row again (mostly from L2)
// and overwrites it in place with exp(x - lse) - one_hot(target), zero on ignored rows. These are the reference
// ATen ops' per-element operations in float32, rounded once to the logits' dtype; only the order of the sum of
// exponentials differs. It replaces ~8 ATen kernels and the float32 copy of the logits they need.
//
// Plain device code and launch code generic over the launcher (model/cuda/decode_launch.cuh says what a
// launcher is): compiled by nvcc (cross_entropy.cu) and, in the tests, for the CPU emulator.
// Shape legend: n rows (positions), V vocabulary.
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>

#include "data/ignore_label.h"
#include "model/cuda/device_math.cuh"

namespace chatmill::train::cross_entropy_cuda {

namespace kernels {

namespace cuda_math = model::cuda_math;

// Threads per row. Each SM then holds 2048 / kThreads rows at once: few enough that their second pass finds
// them in L2 (at V 32000 in bf16, 132 SMs x 4 rows x 64 KB = 34 MB), enough to keep loads in flight. Timed on
// an H200, 2048 such rows with the gradient: 256 threads 140 us, 512 122-128 us, 1024 208 us.
constexpr int kThreads = 512;

// A row's columns split for 16-byte access: `head` scalar columns up to the first 16-byte boundary (rows start
// unaligned when V is not a multiple of 16 / sizeof(T)), `vectors` 16-byte groups, then `tail` scalar columns.
template <typename T>
struct RowSplit {
  static constexpr int kVec = 16 / sizeof(T);
  int head, vectors, tail;

  __device__ __forceinline__ RowSplit(const T* row, int V) {
    const int misaligned = static_cast<int>(reinterpret_cast<uintptr_t>(row) % 16);
    const int to_boundary = (16 - misaligned) % 16 / static_cast<int>(sizeof(T));
    head = to_boundary < V ? to_boundary : V;
    vectors = (V - head) / kVec;
    tail = V - head - vectors * kVec;
  }
  // The column of the i-th scalar column (0 <= i < head + tail).
  __device__ __forceinline__ int scalar_column(int i) const { return i < head ? i : i + vectors * kVec; }
};

// Folds values into a running (max m, sum s of exp(x - m)), rescaling s only when the max grows. While m is
// -inf (no values yet, or only -inf ones) s stays 0, rather than exp(-inf - -inf) = NaN.
template <int kCount>
__device__ __forceinline__ void fold(const float (&x)[kCount], float& m, float& s) {
  float top = x[0];
#pragma unroll
  for (int e = 1; e < kCount; ++e) top = fmaxf(top, x[e]);
  if (top > m) {
    s *= expf(m - top);
    m = top;
  }
  if (m == -INFINITY) return;
#pragma unroll
  for (int e = 0; e < kCount; ++e) s += expf(x[e] - m);
}

// (m, s) and (m2, s2) as one pair, both sums rescaled to the larger max; two empty pairs stay empty.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float top = fmaxf(m, m2);
  if (top == -INFINITY) return;
  s = s * expf(m - top) + s2 * expf(m2 - top);
  m = top;
}

// The block's (max, sum) from every thread's, given to every thread: over each warp by shuffles, then over the
// warps through shared memory. blockDim.x is a multiple of 32, at most 1024.
__device__ __forceinline__ void block_max_sum(float& m, float& s) {
  __shared__ float warp_m[32], warp_s[32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset), s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    merge(m, s, m2, s2);
  }
  if (threadIdx.x % 32 == 0) {
    warp_m[threadIdx.x / 32] = m;
    warp_s[threadIdx.x / 32] = s;
  }
  __syncthreads();
  m = warp_m[0];
  s = warp_s[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) merge(m, s, warp_m[w], warp_s[w]);
}

// Block r: losses[r] = (lse - x[target]) * valid for row r of `logits`; with kGrad the row becomes
// (exp(x - lse) - [column == target]) * valid in T. An ignored target (data::kIgnoreLabel) counts as column 0
// with valid 0, as in the reference; any other target outside [0, V) gives a NaN loss and gradient row (a bad
// label shows up as a non-finite step, never as a read outside the row).
template <typename T, bool kGrad>
__global__ void __launch_bounds__(kThreads) cross_entropy_rows_kernel(T* __restrict__ logits,
                                                                      const int64_t* __restrict__ targets,
                                                                      float* __restrict__ losses, int V) {
  constexpr int kVec = RowSplit<T>::kVec;
  const int64_t r = blockIdx.x;
  T* row = logits + r * V;
  const RowSplit<T> split(row, V);
  uint4* body = reinterpret_cast<uint4*>(row + split.head);

  float m = -INFINITY, s = 0.f;
  for (int c = threadIdx.x; c < split.vectors; c += blockDim.x) {
    float x[kVec];
    cuda_math::unpack16<T>(body[c], x);
    fold(x, m, s);
  }
  for (int i = threadIdx.x; i < split.head + split.tail; i += blockDim.x) {
    const float x[1] = {static_cast<float>(row[split.scalar_column(i)])};
    fold(x, m, s);
  }

  const int64_t target = targets[r];
  const bool valid = target != data::kIgnoreLabel;
  const int64_t index = valid ? target : 0;
  const bool in_range = index >= 0 && index < V;
  const float weight = !valid ? 0.f : in_range ? 1.f : NAN;
  // Read before block_max_sum's barrier: past it, other threads overwrite the row.
  const float x_target = threadIdx.x == 0 && in_range ? static_cast<float>(row[index]) : 0.f;
  block_max_sum(m, s);
  const float lse = m + logf(s);
  if (threadIdx.x == 0) losses[r] = (lse - x_target) * weight;
  if (!kGrad) return;

  const int hot = in_range ? static_cast<int>(index) : -1;
  for (int c = threadIdx.x; c < split.vectors; c += blockDim.x) {
    float x[kVec];
    cuda_math::unpack16<T>(body[c], x);
    const int col = split.head + c * kVec;
#pragma unroll
    for (int e = 0; e < kVec; ++e) x[e] = (expf(x[e] - lse) - (col + e == hot ? 1.f : 0.f)) * weight;
    body[c] = cuda_math::pack16<T>(x);
  }
  for (int i = threadIdx.x; i < split.head + split.tail; i += blockDim.x) {
    const int col = split.scalar_column(i);
    const float x = static_cast<float>(row[col]);
    row[col] = static_cast<T>((expf(x - lse) - (col == hot ? 1.f : 0.f)) * weight);
  }
}

}  // namespace kernels

// logits: (n, V) contiguous, V < 2^31, overwritten with the gradient when `grad`; targets: (n) int64;
// losses: (n) float32, written.
template <class L>
void cross_entropy_rows(const L& launch, const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& losses,
                        bool grad) {
  const int64_t n = logits.size(0);
  const int V = static_cast<int>(logits.size(1));
  if (n == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "cross_entropy_rows", [&] {
    auto* kernel = grad ? kernels::cross_entropy_rows_kernel<scalar_t, true>
                        : kernels::cross_entropy_rows_kernel<scalar_t, false>;
    launch(kernel, dim3(static_cast<unsigned>(n)), dim3(kernels::kThreads), logits.data_ptr<scalar_t>(),
           targets.data_ptr<int64_t>(), losses.data_ptr<float>(), V);
  });
}

}  // namespace chatmill::train::cross_entropy_cuda
