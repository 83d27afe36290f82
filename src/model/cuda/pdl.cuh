// The device side of programmatic dependent launch (model/cuda/launch.cuh says how the kernels use it): plain
// device code, so that the kernel headers that call it also compile for the CPU emulator of the tests
// (tests/common/cuda_emu.h), where allow_next_kernel does nothing and the wait is where a test's PreviousKernel
// writes what the kernel before would (so that a read of it before the wait sees stale memory there too).
#pragma once

namespace chatmill::model::cuda_launch {

__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#elif defined(CHATMILL_CUDA_EMU)
  ::chatmill::testing::cuda_emu::programmatic_wait();
#endif
}

__device__ __forceinline__ void allow_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace chatmill::model::cuda_launch
