// Entry points of src/model/cuda/fused_kernels.cu and decode_attention.cu (CUDA builds only).
// model/fused_ops.h documents each op; these take CUDA tensors already checked by fused_ops.cpp and launch on
// the current stream, with programmatic dependent launch where `programmatic` (model/cuda/launch.cuh).
// model/cuda/decode_launch.cuh holds the launch code itself, which the tests also run on the CPU emulator.
#pragma once
#include <ATen/core/Tensor.h>

#include "model/fused_ops.h"

namespace chatmill::model::fused::cuda {

void add_rms_norm(const at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                  const at::Tensor& out, bool programmatic);
void silu_mul(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out, bool programmatic);
void rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                 const at::Tensor& columns, const at::Tensor& inv_freq, const at::Tensor& k_cache,
                 const at::Tensor& v_cache, const at::Tensor& q_out, bool programmatic);
// counters: undefined, or (>= B*H) int32 zeros (then no combine kernel; left zero). fresh: undefined, or (B)
// int64, each row's column the kernel before wrote (the others are loaded before the wait).
void decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                      const at::Tensor& lengths, const at::Tensor& counters, const at::Tensor& out,
                      const at::Tensor& fresh, bool programmatic);

// x: (M, K) contiguous, M <= 2 (fused::kSkinnyRows); weights: 1 to 3 of (N_i, K), contiguous; K % 8 == 0 and all 16-byte aligned;
// out: (M, sum N_i) contiguous, gets x w_0^T, x w_1^T, ... side by side.
void skinny_linear(const at::Tensor& x, at::TensorList weights, const at::Tensor& out, LaunchOptions launch);
// fused::qkv_rope_append and fused::gate_up_silu where fused::folds_apply: q_out (M, H, D), out (M, F).
void skinny_qkv_rope(const NormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                     const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                     const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch);
void skinny_gate_up_silu(const NormedInput& in, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                         LaunchOptions launch);
// fused::lm_head_logits where fused::folds_apply: out (M, V) float32.
void skinny_logits(const NormedInput& in, const at::Tensor& w, const at::Tensor& out, LaunchOptions launch);

// The same products at 1 <= M <= kTileRows through the tile GEMM (fused::tile_applies), x (M, K) as it
// is: linear_parts, then qkv_rope_append's and gate_up_silu's epilogues on an already normalised x.
void tile_linear(const at::Tensor& x, at::TensorList weights, const at::Tensor& out, LaunchOptions launch);
void tile_qkv_rope(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                   const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                   const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch);
void tile_gate_up_silu(const at::Tensor& x, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                       LaunchOptions launch);
// The same with x normalised as it is loaded (fused::TileNormedInput), and fused::residual_add_linear.
void tile_qkv_rope(const TileNormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                   const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                   const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch);
void tile_gate_up_silu(const TileNormedInput& in, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                       LaunchOptions launch);
// model::advance_greedy (model/step_advance.h) on checked tensors: logits (n, V) rows V apart, state (4, B), ring
// (2, B) pinned host memory; without PDL (it follows a step's graph, not one of its kernels).
void advance_greedy(const at::Tensor& logits, const at::Tensor& state, const at::Tensor& ring);

void tile_residual_linear(const at::Tensor& residual, const at::Tensor& x, const at::Tensor& w, const at::Tensor& sumsq,
                          LaunchOptions launch);

}  // namespace chatmill::model::fused::cuda
