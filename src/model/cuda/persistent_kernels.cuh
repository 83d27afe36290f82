// The persistent decode step (model/persistent_decode.h): every layer of a one-token step at up to two rows in
// one cooperative kernel. Its blocks (as many as the device holds at once) go through the folded step's five
// stages a layer, the same device code as those kernels (skinny_kernels.cuh, attention_kernels.cuh):
//   1. q, k, v of rms_norm(x + delta), q and k rotated, k and v into the cache; block 0: other = x + delta
//   2. attention, split over the columns, the last split block of a head combining
//   3. o = attention wo^T
//   4. act = silu(h wg^T) * (h wu^T), h = rms_norm(other + o); block 0: x = other + o
//   5. delta = act wd^T
// separated by grid barriers (grid_sync.cuh) where the folded step has kernel boundaries. Before each barrier,
// every warp starts the loads of its first weight rows of the next projection, so DRAM keeps streaming
// through the barrier: what a kernel boundary cannot do, as the next kernel's blocks only become resident
// once the running kernel's exit. During attention, which reads little, the warps ask L2 for all of their
// o-projection rows (StepRefs::o_prefetch).
//
// Activations (x, other, delta, q, the caches' new columns, attention's output, o, act) are written by one
// stage and read by the next in the same kernel: they are read through L2 (__ldcg), never the read-only path.
// A projection's x is staged into shared memory once per block (normalised, or copied).
// Plain device code: compiled by nvcc (persistent_kernels.cu) and, in the tests, for the CPU emulator.
// Shape legend: M rows, C hidden, F intermediate, H heads, Hkv kv heads, D head dim, S cache columns, L layers.
#pragma once
#include <cstdint>

#include "model/cuda/attention_kernels.cuh"
#include "model/cuda/grid_sync.cuh"
#include "model/cuda/skinny_kernels.cuh"
#include "model/persistent_decode.h"

namespace chatmill::model::fused::kernels {

// Values of x (all M rows) a block stages in shared memory: 32 KB in bf16/fp16.
constexpr int64_t kMaxStagedX = 16384;

// A layer's weights and caches, as the step's table holds them (11 addresses, in this order).
template <typename T>
struct LayerRefs {
  const T* wq;  // (H D, C)
  const T* wk;  // (Hkv D, C)
  const T* wv;  // (Hkv D, C)
  const T* wo;  // (C, H D)
  const T* wg;  // (F, C)
  const T* wu;  // (F, C)
  const T* wd;  // (C, F)
  const T* input_norm;  // (C)
  const T* post_norm;   // (C)
  T* k_cache;  // (M, Hkv, S, D)
  T* v_cache;  // (M, Hkv, S, D)
};
constexpr int kLayerRefsWidth = 11;

template <typename T>
struct StepRefs {
  const LayerRefs<T>* layers;  // (L), in device memory
  int num_layers;
  T* x;      // (M, C): the embeddings in; the residual after each layer out
  T* other;  // (M, C): the residual between a layer's attention and its MLP
  T* delta;  // (M, C): the MLP's output, added by the next layer (the last one's: by the caller's final norm)
  T* q;      // (M, H, D)
  T* attn;   // (M, H D)
  T* o;      // (M, C)
  T* act;    // (M, F)
  const int64_t* positions;  // (M)
  const int64_t* columns;    // (M)
  const int64_t* lengths;    // (M)
  const float* inv_freq;     // (D/2)
  float* part_acc;  // (M H splits, D)
  float* part_ml;   // (M H splits, 2)
  int* counters;    // (M H) zeros, left zero
  unsigned* barrier;  // grid_sync's word
  int64_t C, F, S;
  int H, Hkv, splits;
  float eps, scale;
  int l2_lines;
  bool o_prefetch;  // during attention, each warp's o-projection rows into L2
  unsigned stages;  // PersistentStep::stages: PersistentStage bits (model/persistent_decode.h)
};

// x (n values, a multiple of 16 bytes) into xs, by all threads of the block.
template <typename T>
__device__ __forceinline__ void stage_x(const T* x, int64_t n, uint4* xs) {
  const uint4* src = reinterpret_cast<const uint4*>(x);
  for (int64_t i = threadIdx.x; i < n * static_cast<int64_t>(sizeof(T)) / 16; i += blockDim.x) xs[i] = __ldcg(src + i);
  __syncthreads();
}

template <typename T>
__device__ __forceinline__ RopePlan<T> qkv_plan(const StepRefs<T>& a, const LayerRefs<T>& w, int D) {
  RopePlan<T> p;
  p.wq = w.wq;
  p.wk = w.wk;
  p.wv = w.wv;
  p.positions = a.positions;
  p.columns = a.columns;
  p.inv_freq = a.inv_freq;
  p.q_out = a.q;
  p.k_cache = w.k_cache;
  p.v_cache = w.v_cache;
  p.H = a.H;
  p.Hkv = a.Hkv;
  p.D = D;
  p.S = a.S;
  return p;
}

// out (M, N) = x w^T: a one-part PartsPlan.
template <typename T>
__device__ __forceinline__ PartsPlan<T> one_plan(const T* w, T* out, int64_t N) {
  PartsPlan<T> p;
  for (int i = 0; i < kMaxParts; ++i) {
    p.w[i] = w;
    p.end[i] = N;
  }
  p.out = out;
  p.N = N;
  return p;
}

// Whether a stage runs: always, but in the kStaged instantiation, which reads StepRefs::stages (a run-time
// mask there costs the step's registers: spills at one row).
template <bool kStaged>
__device__ __forceinline__ bool runs(unsigned stages, unsigned stage) {
  return !kStaged || (stages & stage) != 0;
}

// G: lanes per attention column (D = G * 16 / sizeof(T)). Blocks of kSkinnyWarps warps; at most 2 a SM
// (128 registers a thread), as the two-row projections need. kStaged: the stages of StepRefs::stages only.
template <typename T, int M, int G, bool kStaged = false>
__global__ void __launch_bounds__(kSkinnyWarps * 32, 2) persistent_step_kernel(StepRefs<T> a) {
  __shared__ uint4 xs[kMaxStagedX * sizeof(T) / 16];
  __shared__ SplitShared<kSkinnyWarps> attn_sh;
  constexpr int D = G * 16 / sizeof(T);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kSkinnyWarps + threadIdx.x / 32;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kSkinnyWarps;
  const int64_t HD = static_cast<int64_t>(a.H) * D;
  const int vblocks = M * a.H * a.splits;
  SkinnyCursor c2, c1;  // the two-row projections' (q,k,v; gate,up) and the one-row ones' (o; down)
  // The layer's addresses are read where used, not held: 11 pointers live across every stage would take
  // registers the projections' loads need.
  const LayerRefs<T>* w = a.layers;
  if (runs<kStaged>(a.stages, kQkvStage)) skinny_begin<T>(qkv_plan(a, *w, D), a.C, first, a.l2_lines, c2);
  cuda_launch::wait_for_previous_kernel();  // the embeddings come from the kernel before
  // The step's rotations and cache columns, the same for every layer: once a block (RopePlan::Table).
  __shared__ typename RopePlan<T>::Table rope_storage;
  const typename RopePlan<T>::Table* rope_table = qkv_plan(a, *a.layers, D).template fill_table<M>(rope_storage);
  for (int l = 0; l < a.num_layers; ++l, ++w) {
    // 1. q, k, v of rms_norm(x + delta) (layer 0: of x), rotated, k and v into the cache; block 0: other.
    if (runs<kStaged>(a.stages, kQkvStage)) {
      NormIn<T> attn_in;
      attn_in.residual_in = a.x;
      attn_in.delta = l > 0 ? a.delta : nullptr;
      attn_in.delta_stride = a.C;
      attn_in.weight = w->input_norm;
      attn_in.residual_out = a.other;
      attn_in.eps = a.eps;
      normalise_into<T, M>(attn_in, a.C, xs);
      skinny_items<T, M, RopePlan<T>, true>(xs, qkv_plan(a, *w, D), a.C, stride, c2, rope_table);
    }
    if (runs<kStaged>(a.stages, kOStage)) skinny_begin<T>(one_plan(w->wo, a.o, a.C), HD, first, a.l2_lines, c1);
    cuda_launch::grid_sync(a.barrier);

    // 2. attention: virtual blocks (row and head, split). A chain of dependent round trips that leaves DRAM
    // idle: meanwhile L2 takes the o projection's weights (33.5 MB for 7B, within an H100's 50 MB of L2).
    if (runs<kStaged>(a.stages, kOStage) && a.o_prefetch)
      prefetch_items<T>(one_plan(w->wo, a.o, a.C), HD, first, stride);
    for (int vb = blockIdx.x; runs<kStaged>(a.stages, kAttentionStage) && vb < vblocks; vb += gridDim.x) {
      __syncthreads();  // attn_sh is free again
      split_vec_block<T, G, kSkinnyWarps>(attn_sh, a.q, w->k_cache, w->v_cache, a.lengths, a.part_acc, a.part_ml,
                                          a.attn, a.counters, a.H, a.Hkv, a.S, a.scale, vb / a.splits,
                                          vb % a.splits, a.splits);
    }
    cuda_launch::grid_sync(a.barrier);

    // 3. o = attention wo^T.
    if (runs<kStaged>(a.stages, kOStage)) {
      stage_x<T>(a.attn, M * HD, xs);
      skinny_items<T, M, PartsPlan<T>, true>(xs, one_plan(w->wo, a.o, a.C), HD, stride, c1);
    }
    if (runs<kStaged>(a.stages, kGateUpStage))
      skinny_begin<T>(SiluPlan<T>{w->wg, w->wu, a.act, a.F}, a.C, first, a.l2_lines, c2);
    cuda_launch::grid_sync(a.barrier);

    // 4. act = silu(h wg^T) * (h wu^T), h = rms_norm(other + o); block 0: x = other + o.
    if (runs<kStaged>(a.stages, kGateUpStage)) {
      NormIn<T> mlp_in;
      mlp_in.residual_in = a.other;
      mlp_in.delta = a.o;
      mlp_in.delta_stride = a.C;
      mlp_in.weight = w->post_norm;
      mlp_in.residual_out = a.x;
      mlp_in.eps = a.eps;
      normalise_into<T, M>(mlp_in, a.C, xs);
      skinny_items<T, M, SiluPlan<T>, true>(xs, SiluPlan<T>{w->wg, w->wu, a.act, a.F}, a.C, stride, c2);
    }
    if (runs<kStaged>(a.stages, kDownStage)) skinny_begin<T>(one_plan(w->wd, a.delta, a.C), a.F, first, a.l2_lines, c1);
    cuda_launch::grid_sync(a.barrier);

    // 5. delta = act wd^T.
    if (runs<kStaged>(a.stages, kDownStage)) {
      stage_x<T>(a.act, M * a.F, xs);
      skinny_items<T, M, PartsPlan<T>, true>(xs, one_plan(w->wd, a.delta, a.C), a.F, stride, c1);
    }
    if (l + 1 < a.num_layers) {  // after the last layer, the kernel's end is the barrier
      if (runs<kStaged>(a.stages, kQkvStage)) skinny_begin<T>(qkv_plan(a, w[1], D), a.C, first, a.l2_lines, c2);
      cuda_launch::grid_sync(a.barrier);
    }
  }
}

}  // namespace chatmill::model::fused::kernels
