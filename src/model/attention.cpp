#include "model/attention.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace chatmill::model {

AttentionMask make_attention_mask(int64_t T, int64_t past, const at::Tensor& key_valid, at::Device device) {
  AttentionMask m;
  if (!key_valid.defined()) {
    m.is_causal = past == 0 && T > 1;
    if (past == 0 || T == 1) return m;
  }
  const int64_t S = past + T;
  auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor q_pos = at::arange(past, S, opts).unsqueeze(1);  // (T, 1)
  at::Tensor k_pos = at::arange(0, S, opts).unsqueeze(0);     // (1, S)
  at::Tensor allowed = k_pos <= q_pos;                        // (T, S)
  if (key_valid.defined()) {
    at::Tensor valid = key_valid.to(device, at::kBool).unsqueeze(1).unsqueeze(1);  // (B, 1, 1, S)
    allowed = allowed & (valid | (k_pos == q_pos));                             // (B, 1, T, S)
  } else {
    allowed = allowed.unsqueeze(0).unsqueeze(0);  // (1, 1, T, S)
  }
  m.mask = allowed;
  return m;
}

at::Tensor length_mask(const at::Tensor& lengths, int64_t S) {
  const int64_t B = lengths.size(0);
  at::Tensor cols = at::arange(S, lengths.options()).unsqueeze(0);  // (1, S)
  return (cols < lengths.unsqueeze(1)).view({B, 1, 1, S});
}

at::Tensor repeat_kv(const at::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const int64_t B = x.size(0), Hkv = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, Hkv, groups, S, D}).reshape({B, Hkv * groups, S, D});
}

at::Tensor attention(const LlamaConfig& cfg, const LayerWeights& w, const at::Tensor& x, const RopeTables& rope,
                     KVCache* cache, int64_t layer, const AttentionMask& mask, Kernels kernels) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = cfg.num_heads, Hkv = cfg.num_kv_heads, D = cfg.head_dim();

  at::Tensor q, k, v;
  if (kernels == Kernels::Fused) {
    CHATMILL_CHECK(cache == nullptr, "the fused layer ops serve training, which runs without a KV cache");
    const at::Tensor& packed = w.qkv_proj.defined() ? w.qkv_proj : at::cat({w.q_proj, w.k_proj, w.v_proj});
    // One GEMM, split into heads and rotated in the projections' layout; SDPA takes the transposed views.
    QkvHeads heads = qkv_rotary_fused(at::linear(x, packed), rope.cos, rope.sin, H, Hkv);  // (B, T, *, D)
    // Flash attention's domain: half types, head dims that are multiples of 8 up to 256.
    const bool flash = (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf) && D % 8 == 0 && D <= 256;
    if (mask.segment_starts.defined() && x.is_cuda() && flash) {
      // Flash attention over the runs of the flattened positions; its output is already (B*T, H, D).
      at::Tensor out = std::get<0>(at::_flash_attention_forward(
          heads.q.view({B * T, H, D}), heads.k.view({B * T, Hkv, D}), heads.v.view({B * T, Hkv, D}),
          mask.segment_starts, mask.segment_starts, mask.max_segment, mask.max_segment, /*dropout_p=*/0.0,
          /*is_causal=*/true, /*return_debug_mask=*/false));
      return at::linear(out.view({B, T, H * D}), w.o_proj);
    }
    q = heads.q.transpose(1, 2);  // (B, H, T, D)
    k = heads.k.transpose(1, 2);  // (B, Hkv, T, D)
    v = heads.v.transpose(1, 2);  // (B, Hkv, T, D)
  } else {
    q = apply_rotary(at::linear(x, w.q_proj).view({B, T, H, D}).transpose(1, 2), rope);    // (B, H, T, D)
    k = apply_rotary(at::linear(x, w.k_proj).view({B, T, Hkv, D}).transpose(1, 2), rope);  // (B, Hkv, T, D)
    v = at::linear(x, w.v_proj).view({B, T, Hkv, D}).transpose(1, 2);                      // (B, Hkv, T, D)
  }

  if (cache != nullptr && cache->write_rows.defined()) {
    CHATMILL_CHECK(T == 1, "per-row cache writes take one token per row, got ", T);
    write_row_columns(cache->k[layer], cache->v[layer], cache->write_rows, k, v);
    const int64_t W = cache->attend_columns > 0 ? cache->attend_columns : cache->capacity();
    k = cache->k[layer].narrow(2, 0, W);  // (B, Hkv, W, D): the mask picks each row's own columns
    v = cache->v[layer].narrow(2, 0, W);
  } else if (cache != nullptr && cache->write_index.defined()) {
    cache->k[layer].index_copy_(2, cache->write_index, k);
    cache->v[layer].index_copy_(2, cache->write_index, v);
    k = cache->k[layer];  // (B, Hkv, S, D): every column; the mask hides the unwritten ones
    v = cache->v[layer];
  } else if (cache != nullptr) {
    const int64_t P = cache->length;
    cache->k[layer].narrow(2, P, T).copy_(k);
    cache->v[layer].narrow(2, P, T).copy_(v);
    k = cache->k[layer].narrow(2, 0, P + T);  // (B, Hkv, S, D)
    v = cache->v[layer].narrow(2, 0, P + T);
  }
  k = repeat_kv(k, cfg.kv_groups());  // (B, H, S, D)
  v = repeat_kv(v, cfg.kv_groups());

  at::Tensor out = at::scaled_dot_product_attention(
      q, k, v, mask.mask.defined() ? std::optional<at::Tensor>(mask.mask) : std::nullopt,
      /*dropout_p=*/0.0, mask.is_causal);                               // (B, H, T, D)
  out = out.transpose(1, 2).reshape({B, T, H * D});                      // (B, T, C)
  return at::linear(out, w.o_proj);
}

}  // namespace chatmill::model
