// Decode attention's entry point (model/cuda/fused_kernels.h): model/cuda/decode_launch.cuh's launch of the
// split kernels of model/cuda/attention_kernels.cuh, on the current stream.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/decode_launch.cuh"
#include "model/cuda/fused_kernels.h"
#include "model/cuda/launch.cuh"

namespace chatmill::model::fused::cuda {

void decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                      const at::Tensor& lengths, const at::Tensor& counters, const at::Tensor& out,
                      const at::Tensor& fresh, bool programmatic) {
  const c10::cuda::CUDAGuard guard(q.device());  // its device's stream, not device 0's
  launchers::decode_attention(cuda_launch::StreamLauncher::current(programmatic), q, k_cache, v_cache, lengths, counters,
                              out, fresh);
}

}  // namespace chatmill::model::fused::cuda
