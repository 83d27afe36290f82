// Device helpers the CUDA kernels share (model/cuda/*.cu, train/cuda/*.cu): rounding where HF's ops store a T,
// 16-byte loads and stores, and the pieces of HF's math that both the decode kernels and the training kernels
// compute.
#pragma once
#include <cstdint>

namespace chatmill::model::cuda_math {

// Rounds a float32 value to T and back: where HF's op would store a T.
template <typename T>
__device__ __forceinline__ float rnd(float x) {
  return static_cast<float>(static_cast<T>(x));
}

// torch's silu, x / (1 + exp(-x)) in float32, stored in T.
template <typename T>
__device__ __forceinline__ float silu(float x) {
  return rnd<T>(x / (1.f + expf(-x)));
}

// HF's rotate_half on the pair (x1, x2) = (x[j], x[j + D/2]): y = x * cos + cat(-x2, x1) * sin, each product
// and the sum rounded to T. (c1, s1) are the tables at j, (c2, s2) at j + D/2.
template <typename T>
__device__ __forceinline__ void rotate_pair(float x1, float x2, float c1, float s1, float c2, float s2, float& y1,
                                            float& y2) {
  y1 = rnd<T>(rnd<T>(x1 * c1) + rnd<T>(-x2 * s1));
  y2 = rnd<T>(rnd<T>(x2 * c2) + rnd<T>(x1 * s2));
}

// *p (a 2- or 4-byte U), loaded where the call stands: as inline asm volatile, which neither NVVM nor ptxas moves
// to the value's first use, so that a load issued early has its latency pass under the work in between. (Written
// as a plain load, NVVM sank such loads past a whole loop into the branch that used them.) Through the coherent
// path, so it serves data this kernel writes elsewhere too (a residual updated in place). A plain copy off the GPU.
template <typename U>
__device__ __forceinline__ U load_early(const U* p) {
  static_assert(sizeof(U) == 2 || sizeof(U) == 4, "load_early: 2- or 4-byte values");
  U v;
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(U) == 4) {
    uint32_t bits;
    asm volatile("ld.global.b32 %0, [%1];" : "=r"(bits) : "l"(p));
    __builtin_memcpy(&v, &bits, sizeof v);
  } else {
    uint16_t bits;
    asm volatile("ld.global.b16 %0, [%1];" : "=h"(bits) : "l"(p));
    __builtin_memcpy(&v, &bits, sizeof v);
  }
#else
  __builtin_memcpy(&v, p, sizeof v);
#endif
  return v;
}

// The 16 / sizeof(T) values of a 16-byte load as float32. Through a union, not a reinterpret_cast view of the
// uint4: under strict aliasing a host compiler (the tests' CPU emulator) may read such a view before the load.
template <typename T>
__device__ __forceinline__ void unpack16(const uint4& raw, float (&out)[16 / sizeof(T)]) {
  union {
    uint4 u;
    T t[16 / sizeof(T)];
  } bits;
  bits.u = raw;
#pragma unroll
  for (int e = 0; e < static_cast<int>(16 / sizeof(T)); ++e) out[e] = static_cast<float>(bits.t[e]);
}

// The reverse of unpack16: float32 values rounded to T (once each), as one 16-byte value to store.
template <typename T>
__device__ __forceinline__ uint4 pack16(const float (&in)[16 / sizeof(T)]) {
  union {
    uint4 u;
    T t[16 / sizeof(T)];
  } bits;
#pragma unroll
  for (int e = 0; e < static_cast<int>(16 / sizeof(T)); ++e) bits.t[e] = static_cast<T>(in[e]);
  return bits.u;
}

}  // namespace chatmill::model::cuda_math
