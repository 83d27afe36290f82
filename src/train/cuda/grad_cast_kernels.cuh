// bf16-mixed training's gradient hand-over (train/master_cast.h): a float32 master gradient = or += the bf16
// (or fp16) gradient of its compute copy. 8 values a thread per step: one 16-byte load of the gradient, two
// 16-byte stores (and, adding, two loads) of the float32 one. ATen's copy_ and add_ across the two dtypes take
// an unvectorised path at about 40% of the copy bandwidth (an H200 profile of the 7B-shaped training step:
// 6.9 ms of its 183 ms). The sum is float32's, as ATen's add_ computes it.
//
// Plain device code and launch code generic over the launcher (model/cuda/decode_launch.cuh says what a
// launcher is): compiled by nvcc (grad_cast.cu) and, in the tests, for the CPU emulator.
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "model/cuda/device_math.cuh"
#include "model/cuda/reduce.cuh"

namespace chatmill::train::grad_cast {

namespace kernels {

constexpr int kThreads = 256;

// dst (n) float32 = (kAdd: dst +) src (n) in T (2 bytes); both 16-byte aligned. Grid-stride loops: the 8-value
// pieces, then the last n % 8 values one by one.
template <typename T, bool kAdd>
__global__ void cast_into_kernel(float* __restrict__ dst, const T* __restrict__ src, int64_t n) {
  static_assert(sizeof(T) == 2, "8 values of T in 16 bytes");
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x, pieces = n / 8;
  for (int64_t i = first; i < pieces; i += stride) {
    float v[8];
    model::cuda_math::unpack16<T>(__ldcs(reinterpret_cast<const uint4*>(src) + i), v);  // read once
    uint4* d = reinterpret_cast<uint4*>(dst) + 2 * i;
    float lo[4] = {v[0], v[1], v[2], v[3]}, hi[4] = {v[4], v[5], v[6], v[7]};
    if (kAdd) {
      float a[4], b[4];
      model::cuda_math::unpack16<float>(d[0], a);
      model::cuda_math::unpack16<float>(d[1], b);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        lo[e] += a[e];
        hi[e] += b[e];
      }
    }
    d[0] = model::cuda_math::pack16<float>(lo);
    d[1] = model::cuda_math::pack16<float>(hi);
  }
  for (int64_t j = pieces * 8 + first; j < n; j += stride)
    dst[j] = (kAdd ? dst[j] : 0.f) + static_cast<float>(src[j]);
}

}  // namespace kernels

// dst = src (add: dst += src), for tensors where grad_cast::applies (grad_cast.h).
template <class L>
void cast_into(const L& launch, const at::Tensor& dst, const at::Tensor& src, bool add) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const unsigned blocks = model::cuda_math::grid_stride_blocks(n / 8, kernels::kThreads, 8192);  // a piece a thread
  AT_DISPATCH_REDUCED_FLOATING_TYPES(src.scalar_type(), "grad_cast", [&] {
    if (add)
      launch(kernels::cast_into_kernel<scalar_t, true>, dim3(blocks), dim3(kernels::kThreads), dst.data_ptr<float>(),
             src.data_ptr<scalar_t>(), n);
    else
      launch(kernels::cast_into_kernel<scalar_t, false>, dim3(blocks), dim3(kernels::kThreads), dst.data_ptr<float>(),
             src.data_ptr<scalar_t>(), n);
  });
}

}  // namespace chatmill::train::grad_cast
