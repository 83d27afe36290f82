// model::advance_greedy's entry point (model/cuda/fused_kernels.h): model/cuda/step_advance.cuh's kernel on the
// current stream, writing the pinned ring through its device address.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>

#include "common/error.h"
#include "model/cuda/fused_kernels.h"
#include "model/cuda/launch.cuh"
#include "model/cuda/step_advance.cuh"

namespace chatmill::model::fused::cuda {

void advance_greedy(const at::Tensor& logits, const at::Tensor& state, const at::Tensor& ring) {
  const c10::cuda::CUDAGuard guard(state.device());
  void* device_ring = nullptr;
  const cudaError_t err = cudaHostGetDevicePointer(&device_ring, ring.data_ptr(), 0);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: the error is reported here, not at the next launch
    CHATMILL_FAIL("advance_greedy: the device cannot address the ring's host memory (", cudaGetErrorString(err),
                  "); allocate it with model::advance_ring");
  }
  step_advance::launchers::advance_greedy(cuda_launch::StreamLauncher::current(false), logits, state,
                                          static_cast<int64_t*>(device_ring));
}

}  // namespace chatmill::model::fused::cuda
