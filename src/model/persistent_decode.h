// The persistent decode step: all layers of a one-token step at up to kPersistentRows rows in one cooperative
// CUDA kernel (model/cuda/persistent_kernels.cuh), its stages separated by grid barriers instead of kernel
// boundaries, each stage's first weight loads in flight while its barrier completes. The same computation, and
// the same device code, as the folded step of model/fused_decode.h; only the boundaries differ.
//
// The kernel reads each layer's weight and cache addresses from a table in device memory, built once for a
// model and its cache (prepare_persistent; never while a CUDA graph is being captured) and kept in the cache.
//
// Shape legend: M rows (one token each), C hidden, F intermediate, H heads, Hkv kv heads, D head dim,
// S cache columns, L layers.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model {
struct Model;
struct KVCache;
}  // namespace chatmill::model

namespace chatmill::model::fused {

constexpr int64_t kPersistentRows = 2;

// The five stages of a layer (model/cuda/persistent_kernels.cuh), as bits of PersistentStep::stages.
enum PersistentStage : unsigned {
  kQkvStage = 1,        // q, k, v of the normalised residual, rotary, the cache append
  kAttentionStage = 2,  // attention with the last-block combine
  kOStage = 4,          // the o projection
  kGateUpStage = 8,     // gate, up of the normalised residual, SwiGLU
  kDownStage = 16,      // the down projection
  kAllStages = 31,
  kStagedKernel = 32,   // with kAllStages: the masked kernel computing every stage (what the mask costs it)
};

// What one launch takes; every tensor on one device (the CPU only in the emulator's tests), dtype T where not
// said. Checked by persistent_layers; the launch code (model/cuda/persistent_launch.cuh) trusts it.
struct PersistentStep {
  at::Tensor table;    // (L, 11) int64: per layer the addresses of wq, wk, wv, wo, wg, wu, wd, input_norm,
                       // post_norm, k_cache, v_cache (layer_table)
  at::Tensor barrier;  // (1) int32, zero before the first launch (model/cuda/grid_sync.cuh)
  at::Tensor x;        // (M, C): the embeddings in, the residual after the last layer out
  at::Tensor delta;    // (M, C) out: the last layer's MLP output, which the final norm adds
  at::Tensor positions, columns, lengths;  // (M) int64: rotary position, cache column written, columns attended
  at::Tensor inv_freq;  // (D/2) float32
  at::Tensor counters;  // (>= M H) int32 zeros, left zero
  int64_t H = 0, Hkv = 0, D = 0, F = 0, S = 0;
  double eps = 1e-5;
  bool l2_prefetch = false;  // each warp's next rows into L2 before a barrier (LaunchOptions::l2_prefetch)
  bool o_prefetch = true;    // during attention, each warp's o-projection rows into L2 (DRAM idles there)
  // The stages that run, the others skipped with their barriers kept: anything but kAllStages runs a second
  // kernel, which reads the mask, and, short of every stage, computes no model: it times the stages apart
  // (bench_kernels), at one row in bf16 with head dim 128 only.
  unsigned stages = kAllStages;
};

// The table of PersistentStep for these weights and caches, on the caches' device.
at::Tensor layer_table(const Model& m, const KVCache& cache);

// Whether the persistent step runs for `rows` rows of this model and cache: CUDA kernels built, the model on a
// CUDA device in bf16/fp16, rows <= kPersistentRows, head dim 64 or 128, each projection's input within the
// kernel's shared memory (rows * max(C, F, H D) <= 16384 values), K dims multiples of 8, 16-byte aligned,
// contiguous tensors. Otherwise the caller takes the folded step.
bool persistent_applies(const Model& m, const KVCache& cache, int64_t rows);

// Fills cache.persistent_table and cache.grid_barrier for `m` where missing or built for other weights or
// caches. Synchronous: call it before capturing a step in a CUDA graph.
void prepare_persistent(const Model& m, KVCache& cache);

// One launch's arguments for m and cache (the table and barrier prepare_persistent left in it) at x (M, C),
// the rows' positions, columns and lengths; delta allocated. Unchecked: persistent_layers checks.
PersistentStep persistent_step_args(const Model& m, const KVCache& cache, const at::Tensor& x,
                                    const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& lengths);

// The layers of the step for embeddings x (M, C), updated in place to the residual after the last layer;
// returns the last layer's MLP output (M, C). positions, columns, lengths as fused_decode_hidden's. Needs
// persistent_applies and prepare_persistent.
// l2_prefetch, o_prefetch: PersistentStep's.
at::Tensor persistent_layers(const Model& m, at::Tensor& x, const at::Tensor& positions, const at::Tensor& columns,
                             const at::Tensor& lengths, KVCache& cache, bool l2_prefetch = false,
                             bool o_prefetch = true);

}  // namespace chatmill::model::fused
