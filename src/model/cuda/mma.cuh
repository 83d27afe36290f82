// One warp-wide tensor-core multiply, mma.sync m16n8k16 (bf16 or fp16 in, float32 accumulate): D = A B + D for
// A (16 x 16), B (16 x 8), each lane holding the fragments PTX's ISA lays out ("Matrix Fragments for
// mma.m16n8k16 with floating point type"). With g = lane / 4 and t = lane % 4:
//   a[0]: A[g][2t, 2t+1]   a[1]: A[g+8][2t, 2t+1]   a[2]: A[g][2t+8, 2t+9]   a[3]: A[g+8][2t+8, 2t+9]
//   b[0]: B[2t, 2t+1][g]   b[1]: B[2t+8, 2t+9][g]
//   d[0], d[1]: D[g][2t, 2t+1]                      d[2], d[3]: D[g+8][2t, 2t+1]
// (each 32-bit register holds its lower-indexed element in its low half).
//
// On sm_80 and later this is the instruction. Elsewhere (older GPUs, and the CPU emulator of the tests) the
// same product is computed from those layouts with warp shuffles, so that the emulator checks a kernel's
// fragment bookkeeping against the documented layout, and a GPU test checks the layout against the hardware.
// Plain device code; all 32 lanes of the warp must call it.
#pragma once
#include <cstdint>

namespace chatmill::model::cuda_math {

// The two T values of a 32-bit fragment register as float32 (lower index first).
template <typename T>
__device__ __forceinline__ void unpack2(uint32_t raw, float (&out)[2]) {
  union {
    uint32_t u;
    T t[2];
  } bits;
  bits.u = raw;
  out[0] = static_cast<float>(bits.t[0]);
  out[1] = static_cast<float>(bits.t[1]);
}

// T: the kernels' 16-bit type (c10::BFloat16 or c10::Half); kBf16 says which.
template <typename T, bool kBf16>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (kBf16)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  // Lane (g, t) needs rows g and g+8 of A, held by lanes 4g..4g+3, and columns 2t and 2t+1 of B, held by lanes
  // 8t..8t+3 and 8t+4..8t+7; lane 4g+s holds A's columns 2s, 2s+1, 2s+8, 2s+9, and B's rows the same.
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  for (int s = 0; s < 4; ++s) {
    float ar[4][2], b0[2][2], b1[2][2];  // ar[i]: a[i] of lane 4g+s; bc[j]: b[c] of the lane holding column 2t+j
    for (int i = 0; i < 4; ++i) unpack2<T>(__shfl_sync(0xffffffffu, a[i], 4 * g + s), ar[i]);
    for (int j = 0; j < 2; ++j) {
      unpack2<T>(__shfl_sync(0xffffffffu, b[0], 4 * (2 * t + j) + s), b0[j]);
      unpack2<T>(__shfl_sync(0xffffffffu, b[1], 4 * (2 * t + j) + s), b1[j]);
    }
    for (int j = 0; j < 2; ++j)
      for (int e = 0; e < 2; ++e) {
        d[j] += ar[0][e] * b0[j][e] + ar[2][e] * b1[j][e];      // row g: columns 2s+e and 2s+8+e
        d[2 + j] += ar[1][e] * b0[j][e] + ar[3][e] * b1[j][e];  // row g+8
      }
  }
#endif
}

}  // namespace chatmill::model::cuda_math
