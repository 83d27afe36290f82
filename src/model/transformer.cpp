#include "model/transformer.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/feed_forward.h"
#include "model/rms_norm.h"

namespace chatmill::model {

Model::Model(LlamaConfig cfg, Weights w) : config(std::move(cfg)), weights(std::move(w)) {
  tie_weights(config, weights);
  rope = RotaryEmbedding(config.head_dim(), config.rope_theta, weights.embed.device());
}

at::Tensor decoder_layer(const LlamaConfig& cfg, const LayerWeights& w, const at::Tensor& x, const RopeTables& rope,
                         KVCache* cache, int64_t layer, const AttentionMask& mask, Kernels kernels) {
  auto norm = [&](const at::Tensor& t, const at::Tensor& weight) {
    return kernels == Kernels::Fused ? rms_norm_fused(t, weight, cfg.rms_norm_eps) : rms_norm(t, weight, cfg.rms_norm_eps);
  };
  at::Tensor h = x + attention(cfg, w, norm(x, w.input_norm), rope, cache, layer, mask, kernels);
  return h + feed_forward(w, norm(h, w.post_norm), kernels);
}

at::Tensor head_logits(const LlamaConfig& cfg, const at::Tensor& norm, const at::Tensor& lm_head, const at::Tensor& h) {
  return at::linear(rms_norm(h, norm, cfg.rms_norm_eps), lm_head);
}

at::Tensor forward_hidden_masked(const Model& m, const at::Tensor& tokens, const at::Tensor& positions,
                                 KVCache* cache, const AttentionMask& mask) {
  const LlamaConfig& cfg = m.config;
  RopeTables rope = m.rope.tables(positions, m.dtype());
  at::Tensor h = at::embedding(m.weights.embed, tokens);  // (B, T, C)
  for (int64_t i = 0; i < cfg.num_layers; ++i) h = decoder_layer(cfg, m.weights.layers[i], h, rope, cache, i, mask);
  return rms_norm(h, m.weights.norm, cfg.rms_norm_eps);
}

at::Tensor forward_hidden(const Model& m, const at::Tensor& tokens, const at::Tensor& positions, KVCache* cache,
                          const at::Tensor& key_valid) {
  const int64_t T = tokens.size(1);
  const int64_t past = cache ? cache->length : 0;
  CHATMILL_CHECK(!cache || past + T <= cache->capacity(), "KV cache overflow: ", past, " cached + ", T,
                 " new positions exceed its capacity of ", cache->capacity(), "; allocate a larger cache");
  TORCH_INTERNAL_ASSERT(!cache || !cache->write_index.defined(), "forward_hidden needs a cache in dynamic mode");
  at::Tensor h = forward_hidden_masked(m, tokens, positions, cache, make_attention_mask(T, past, key_valid, m.device()));
  if (cache) cache->length += T;
  return h;
}

at::Tensor lm_logits(const Model& m, const at::Tensor& hidden) {
  // Folded to (rows, C) first: on a strided view such as each row's last position, at::linear would take a
  // batched matmul against the head expanded per row (83 ms instead of ~5 for 32 rows of the 24M bench model).
  std::vector<int64_t> sizes = hidden.sizes().vec();
  sizes.back() = m.weights.lm_head.size(0);
  return at::linear(hidden.reshape({-1, hidden.size(-1)}), m.weights.lm_head).view(sizes).to(at::kFloat);
}

at::Tensor forward_logits(const Model& m, const at::Tensor& tokens) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  at::Tensor positions = at::arange(T, tokens.options().dtype(at::kLong)).unsqueeze(0).expand({B, T});
  return lm_logits(m, forward_hidden(m, tokens, positions, nullptr));
}

}  // namespace chatmill::model
