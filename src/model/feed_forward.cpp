#include "model/feed_forward.h"

#include <ATen/ATen.h>

namespace chatmill::model {

at::Tensor feed_forward(const LayerWeights& w, const at::Tensor& x, Kernels kernels) {
  if (kernels == Kernels::Fused) {
    const at::Tensor& packed = w.gate_up_proj.defined() ? w.gate_up_proj : at::cat({w.gate_proj, w.up_proj});
    return at::linear(swiglu_fused(at::linear(x, packed)), w.down_proj);  // one (B, T, 2F) GEMM for gate and up
  }
  at::Tensor gate = at::silu(at::linear(x, w.gate_proj));  // (B, T, F)
  at::Tensor up = at::linear(x, w.up_proj);                // (B, T, F)
  return at::linear(gate * up, w.down_proj);               // (B, T, C)
}

}  // namespace chatmill::model
