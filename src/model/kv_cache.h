// Key/value cache for incremental decoding, allocated once for a batch and a capacity.
//
// Shape legend: B batch, Hkv kv heads, S capacity (positions), D head dim.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "model/config.h"

namespace chatmill::model {

struct KVCache {
  std::vector<at::Tensor> k;  // per layer: (B, Hkv, S, D)
  std::vector<at::Tensor> v;  // per layer: (B, Hkv, S, D)
  int64_t length = 0;         // columns filled so far, shared by every row of the batch

  // Static mode, for fixed-shape decode steps (CUDA graphs): when defined, (T) int64 on the cache's device,
  // the columns this step writes; attention then spans the whole capacity under the caller's mask, and
  // `length` is left to the caller.
  at::Tensor write_index;
  // Per-row mode, for one-token steps of sequences at different lengths (the serving engine): when defined,
  // (B) int64 on the cache's device, the column each row writes; attention spans the whole capacity under the
  // caller's mask.
  at::Tensor write_rows;
  int64_t attend_columns = 0;  // per-row mode: attend over columns [0, attend_columns) only (0: all S)
  // The fused step's decode attention (model/fused_ops.h): (B * H) int32 zeros that each launch leaves zero,
  // so that its last split block per head combines instead of a second kernel. Allocated with the cache;
  // a cache without them takes the two-kernel attention.
  at::Tensor split_counters;
  // The persistent decode step's (model/persistent_decode.h), filled by fused::prepare_persistent for a model:
  // per layer the addresses of its weights and of these caches, on the device and (to notice other weights or
  // caches) on the CPU; and its grid barrier's word.
  at::Tensor persistent_table, persistent_table_host, grid_barrier;

  static KVCache allocate(const LlamaConfig& cfg, int64_t batch, int64_t capacity, at::ScalarType dtype,
                          at::Device device);
  int64_t capacity() const { return k.empty() ? 0 : k[0].size(2); }
  int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
};

// One new position per row: k, v (B, Hkv, 1, D) into column columns[b] of row b of one layer's k_cache,
// v_cache (B, Hkv, S, D); columns: (B) int64 on the caches' device.
void write_row_columns(at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& columns, const at::Tensor& k,
                       const at::Tensor& v);

}  // namespace chatmill::model
