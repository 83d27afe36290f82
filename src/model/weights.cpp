#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace chatmill::model {

std::vector<NamedParameter> named_parameters(const LlamaConfig& cfg, Weights& w) {
  const int64_t V = cfg.vocab_size, C = cfg.hidden_size, F = cfg.intermediate_size;
  const int64_t HD = cfg.num_heads * cfg.head_dim(), KD = cfg.num_kv_heads * cfg.head_dim();
  w.layers.resize(cfg.num_layers);
  std::vector<NamedParameter> out;
  out.push_back({"model.embed_tokens.weight", {V, C}, &w.embed});
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights& l = w.layers[i];
    out.push_back({p + "input_layernorm.weight", {C}, &l.input_norm});
    out.push_back({p + "self_attn.q_proj.weight", {HD, C}, &l.q_proj});
    out.push_back({p + "self_attn.k_proj.weight", {KD, C}, &l.k_proj});
    out.push_back({p + "self_attn.v_proj.weight", {KD, C}, &l.v_proj});
    out.push_back({p + "self_attn.o_proj.weight", {C, HD}, &l.o_proj});
    out.push_back({p + "post_attention_layernorm.weight", {C}, &l.post_norm});
    out.push_back({p + "mlp.gate_proj.weight", {F, C}, &l.gate_proj});
    out.push_back({p + "mlp.up_proj.weight", {F, C}, &l.up_proj});
    out.push_back({p + "mlp.down_proj.weight", {C, F}, &l.down_proj});
  }
  out.push_back({"model.norm.weight", {C}, &w.norm});
  if (!cfg.tie_word_embeddings) out.push_back({"lm_head.weight", {V, C}, &w.lm_head});
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> named_tensors(const LlamaConfig& cfg, const Weights& w) {
  Weights handles = w;  // tensor handles only: the storage is shared
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : named_parameters(cfg, handles)) out.emplace_back(p.name, *p.slot);
  return out;
}

void tie_weights(const LlamaConfig& cfg, Weights& w) {
  if (cfg.tie_word_embeddings) w.lm_head = w.embed;
}

Weights init_weights(const LlamaConfig& cfg, double std, uint64_t seed, at::ScalarType dtype, at::Device device) {
  Weights w;
  // Drawn on the CPU in float32 so a seed gives the same weights on every device and dtype.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : named_parameters(cfg, w)) {
    at::Tensor t = p.shape.size() == 1 ? at::ones(p.shape, at::kFloat)
                                       : at::normal(0.0, std, p.shape, gen, at::TensorOptions(at::kFloat));
    *p.slot = t.to(device, dtype);
  }
  tie_weights(cfg, w);
  return w;
}

}  // namespace chatmill::model
