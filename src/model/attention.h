// Grouped-query self-attention with rotary embeddings and an optional KV cache.
//
// Shape legend: B batch, T new positions, P positions already cached, S = P + T keys,
// C hidden, H heads, Hkv kv heads, D head dim.
#pragma once
#include <ATen/core/Tensor.h>

#include "model/config.h"
#include "model/fused_autograd.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/weights.h"

namespace chatmill::model {

// Which keys each query may see. When `mask` is undefined, attention is either plain causal
// (`is_causal`, lets SDPA pick flash kernels) or unrestricted (one new token over the cache).
struct AttentionMask {
  at::Tensor mask;  // (B, 1, T, S) bool, true = may attend
  bool is_causal = false;
  // Optional, packed training rows: the same causal-within-segment mask as runs of the flattened (B*T)
  // positions, int32 (segments + 1) starts then B*T, and the longest run. Kernels::Fused on CUDA in bf16/fp16
  // then runs flash attention over the runs (varlen) instead of SDPA under the dense mask.
  at::Tensor segment_starts;
  int64_t max_segment = 0;
};

// key_valid: (B, S) bool, false for padding keys, or undefined when no row is padded.
// A padding query attends to itself only, so no row of the mask is empty (SDPA would give NaN).
AttentionMask make_attention_mask(int64_t T, int64_t past, const at::Tensor& key_valid, at::Device device);

// lengths: (B) int64 -> (B, 1, 1, S) bool: row b may attend to its columns [0, lengths[b]).
at::Tensor length_mask(const at::Tensor& lengths, int64_t S);

// (B, Hkv, S, D) -> (B, Hkv * groups, S, D): each kv head serves `groups` query heads.
at::Tensor repeat_kv(const at::Tensor& x, int64_t groups);

// x: (B, T, C) -> (B, T, C). With a cache, writes this step's keys/values at columns [P, P+T) of
// cache layer `layer` (P = cache->length; the caller advances length once all layers ran), or, in static
// mode, at cache->write_index, attending over all S columns under `mask`.
// Kernels::Fused (training, no cache): one packed q/k/v GEMM, split and rotated by qkv_rotary_fused.
at::Tensor attention(const LlamaConfig& cfg, const LayerWeights& w, const at::Tensor& x, const RopeTables& rope,
                     KVCache* cache, int64_t layer, const AttentionMask& mask, Kernels kernels = Kernels::Reference);

}  // namespace chatmill::model
