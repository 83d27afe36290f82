// Rotary position embeddings in HF's "rotate half" layout: pairs (j, j + D/2).
//
// Shape legend: B batch, T query length, H heads, D head dim.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model {

struct RopeTables {
  at::Tensor cos;  // (B, T, D) in the activations' dtype
  at::Tensor sin;  // (B, T, D)
};

class RotaryEmbedding {
 public:
  RotaryEmbedding() = default;
  RotaryEmbedding(int64_t head_dim, double theta, at::Device device);

  // positions: (B, T) int64 -> tables computed in float32, then cast to `dtype`.
  RopeTables tables(const at::Tensor& positions, at::ScalarType dtype) const;
  const at::Tensor& inv_freq() const { return inv_freq_; }  // (D/2) float32 on the model's device

 private:
  at::Tensor inv_freq_;  // (D/2) float32
};

// inv_freq: (D/2) float32; positions: (B, T) int64 -> tables computed in float32, then cast to `dtype`.
RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions, at::ScalarType dtype);

// x: (B, H, T, D) -> x * cos + rotate_half(x) * sin
at::Tensor apply_rotary(const at::Tensor& x, const RopeTables& rope);

}  // namespace chatmill::model
