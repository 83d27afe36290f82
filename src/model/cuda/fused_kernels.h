// Entry points of src/model/cuda/fused_kernels.cu (CUDA builds only). model/fused_ops.h documents each op;
// these take CUDA tensors already checked by fused_ops.cpp and launch on the current stream.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model::fused::cuda {

void add_rms_norm(const at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                  const at::Tensor& out);
void silu_mul(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out);
void rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                 const at::Tensor& columns, const at::Tensor& inv_freq, const at::Tensor& k_cache,
                 const at::Tensor& v_cache, const at::Tensor& q_out);
void decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                      const at::Tensor& lengths, const at::Tensor& out);

// x: (M, K) contiguous, M <= 8; weight: (N, K) contiguous rows; K % 8 == 0 and both 16-byte aligned.
void skinny_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out);

}  // namespace chatmill::model::fused::cuda
