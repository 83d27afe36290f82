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
  const fused::LaunchOptions launch{options.programmatic_launch};
  const fused::ForceReference projections{!options.skinny_gemm};  // the reference of fused::linear is at::linear
  auto linear = [&](const at::Tensor& a, const at::Tensor& w) { return fused::linear(a, w, projections, launch); };
  // Projections that share their input: one skinny launch for all where it applies.
  auto linears = [&](const at::Tensor& a, const std::vector<at::Tensor>& ws) {
    return fused::linear_parts(a, ws, projections, launch);
  };
  at::Tensor x = at::embedding(m.weights.embed, ids);  // (B, C): the residual stream, updated in place
  at::Tensor normed = fused::add_rms_norm(x, at::Tensor(), layers[0].input_norm, eps, {}, launch);
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const LayerWeights& w = layers[l];
    const std::vector<at::Tensor> qkv = linears(normed, {w.q_proj, w.k_proj, w.v_proj});  // (B, H*D), 2x (B, Hkv*D)
    at::Tensor q = fused::rope_append(qkv[0], qkv[1], qkv[2], positions, columns, m.rope.inv_freq(), cache.k[l],
                                      cache.v[l], {}, launch);                              // (B, H, D)
    at::Tensor attn = fused::decode_attention(q, cache.k[l], cache.v[l], lengths, {}, launch);  // (B, H*D)
    normed = fused::add_rms_norm(x, linear(attn, w.o_proj), w.post_norm, eps, {}, launch);  // x += attention
    const std::vector<at::Tensor> gate_up = linears(normed, {w.gate_proj, w.up_proj});  // 2x (B, F)
    at::Tensor act = fused::silu_mul(gate_up[0], gate_up[1], {}, launch);                // (B, F)
    const at::Tensor& next_norm = l + 1 < cfg.num_layers ? layers[l + 1].input_norm : m.weights.norm;
    normed = fused::add_rms_norm(x, linear(act, w.down_proj), next_norm, eps, {}, launch);  // x += MLP
  }
  return normed;
}

}  // namespace chatmill::model
