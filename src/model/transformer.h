// The Llama decoder: embedding, L x (attention + SwiGLU) with pre-norm residuals, final norm, LM head.
//
// Shape legend: B batch, T positions in this call, C hidden, V vocab.
#pragma once
#include <ATen/core/Tensor.h>

#include "model/attention.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/weights.h"

namespace chatmill::model {

struct Model {
  LlamaConfig config;
  Weights weights;
  RotaryEmbedding rope;

  Model(LlamaConfig cfg, Weights w);
  at::ScalarType dtype() const { return weights.embed.scalar_type(); }
  at::Device device() const { return weights.embed.device(); }
};

// tokens, positions: (B, T) int64; key_valid: (B, P+T) bool or undefined (no padding).
// With a cache, appends this call's keys/values and advances cache->length by T.
// Returns hidden states (B, T, C) after the final norm.
at::Tensor forward_hidden(const Model& m, const at::Tensor& tokens, const at::Tensor& positions, KVCache* cache,
                          const at::Tensor& key_valid = at::Tensor());

// One decoder block: x + attention(norm(x)), then + SwiGLU(norm(.)). x: (B, T, C) -> (B, T, C).
// Kernels::Fused (training) takes the norms, rotary and SwiGLU through model/fused_autograd.h.
at::Tensor decoder_layer(const LlamaConfig& cfg, const LayerWeights& w, const at::Tensor& x, const RopeTables& rope,
                         KVCache* cache, int64_t layer, const AttentionMask& mask, Kernels kernels = Kernels::Reference);
// Final norm and LM head: hidden (B, T, C) -> logits (B, T, V) in the weights' dtype.
at::Tensor head_logits(const LlamaConfig& cfg, const at::Tensor& norm, const at::Tensor& lm_head, const at::Tensor& h);

// The decoder stack under an explicit mask (S = the keys attention sees). Neither checks nor advances
// cache->length: forward_hidden does that; static decode steps manage their own columns.
at::Tensor forward_hidden_masked(const Model& m, const at::Tensor& tokens, const at::Tensor& positions,
                                 KVCache* cache, const AttentionMask& mask);

// hidden: (B, T, C) -> logits (B, T, V), float32 (computed in the model's dtype, then widened, as HF).
at::Tensor lm_logits(const Model& m, const at::Tensor& hidden);

// Convenience: full logits of unpadded sequences from position 0. tokens: (B, T) -> (B, T, V).
at::Tensor forward_logits(const Model& m, const at::Tensor& tokens);

}  // namespace chatmill::model
