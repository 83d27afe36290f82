// A barrier over all blocks of a cooperative launch (every block resident at once), for the persistent decode
// step (model/cuda/persistent_kernels.cuh): what a kernel boundary does, without ending the kernel, so that
// each block can ask for its next stage's weights before it waits.
//
// One word of device memory, zero before the first launch. Each block adds to it once a barrier: block 0 adds
// 2^31 - (blocks - 1), the others 1, so its top bit flips when, and only when, the last block arrives (and its
// low bits are back to zero); a block waits until the top bit differs from the one its own add saw. One atomic
// per block, no reset step, any grid size from one launch to the next. (Cooperative groups' grid sync works this
// way.) Writes before the barrier are visible to every block after it: the arriving thread fences after its
// block's __syncthreads, and the waiting one loads the word with acquire semantics before its block's
// __syncthreads. A barrier some block never reaches traps after kMaxBarrierSpins polls. Loads after the barrier
// of data written before it must not use the read-only path (__ldg), which nothing makes coherent.
// Plain device code: compiled by nvcc and, in the tests, for the CPU emulator (tests/common/cuda_emu.h).
#pragma once

namespace chatmill::model::cuda_launch {

// Polls of a barrier before the kernel gives up (__trap: the launch fails with an error): about a second on a
// GPU, where a barrier takes microseconds; a block that exits or waits elsewhere then fails the step instead of
// hanging the process.
constexpr unsigned kMaxBarrierSpins = 1u << 22;

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
#if defined(__CUDA_ARCH__)
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
}

// Every thread of every block calls it; bar: the word. max_spins: polls before it traps (tests shorten it).
__device__ __forceinline__ void grid_sync(unsigned* bar, unsigned max_spins = kMaxBarrierSpins) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
    const bool first = blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0;
    const unsigned add = first ? 0x80000000u - (blocks - 1) : 1u;
    __threadfence();  // this block's writes, ordered by the __syncthreads above, before its arrival
    const unsigned before = atomicAdd(bar, add);
    unsigned spins = 0;
    while (((before ^ load_acquire(bar)) & 0x80000000u) == 0) {
      __nanosleep(20);
      if (++spins == max_spins) __trap();  // a block that never arrives: fail the kernel, never hang
    }
  }
  __syncthreads();
}

}  // namespace chatmill::model::cuda_launch
