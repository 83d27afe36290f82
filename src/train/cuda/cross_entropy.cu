// The fused cross-entropy's entry point (train/cuda/cross_entropy.h): the launch code of
// train/cuda/cross_entropy_kernels.cuh on the current stream of the logits' device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/launch.cuh"
#include "train/cuda/cross_entropy.h"
#include "train/cuda/cross_entropy_kernels.cuh"

namespace chatmill::train::cross_entropy_cuda {

void cross_entropy_rows(const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& losses, bool grad) {
  const c10::cuda::CUDAGuard guard(logits.device());
  // A plain launch (no PDL): it runs between cuBLAS GEMMs.
  cross_entropy_rows(model::cuda_launch::StreamLauncher::current(false), logits, targets, losses, grad);
}

}  // namespace chatmill::train::cross_entropy_cuda
