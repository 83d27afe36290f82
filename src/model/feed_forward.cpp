#include "model/feed_forward.h"

#include <ATen/ATen.h>

namespace chatmill::model {

at::Tensor feed_forward(const LayerWeights& w, const at::Tensor& x, Kernels kernels) {
  at::Tensor up = at::linear(x, w.up_proj);  // (B, T, F)
  if (kernels == Kernels::Fused) return at::linear(swiglu_fused(at::linear(x, w.gate_proj), up), w.down_proj);
  at::Tensor gate = at::silu(at::linear(x, w.gate_proj));  // (B, T, F)
  return at::linear(gate * up, w.down_proj);               // (B, T, C)
}

}  // namespace chatmill::model
