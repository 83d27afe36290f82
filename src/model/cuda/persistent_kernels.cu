// The persistent decode step's entry point (model/cuda/persistent_kernels.h): model/cuda/persistent_launch.cuh's
// cooperative launch on the current stream.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/launch.cuh"
#include "model/cuda/persistent_kernels.h"
#include "model/cuda/persistent_launch.cuh"

namespace chatmill::model::fused::cuda {

void persistent_step(const PersistentStep& s) {
  const c10::cuda::CUDAGuard guard(s.x.device());
  launchers::persistent_step(cuda_launch::StreamLauncher::current(/*programmatic=*/false), s);
}

}  // namespace chatmill::model::fused::cuda
