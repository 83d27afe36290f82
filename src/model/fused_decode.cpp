#include "model/fused_decode.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "model/fused_ops.h"
#include "model/persistent_decode.h"

namespace chatmill::model {

fused::LaunchOptions launch_options(const FusedStepOptions& options) {
  return {options.programmatic_launch, options.l2_prefetch, options.tile_gemm, options.tile_min_rows};
}

at::Tensor fused_decode_hidden(const Model& m, const at::Tensor& ids, const at::Tensor& positions,
                               const at::Tensor& columns, const at::Tensor& lengths, KVCache& cache,
                               FusedStepOptions options) {
  DecodeResidual r = fused_decode_residual(m, ids, positions, columns, lengths, cache, options);
  return fused::add_rms_norm(r.x, r.delta, m.weights.norm, m.config.rms_norm_eps, {},
                             r.after(launch_options(options)));  // the final norm
}

DecodeResidual fused_decode_residual(const Model& m, const at::Tensor& ids, const at::Tensor& positions,
                                     const at::Tensor& columns, const at::Tensor& lengths, KVCache& cache,
                                     FusedStepOptions options) {
  const LlamaConfig& cfg = m.config;
  const double eps = cfg.rms_norm_eps;
  CHATMILL_CHECK(ids.dim() == 1, "fused decode takes one token per row: ids must be (B), got ", ids.sizes());
  CHATMILL_CHECK(static_cast<int64_t>(cache.k.size()) == cfg.num_layers, "the cache has ", cache.k.size(),
                 " layers, the model ", cfg.num_layers);
  const auto& layers = m.weights.layers;
  const fused::LaunchOptions launch = launch_options(options);
  const fused::ForceReference projections{!options.skinny_gemm};  // the reference of fused::linear is at::linear
  const at::Tensor counters = options.fold ? cache.split_counters : at::Tensor();
  auto linear = [&](const at::Tensor& a, const at::Tensor& w) { return fused::linear(a, w, projections, launch); };
  const at::Tensor fresh = options.early_kv ? columns : at::Tensor();  // what the kernel before attention wrote
  auto attention = [&](const at::Tensor& q, int64_t l) {  // (B, H, D) -> (B, H*D)
    return fused::decode_attention(q, cache.k[l], cache.v[l], lengths, {}, launch, counters, fresh);
  };
  at::Tensor x = at::embedding(m.weights.embed, ids);  // (B, C): the residual stream

  if (options.persistent && options.fold && options.skinny_gemm && fused::persistent_applies(m, cache, ids.size(0))) {
    fused::prepare_persistent(m, cache);  // nothing to do when the cache's table is current
    const at::Tensor delta = fused::persistent_layers(m, x, positions, columns, lengths, cache, options.l2_prefetch,
                                                        options.persistent_o_prefetch);
    // x += MLP and the final norm come after the whole cooperative kernel, without PDL: whether a programmatic
    // edge may follow a cooperative launch (in a CUDA graph too) is nowhere documented, and it would save one
    // boundary (~3 us) a token.
    return {x, delta, false};
  }
  // tile_min_rows to 16 rows through the tile GEMM, tile_fold: each norm in the loads of the projection after it
  // (from the sums of squares the residual add before it left), each residual add in the epilogue of the o and
  // down projections, rotary and SwiGLU in the q/k/v and gate/up epilogues: five kernels a layer.
  if (options.tile_gemm && options.fold && options.tile_fold && fused::tile_applies(x, {layers[0].q_proj}, {}, launch)) {
    at::Tensor sumsq = at::empty({fused::sumsq_parts(cfg.hidden_size), fused::kTileRows}, x.options().dtype(at::kFloat));
    const at::Tensor first = fused::add_rms_norm(x, at::Tensor(), layers[0].input_norm, eps, {}, launch);  // (B, C)
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      const LayerWeights& w = layers[l];
      at::Tensor q = l == 0 ? fused::qkv_rope_append(first, w.q_proj, w.k_proj, w.v_proj, positions, columns,
                                                     m.rope.inv_freq(), cache.k[l], cache.v[l], {}, launch)
                            : fused::qkv_rope_append(fused::TileNormedInput{x, w.input_norm, sumsq, eps}, w.q_proj,
                                                     w.k_proj, w.v_proj, positions, columns, m.rope.inv_freq(),
                                                     cache.k[l], cache.v[l], {}, launch);  // (B, H, D)
      fused::residual_add_linear(x, attention(q, l), w.o_proj, sumsq, {}, launch);  // x += attention
      const at::Tensor act = fused::gate_up_silu(fused::TileNormedInput{x, w.post_norm, sumsq, eps}, w.gate_proj,
                                                 w.up_proj, {}, launch);  // (B, F)
      fused::residual_add_linear(x, act, w.down_proj, sumsq, {}, launch);  // x += MLP
    }
    return {x, at::Tensor()};  // the residual adds are in the projections' epilogues
  }

  // The folded kernels are the skinny GEMM's: without it (the cuBLAS comparison) the step stays unfolded.
  if (options.fold && options.skinny_gemm && ids.size(0) <= fused::kSkinnyRows) {
    // Each norm in the prologue of the projection after it, SwiGLU and rotary in their epilogues: five kernels
    // a layer; o and down through the tile GEMM where `launch` takes it from this many rows (tile_min_rows). The
    // residual alternates between two buffers (a kernel reads one and writes the other).
    at::Tensor other = at::empty_like(x);
    at::Tensor delta;  // what the previous layer's MLP adds to the residual
    fused::LaunchOptions o_launch = launch;  // o_stage: the staged GEMV, in the tile GEMM's place too
    o_launch.stage_weights = options.o_stage;
    o_launch.tile_gemm = launch.tile_gemm && !options.o_stage;
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      const LayerWeights& w = layers[l];
      const fused::NormedInput attn_in{x, delta, w.input_norm, other, eps};
      at::Tensor q = fused::qkv_rope_append(attn_in, w.q_proj, w.k_proj, w.v_proj, positions, columns,
                                            m.rope.inv_freq(), cache.k[l], cache.v[l], projections, launch);  // (B, H, D)
      const at::Tensor o = fused::linear(attention(q, l), w.o_proj, projections, o_launch);  // (B, C)
      const fused::NormedInput mlp_in{other, o, w.post_norm, x, eps};
      const at::Tensor act = fused::gate_up_silu(mlp_in, w.gate_proj, w.up_proj, projections, launch);  // (B, F)
      delta = linear(act, w.down_proj);                                                  // (B, C)
    }
    return {x, delta};  // the last MLP's output, not yet added
  }

  at::Tensor normed = fused::add_rms_norm(x, at::Tensor(), layers[0].input_norm, eps, {}, launch);
  // Projections that share their input: one skinny launch for all where it applies.
  auto linears = [&](const at::Tensor& a, const std::vector<at::Tensor>& ws) {
    return fused::linear_parts(a, ws, projections, launch);
  };
  // Unfolded, the tile GEMM's epilogues take the rotary and SwiGLU kernels' place where it applies, and it takes
  // o and down too, whether the skinny GEMM is on or not.
  const bool tiles = fused::tile_applies(x, {layers[0].q_proj}, {}, launch);
  auto project = [&](const at::Tensor& a, const at::Tensor& w) {
    return fused::linear(a, w, tiles ? fused::ForceReference{} : projections, launch);
  };
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const LayerWeights& w = layers[l];
    at::Tensor q;  // (B, H, D)
    if (tiles) {
      q = fused::qkv_rope_append(normed, w.q_proj, w.k_proj, w.v_proj, positions, columns, m.rope.inv_freq(),
                                 cache.k[l], cache.v[l], {}, launch);
    } else {
      const std::vector<at::Tensor> qkv = linears(normed, {w.q_proj, w.k_proj, w.v_proj});  // (B, H*D), 2x (B, Hkv*D)
      q = fused::rope_append(qkv[0], qkv[1], qkv[2], positions, columns, m.rope.inv_freq(), cache.k[l], cache.v[l],
                             {}, launch);
    }
    normed = fused::add_rms_norm(x, project(attention(q, l), w.o_proj), w.post_norm, eps, {}, launch);  // x += attention
    at::Tensor act;  // (B, F)
    if (tiles) {
      act = fused::gate_up_silu(normed, w.gate_proj, w.up_proj, {}, launch);
    } else {
      const std::vector<at::Tensor> gate_up = linears(normed, {w.gate_proj, w.up_proj});  // 2x (B, F)
      act = fused::silu_mul(gate_up[0], gate_up[1], {}, launch);
    }
    const at::Tensor down = project(act, w.down_proj);  // (B, C)
    if (l + 1 == cfg.num_layers) return {x, down};   // the last MLP's output, not yet added
    normed = fused::add_rms_norm(x, down, layers[l + 1].input_norm, eps, {}, launch);  // x += MLP
  }
  TORCH_INTERNAL_ASSERT(false, "a model without layers");
}

}  // namespace chatmill::model
