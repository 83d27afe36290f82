// The gradient hand-over's entry point (train/cuda/grad_cast.h): the launch code of grad_cast_kernels.cuh.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/launch.cuh"
#include "train/cuda/grad_cast.h"
#include "train/cuda/grad_cast_kernels.cuh"

namespace chatmill::train::grad_cast {

void cast_into_cuda(const at::Tensor& dst, const at::Tensor& src, bool add) {
  const c10::cuda::CUDAGuard guard(dst.device());
  // A plain launch (no PDL): it runs among autograd's kernels.
  cast_into(model::cuda_launch::StreamLauncher::current(false), dst, src, add);
}

}  // namespace chatmill::train::grad_cast
