// Kernel launches with programmatic dependent launch (PDL, Hopper and later): a kernel launched with
// `programmatic` set may start while the kernel before it on the stream is still finishing; it does what
// needs nothing of that kernel (index math, prefetching weights) and then calls wait_for_previous_kernel(),
// which returns once that kernel has completed and its writes are visible. Each decode kernel also calls
// allow_next_kernel() as it starts, so that the next one can be scheduled as soon as this one's last blocks
// are resident. The step's kernels (5 to 10 a layer, model/fused_decode.h) then overlap their launch latency
// and ramps instead of running back to back. Both calls are no-ops for a kernel launched without the attribute.
//
// The rule that keeps this correct: before wait_for_previous_kernel() a kernel reads nothing the kernel right
// before it may write and writes nothing at all. The kernels before that one have completed: every kernel here
// calls allow_next_kernel() only after its own wait, and a kernel without PDL lets the next start only as it
// ends. So weights, the step's index inputs (positions, columns, lengths) and the cache's earlier columns may be
// read early; the previous kernel's outputs (x, q, the residual, the cache's new column) only after the wait.
// tests/model/pdl_emu_test.cpp holds kernels to it on the emulator.
#pragma once
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include <utility>

#include "model/cuda/pdl.cuh"

namespace chatmill::model::cuda_launch {

// Whether the current device has programmatic dependent launch (compute capability 9.0 and later; ATen caches
// the properties, so this is a lookup).
inline bool device_has_pdl() { return at::cuda::getCurrentDeviceProperties()->major >= 9; }

// kernel<<<grid, block, 0, stream>>>(args...) with the launch attributes attrs[0, n).
template <typename... Params, typename... Args>
void launch_with(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, cudaLaunchAttribute* attrs,
                 unsigned n, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = stream;
  config.attrs = attrs;
  config.numAttrs = n;
  C10_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(std::forward<Args>(args))...));
}

// kernel<<<grid, block, 0, stream>>>(args...), with the PDL attribute when `programmatic` and the device has it
// (an A100 runs the same kernels back to back).
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, bool programmatic,
            Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  launch_with(kernel, grid, block, stream, attr, programmatic && device_has_pdl() ? 1 : 0, std::forward<Args>(args)...);
}

// The same as a cooperative launch: every block resident at once, as a grid barrier needs
// (model/cuda/grid_sync.cuh); fails if the grid exceeds what the device holds. Without PDL: the kernel waits
// for the whole kernel before it, and the one after it waits for all of it.
template <typename... Params, typename... Args>
void launch_cooperative(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  launch_with(kernel, grid, block, stream, attr, 1, std::forward<Args>(args)...);
}

// The launcher of model/cuda/decode_launch.cuh: onto `stream`, with PDL where `programmatic`.
struct StreamLauncher {
  cudaStream_t stream;
  bool programmatic;

  // Onto the current stream of the current device (callers set the device to their tensors').
  static StreamLauncher current(bool programmatic) { return {at::cuda::getCurrentCUDAStream(), programmatic}; }

  template <typename... Params, typename... Args>
  void operator()(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) const {
    launch(kernel, grid, block, stream, programmatic, std::forward<Args>(args)...);
  }

  template <typename... Params, typename... Args>
  void cooperative(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) const {
    launch_cooperative(kernel, grid, block, stream, std::forward<Args>(args)...);
  }

  // Blocks of `kernel` the device holds at once (all SMs).
  template <typename... Params>
  int64_t resident_blocks(void (*kernel)(Params...), int threads) const {
    int per_sm = 0;
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
    return static_cast<int64_t>(per_sm) * at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  }
};

}  // namespace chatmill::model::cuda_launch
