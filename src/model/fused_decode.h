// The one-token decode step through the fused ops (model/fused_ops.h): per layer its seven matmuls (four
// launches where the skinny GEMM serves: q, k, v together, o, gate and up together, down), one
// rotary + cache-append kernel, one attention over each row's own columns, the SwiGLU product in one kernel,
// and the residual adds folded into the norms; with FusedStepOptions::fold at up to two rows, the norms,
// SwiGLU and rotary go into the projections' kernels too. Same computation as forward_hidden_masked on one
// token per row; on CUDA a fifth to a third of the kernel launches, and attention work that follows each
// row's length rather than the cache's capacity.
//
// Shape legend: B rows, C hidden, S cache columns per row.
#pragma once
#include <ATen/core/Tensor.h>

#include "model/fused_ops.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace chatmill::model {

struct FusedStepOptions {
  // The decode projections through fused::linear's skinny-GEMM kernel where it applies (else at::linear,
  // i.e. cuBLAS on CUDA): an option so that benchmarks can measure both in one run.
  bool skinny_gemm = true;
  // The kernels with programmatic dependent launch (fused::LaunchOptions); off to measure what it gains.
  bool programmatic_launch = true;
  // Up to fused::kSkinnyRows rows, with skinny_gemm: each RMSNorm (with its residual add) folded into the prologue of the
  // projection after it, SwiGLU and the rotary + cache append into the epilogues of the gate/up and q/k/v
  // projections; at any batch, attention's combine into its split kernel where the cache has split_counters.
  // Five kernels a layer instead of ten. Off to measure what it gains.
  bool fold = true;
  // The skinny GEMM's warps prefetch more of their first rows into L2 before waiting on the kernel before
  // (fused::LaunchOptions::l2_prefetch): off, as it measured slower in the step; on to measure it again.
  bool l2_prefetch = false;
  // With fold, where fused::persistent_applies (model/persistent_decode.h): all layers in one cooperative
  // kernel, grid barriers instead of kernel boundaries. Off: slower on an H200 (run 6, 1 row: 262.5 tokens/s
  // against the default step's 267.4). The cache's layer table is built on first use (fused::prepare_persistent):
  // under a CUDA graph, prepare it before capturing.
  bool persistent = false;
  // The persistent step's warps ask L2 for their o-projection rows during attention (PersistentStep::o_prefetch).
  // Off: slower in both runs that measured it on an H200 (run 5: 256.0 tokens/s against 260.9 without; run 6,
  // with bulk requests: 258.1 against 263.2).
  bool persistent_o_prefetch = false;
  // From tile_min_rows rows up to fused::kTileRows, the projections through the tensor-core tile GEMM
  // (fused::LaunchOptions::tile_gemm). Past kSkinnyRows rows in place of cuBLAS's GEMMs (some split-K, with a
  // reduce kernel each), rotary + cache append and SwiGLU in its epilogues: seven kernels a layer (the two norms
  // apart). At 1 and 2 rows, in the folded step, the o and down projections (q/k/v and gate/up keep the skinny
  // GEMM's kernels with the norm in their prologue); the LM head only with head_tile_gemm. Where it applies it
  // takes precedence over skinny_gemm (on or off). On: faster at every batch an H200 measured (run 6, 7B bf16,
  // with the LM head through it too, as head_tile_gemm now asks; decode tokens/s against the step without it,
  // same run): 267.4 vs 256.1 at 1 row, 503 vs 474 at 2, 988 vs 835 at 4 (cuBLAS), 1899 vs 1647 at 8, 3442 vs
  // 3093 at 16.
  bool tile_gemm = true;
  // The fewest rows the tile GEMM takes (LaunchOptions::tile_min_rows): 1 (see tile_gemm); 3 leaves 1 and 2 rows
  // to the skinny GEMM alone.
  int64_t tile_min_rows = 1;
  // With tile_gemm and fold, each norm in the loads of the projection after it too, and each residual add in the
  // epilogue of the o and down projections (fused::TileNormedInput, residual_add_linear): five kernels a layer.
  // Off: slower on an H200 (run 6: 3098 tokens/s at 16 rows against 3442; autotune's step at 1 row 3.932 ms
  // against 3.716), normalising in the loads costing 12 us a layer at gate/up and 16 rows (bench_kernels).
  bool tile_fold = false;
  // In the folded skinny step (1 and 2 rows, with skinny_gemm, not persistent, not tile_fold's step): the o
  // projection through the staged GEMV (LaunchOptions::stage_weights; in place of the tile GEMM too), which
  // copies 8 KB of each warp's first row into shared memory while attention runs (PDL). Off until a GPU measures it: attention at 1 row leaves DRAM
  // idle for about 6 us a layer, and o then reads its 33.5 MB at 65% of copy bandwidth (run 6's stage table).
  bool o_stage = false;
  // The LM head through the tile GEMM too, where tile_gemm serves the rows. Off: bench_kernels on an H200 (run 6,
  // in a graph) has the 32000x4096 head slower through it at every row count: 67.1 us against the skinny GEMM's
  // 63.2 at 1 row, 67.9 and 69.8 against cuBLAS's 66.2 and 66.0 at 8 and 16. The head then takes the skinny GEMM
  // up to fused::kSkinnyRows rows (with skinny_gemm) and cuBLAS past them.
  bool head_tile_gemm = false;
  // Attention loads each row's cache columns but the step's new one (columns[b]) before it waits for the q/k/v
  // kernel before it (fused::decode_attention's `fresh`), so that their DRAM round trip overlaps that kernel's
  // end. On, not yet measured on a GPU: at one row attention took 6.5 us a layer for 3 MB in run 6, a chain of
  // L2 and DRAM round trips after the wait; off to measure it.
  bool early_kv = true;
};

// How the step's kernels launch (PDL, L2 prefetch, the tile GEMM's rows), for the step's ops and the LM head after it.
fused::LaunchOptions launch_options(const FusedStepOptions& options);

// ids, positions, columns, lengths: (B) int64 on the model's device. Row b's token at rotary position
// positions[b] writes its keys/values at cache column columns[b], then attends to columns [0, lengths[b])
// (lengths[b] >= 1; normally columns[b] + 1). cache: per layer (B, Hkv, S, D), contiguous.
// Returns the hidden states after the final norm: (B, C).
at::Tensor fused_decode_hidden(const Model& m, const at::Tensor& ids, const at::Tensor& positions,
                               const at::Tensor& columns, const at::Tensor& lengths, KVCache& cache,
                               FusedStepOptions options = {});

// The step up to its final norm: the residual stream x (B, C) and what the last layer adds to it (delta, or
// undefined where the step added it already), so that the final norm can go into the LM head's kernel
// (fused::lm_head_logits). programmatic: whether the next kernel may launch with PDL (not after the persistent
// step's cooperative kernel). fused_decode_hidden is add_rms_norm(x, delta, the final norm weight).
struct DecodeResidual {
  at::Tensor x, delta;
  bool programmatic = true;
  // `launch` for the first kernel after the layers (the final norm, or the LM head that holds it).
  fused::LaunchOptions after(fused::LaunchOptions launch) const {
    launch.programmatic = launch.programmatic && programmatic;
    return launch;
  }
};
DecodeResidual fused_decode_residual(const Model& m, const at::Tensor& ids, const at::Tensor& positions,
                                     const at::Tensor& columns, const at::Tensor& lengths, KVCache& cache,
                                     FusedStepOptions options = {});

}  // namespace chatmill::model
