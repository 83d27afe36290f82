// A barrier over all blocks of a cooperative launch (every block resident at once), for the persistent decode
// step (model/cuda/persistent_kernels.cuh): what a kernel boundary does, without ending the kernel, so that
// each block can ask for its next stage's weights before it waits.
//
// Two words of device memory, zero before the first launch: arrivals, which the last block to arrive sets back
// to zero, and a generation, which it then advances (and which may wrap). A block reads the generation before
// it arrives and waits until it changes. Writes before the barrier are visible to every block after it: the
// arriving thread fences after its block's __syncthreads, and the waiting one loads the generation with acquire
// semantics before its block's __syncthreads (the scheme of cooperative groups' grid sync). Loads after the
// barrier of data written before it must not use the read-only path (__ldg), which nothing makes coherent.
// Plain device code: compiled by nvcc and, in the tests, for the CPU emulator (tests/common/cuda_emu.h).
#pragma once

namespace chatmill::model::cuda_launch {

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
#if defined(__CUDA_ARCH__)
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
}

// Every thread of every block calls it; bar: the two words.
__device__ __forceinline__ void grid_sync(unsigned* bar) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
    const unsigned generation = load_acquire(bar + 1);
    __threadfence();  // this block's writes, ordered by the __syncthreads above, before its arrival
    if (atomicAdd(bar, 1u) == blocks - 1) {
      atomicExch(bar, 0u);  // no block arrives at the next barrier before it sees the new generation
      __threadfence();
      atomicAdd(bar + 1, 1u);
    } else {
      while (load_acquire(bar + 1) == generation) __nanosleep(20);
    }
  }
  __syncthreads();
}

}  // namespace chatmill::model::cuda_launch
