// The persistent decode step's entry point (model/cuda/persistent_kernels.h): model/cuda/persistent_launch.cuh's
// cooperative launch on the current stream; and a loop of grid barriers alone, for the benchmark.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/launch.cuh"
#include "model/cuda/persistent_kernels.h"
#include "model/cuda/persistent_launch.cuh"

namespace chatmill::model::fused::cuda {

namespace {

// Barriers and nothing else, at the persistent step's occupancy bound.
__global__ void __launch_bounds__(kernels::kSkinnyWarps * 32, 2) barrier_loop_kernel(unsigned* word, int count) {
  for (int i = 0; i < count; ++i) cuda_launch::grid_sync(word);
}

}  // namespace

void persistent_step(const PersistentStep& s) {
  const c10::cuda::CUDAGuard guard(s.x.device());
  launchers::persistent_step(cuda_launch::StreamLauncher::current(/*programmatic=*/false), s);
}

void grid_barriers(const at::Tensor& word, int64_t count) {
  const c10::cuda::CUDAGuard guard(word.device());
  const auto launch = cuda_launch::StreamLauncher::current(/*programmatic=*/false);
  const dim3 block(kernels::kSkinnyWarps * 32);
  const int64_t grid = launch.resident_blocks(kernels::persistent_step_kernel<at::BFloat16, 1, 16>, block.x);
  launch.cooperative(barrier_loop_kernel, dim3(static_cast<unsigned>(grid)), block,
                     reinterpret_cast<unsigned*>(word.data_ptr<int>()), static_cast<int>(count));
}

}  // namespace chatmill::model::fused::cuda
