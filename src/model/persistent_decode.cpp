// The table, checks and dispatch of model/persistent_decode.h.
#include "model/persistent_decode.h"

#include <ATen/ATen.h>

#include <array>
#include <cstdint>

#include "common/error.h"
#include "model/fused_ops.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#ifdef CHATMILL_CUDA
#include "model/cuda/persistent_kernels.h"
#endif

namespace chatmill::model::fused {

namespace {

constexpr int64_t kMaxStagedValues = 16384;  // kernels::kMaxStagedX
constexpr int64_t kTableWidth = 11;          // kernels::kLayerRefsWidth

int64_t address(const at::Tensor& t) { return static_cast<int64_t>(reinterpret_cast<uintptr_t>(t.data_ptr())); }

// Layer l's tensors in the order of PersistentStep::table's rows.
std::array<const at::Tensor*, kTableWidth> layer_tensors(const Model& m, const KVCache& cache, size_t l) {
  const LayerWeights& w = m.weights.layers[l];
  return {&w.q_proj,   &w.k_proj,     &w.v_proj,     &w.o_proj,     &w.gate_proj, &w.up_proj,
          &w.down_proj, &w.input_norm, &w.post_norm, &cache.k[l], &cache.v[l]};
}

// The table's rows on the CPU: the addresses PersistentStep::table documents.
at::Tensor host_table(const Model& m, const KVCache& cache) {
  const auto& layers = m.weights.layers;
  CHATMILL_CHECK(cache.k.size() == layers.size() && cache.v.size() == layers.size(), "persistent step: the cache has ",
                 cache.k.size(), " layers, the model ", layers.size());
  at::Tensor t = at::empty({static_cast<int64_t>(layers.size()), kTableWidth}, at::kLong);
  int64_t* p = t.data_ptr<int64_t>();
  for (size_t l = 0; l < layers.size(); ++l)
    for (const at::Tensor* x : layer_tensors(m, cache, l)) *p++ = address(*x);
  return t;
}

}  // namespace

at::Tensor layer_table(const Model& m, const KVCache& cache) {
  const at::Device device = cache.k.empty() ? m.device() : cache.k[0].device();
  return host_table(m, cache).to(device);
}

bool persistent_applies(const Model& m, const KVCache& cache, int64_t rows) {
  const LlamaConfig& c = m.config;
  const at::ScalarType dt = m.dtype();
  if (!kernels_built() || !m.device().is_cuda() || (dt != at::kBFloat16 && dt != at::kHalf)) return false;
  if (rows < 1 || rows > kPersistentRows || cache.k.size() != m.weights.layers.size() || cache.k.empty()) return false;
  const int64_t D = c.head_dim(), HD = c.num_heads * D, F = c.intermediate_size, C = c.hidden_size;
  if (D != 64 && D != 128) return false;  // the kernel's instantiations: 8 or 16 lanes a column in bf16/fp16
  if (rows * std::max({C, F, HD}) > kMaxStagedValues || C % 8 != 0 || F % 8 != 0 || HD % 8 != 0) return false;
  if (!cache.split_counters.defined() || cache.split_counters.numel() < rows * c.num_heads) return false;
  for (size_t l = 0; l < cache.k.size(); ++l) {
    for (const at::Tensor* x : layer_tensors(m, cache, l))
      if (!x->is_contiguous() || !aligned16(*x) || x->scalar_type() != dt || x->device() != m.device()) return false;
    if (cache.k[l].size(0) < rows) return false;
  }
  return true;
}

void prepare_persistent(const Model& m, KVCache& cache) {
  const at::Tensor host = host_table(m, cache);
  if (!cache.persistent_table_host.defined() || !cache.persistent_table_host.equal(host)) {
    cache.persistent_table_host = host;
    cache.persistent_table = host.to(cache.k[0].device());
  }
  if (!cache.grid_barrier.defined())
    cache.grid_barrier = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(cache.k[0].device()));
}

PersistentStep persistent_step_args(const Model& m, const KVCache& cache, const at::Tensor& x,
                                    const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& lengths) {
  const LlamaConfig& c = m.config;
  PersistentStep s;
  s.table = cache.persistent_table;
  s.barrier = cache.grid_barrier;
  s.x = x;
  s.delta = at::empty_like(x);
  s.positions = positions;
  s.columns = columns;
  s.lengths = lengths;
  s.inv_freq = m.rope.inv_freq();
  s.counters = cache.split_counters;
  s.H = c.num_heads;
  s.Hkv = c.num_kv_heads;
  s.D = c.head_dim();
  s.F = c.intermediate_size;
  s.S = cache.k[0].size(2);
  s.eps = c.rms_norm_eps;
  return s;
}

at::Tensor persistent_layers(const Model& m, at::Tensor& x, const at::Tensor& positions, const at::Tensor& columns,
                             const at::Tensor& lengths, KVCache& cache, bool l2_prefetch, bool o_prefetch) {
  const LlamaConfig& c = m.config;
  const int64_t M = x.size(0);
  CHATMILL_CHECK(persistent_applies(m, cache, M), "persistent step: does not apply to this model, cache and ", M,
                 " rows (see persistent_applies in model/persistent_decode.h); take the folded step");
  CHATMILL_CHECK(x.dim() == 2 && x.size(1) == c.hidden_size && x.is_contiguous() && x.scalar_type() == m.dtype(),
                 "persistent step: x must be contiguous (M, ", c.hidden_size, ") ", m.dtype(), ", got ", x.sizes(), " ",
                 x.scalar_type());
  for (const at::Tensor* t : {&positions, &columns, &lengths})
    CHATMILL_CHECK(t->dim() == 1 && t->size(0) == M && t->scalar_type() == at::kLong && t->is_contiguous() &&
                       t->device() == x.device(),
                   "persistent step: positions, columns and lengths must be (", M, ") int64 on ", x.device());
  // A table built for other weights or caches would send the kernel to stale addresses.
  CHATMILL_CHECK(cache.persistent_table_host.defined() && cache.persistent_table_host.equal(host_table(m, cache)) &&
                     cache.grid_barrier.defined(),
                 "persistent step: the cache's layer table is missing or was built for other weights or caches; call "
                 "fused::prepare_persistent(model, cache) first (not while capturing a CUDA graph)");
  PersistentStep s = persistent_step_args(m, cache, x, positions, columns, lengths);
  s.l2_prefetch = l2_prefetch;
  s.o_prefetch = o_prefetch;
#ifdef CHATMILL_CUDA
  cuda::persistent_step(s);
#endif
  return s.delta;
}

}  // namespace chatmill::model::fused
