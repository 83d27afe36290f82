#include "model/kv_cache.h"

#include <ATen/ATen.h>

namespace chatmill::model {

KVCache KVCache::allocate(const LlamaConfig& cfg, int64_t batch, int64_t capacity, at::ScalarType dtype,
                          at::Device device) {
  KVCache cache;
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    cache.k.push_back(at::zeros({batch, cfg.num_kv_heads, capacity, cfg.head_dim()}, opts));
    cache.v.push_back(at::zeros({batch, cfg.num_kv_heads, capacity, cfg.head_dim()}, opts));
  }
  cache.split_counters = at::zeros({batch * cfg.num_heads}, at::TensorOptions().dtype(at::kInt).device(device));
  return cache;
}

void write_row_columns(at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& columns, const at::Tensor& k,
                       const at::Tensor& v) {
  const at::Tensor at_col = columns.view({k.size(0), 1, 1, 1}).expand(k.sizes());  // (B, Hkv, 1, D)
  k_cache.scatter_(2, at_col, k);
  v_cache.scatter_(2, at_col, v);
}

}  // namespace chatmill::model
