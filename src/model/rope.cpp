#include "model/rope.h"

#include <ATen/ATen.h>

namespace chatmill::model {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta, at::Device device) {
  // inv_freq[j] = 1 / theta^(2j / D), computed in float32 exactly as HF does.
  at::Tensor exponent = at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(head_dim);
  inv_freq_ = (1.0 / at::pow(theta, exponent)).to(device);
}

RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions, at::ScalarType dtype) {
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;  // (B, T, D/2)
  at::Tensor emb = at::cat({freqs, freqs}, -1);                          // (B, T, D)
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

RopeTables RotaryEmbedding::tables(const at::Tensor& positions, at::ScalarType dtype) const {
  return rope_tables(inv_freq_, positions, dtype);
}

at::Tensor apply_rotary(const at::Tensor& x, const RopeTables& rope) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  at::Tensor cos = rope.cos.unsqueeze(1);  // (B, 1, T, D)
  at::Tensor sin = rope.sin.unsqueeze(1);
  return x * cos + rotated * sin;
}

}  // namespace chatmill::model
