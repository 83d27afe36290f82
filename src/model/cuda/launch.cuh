// Kernel launches with programmatic dependent launch (PDL, Hopper and later): a kernel launched with
// `programmatic` set may start while the kernel before it on the stream is still finishing; it does what
// needs nothing of that kernel (index math, prefetching weights) and then calls wait_for_previous_kernel(),
// which returns once that kernel has completed and its writes are visible. Each decode kernel also calls
// allow_next_kernel() as it starts, so that the next one can be scheduled as soon as this one's last blocks
// are resident. The step's ~10 kernels per layer then overlap their launch latency and ramps instead of
// running back to back. Both calls are no-ops for a kernel launched without the attribute.
//
// The rule that keeps this correct: before wait_for_previous_kernel() a kernel reads nothing an earlier
// kernel may write and writes nothing at all.
#pragma once
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include <utility>

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

// Whether the current device has programmatic dependent launch (compute capability 9.0 and later; ATen caches
// the properties, so this is a lookup).
inline bool device_has_pdl() { return at::cuda::getCurrentDeviceProperties()->major >= 9; }

// kernel<<<grid, block, 0, stream>>>(args...), with the PDL attribute when `programmatic` and the device has it
// (an A100 runs the same kernels back to back).
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, bool programmatic,
            Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = programmatic && device_has_pdl() ? 1 : 0;
  C10_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(std::forward<Args>(args))...));
}

}  // namespace chatmill::model::cuda_launch
