#include "model/rms_norm.h"

#include <ATen/ATen.h>

namespace chatmill::model {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // Same order of operations as HF: normalise in float32, cast back, then scale.
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor normed = (xf * at::rsqrt(variance + eps)).to(x.scalar_type());
  return weight * normed;
}

}  // namespace chatmill::model
