// The device side of programmatic dependent launch (model/cuda/launch.cuh says how the kernels use it): plain
// device code, so that the kernel headers that call it also compile for the CPU emulator of the tests
// (tests/common/cuda_emu.h), where both calls do nothing.
#pragma once

namespace chatmill::model::cuda_launch {

__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace chatmill::model::cuda_launch
