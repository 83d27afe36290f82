#include "model/fused_decode.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/fused_ops.h"

namespace chatmill::model {

at::Tensor fused_decode_hidden(const Model& m, const at::Tensor& ids, const at::Tensor& positions,
                               const at::Tensor& columns, const at::Tensor& lengths, KVCache& cache,
                               FusedStepOptions options) {
  const LlamaConfig& cfg = m.config;
  const double eps = cfg.rms_norm_eps;
  CHATMILL_CHECK(ids.dim() == 1, "fused decode takes one token per row: ids must be (B), got ", ids.sizes());
  CHATMILL_CHECK(static_cast<int64_t>(cache.k.size()) == cfg.num_layers, "the cache has ", cache.k.size(),
                 " layers, the model ", cfg.num_layers);
  const auto& layers = m.weights.layers;
  auto linear = [&](const at::Tensor& a, const at::Tensor& w) {
    return options.skinny_gemm ? fused::linear(a, w) : at::linear(a, w);
  };
  at::Tensor x = at::embedding(m.weights.embed, ids);  // (B, C): the residual stream, updated in place
  at::Tensor normed = fused::add_rms_norm(x, at::Tensor(), layers[0].input_norm, eps);
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const LayerWeights& w = layers[l];
    at::Tensor q = fused::rope_append(linear(normed, w.q_proj), linear(normed, w.k_proj),
                                      linear(normed, w.v_proj), positions, columns, m.rope.inv_freq(),
                                      cache.k[l], cache.v[l]);                        // (B, H, D)
    at::Tensor attn = fused::decode_attention(q, cache.k[l], cache.v[l], lengths);  // (B, H*D)
    normed = fused::add_rms_norm(x, linear(attn, w.o_proj), w.post_norm, eps);  // x += attention
    at::Tensor act = fused::silu_mul(linear(normed, w.gate_proj), linear(normed, w.up_proj));  // (B, F)
    const at::Tensor& next_norm = l + 1 < cfg.num_layers ? layers[l + 1].input_norm : m.weights.norm;
    normed = fused::add_rms_norm(x, linear(act, w.down_proj), next_norm, eps);  // x += MLP
  }
  return normed;
}

}  // namespace chatmill::model
