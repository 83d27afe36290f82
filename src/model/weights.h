// The parameters of a Llama model, and their Hugging Face names.
//
// Shape legend: V vocab, C hidden, F intermediate, H heads, Hkv kv heads, D head dim.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "model/config.h"

namespace chatmill::model {

struct LayerWeights {
  at::Tensor input_norm;  // (C)
  at::Tensor q_proj;      // (H*D, C)
  at::Tensor k_proj;      // (Hkv*D, C)
  at::Tensor v_proj;      // (Hkv*D, C)
  at::Tensor o_proj;      // (C, H*D)
  at::Tensor post_norm;   // (C)
  at::Tensor gate_proj;   // (F, C)
  at::Tensor up_proj;     // (F, C)
  at::Tensor down_proj;   // (C, F)
  // Optional packed copies for Kernels::Fused (training builds them): [q; k; v] and [gate; up] along the rows.
  // When undefined, the fused path stacks the parts above itself.
  at::Tensor qkv_proj;      // ((H + 2 Hkv) D, C)
  at::Tensor gate_up_proj;  // (2F, C)
};

struct Weights {
  at::Tensor embed;  // (V, C)
  std::vector<LayerWeights> layers;
  at::Tensor norm;     // (C)
  at::Tensor lm_head;  // (V, C); the same tensor as `embed` when tie_word_embeddings
};

// One parameter as a checkpoint names it: HF name, expected shape, and the slot that holds it.
struct NamedParameter {
  std::string name;
  std::vector<int64_t> shape;
  at::Tensor* slot;
};

// Every stored parameter in HF order (lm_head.weight omitted when tied). `w.layers` is resized to the config.
std::vector<NamedParameter> named_parameters(const LlamaConfig& cfg, Weights& w);

// The stored parameters as (HF name, tensor) pairs, in HF order (the tensors are shared, not copied).
std::vector<std::pair<std::string, at::Tensor>> named_tensors(const LlamaConfig& cfg, const Weights& w);

// Fresh weights with HF LlamaForCausalLM's initialisation: normal(0, std) for matrices, ones for norms.
Weights init_weights(const LlamaConfig& cfg, double std, uint64_t seed, at::ScalarType dtype, at::Device device);

// Points lm_head at embed when the config ties them.
void tie_weights(const LlamaConfig& cfg, Weights& w);

}  // namespace chatmill::model
