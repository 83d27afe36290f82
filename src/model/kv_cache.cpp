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
  return cache;
}

}  // namespace chatmill::model
