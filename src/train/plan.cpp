#include "train/plan.h"

#include <algorithm>
#include <cstdio>

#include "train/linear_cross_entropy.h"
#include "train/param_groups.h"

namespace chatmill::train {

MemoryPlan plan_memory(const model::LlamaConfig& m, const TrainConfig& cfg, int W, int64_t T) {
  MemoryPlan p;
  const auto groups = make_param_groups(m, W);
  const bool pure = cfg.model.precision == Precision::Bf16Pure;
  const int64_t elem = pure ? 2 : 4;  // parameters and gradients: float32 masters, or bf16 when pure
  const Strategy s = cfg.parallel.strategy;
  int64_t largest = 0;
  for (const auto& g : groups) {
    const int64_t full = g.padded, shard = g.padded / W;
    largest = std::max(largest, full);
    const bool shard_params = s == Strategy::Zero3;
    const bool shard_grads = s == Strategy::Zero2 || s == Strategy::Zero3;
    const bool shard_state = s == Strategy::Zero1 || shard_grads;
    p.params += (shard_params ? shard : full) * elem;
    p.grads += (shard_grads ? shard : full) * elem;
    p.optimizer += (shard_state ? shard : full) * 8;  // exp_avg and exp_avg_sq, float32
  }
  // Activations of one micro-batch (B rows of T tokens), in the compute dtype. Per layer, autograd keeps
  // about 16 tensors of (B, T, C) with HF's op order (norm inputs, float32 statistics and outputs, q/k/v before
  // and after rotation, attention output, residuals), 8 with the fused ops (norm inputs and outputs, rotated
  // q/k, v, attention output, residual), 3 of (B, T, F) (gate, up, their product) and the boolean document
  // mask (B, T, T); with recomputation only each layer's input, plus one layer's worth while it is recomputed.
  const int64_t B = cfg.data.micro_batch_size, C = m.hidden_size, F = m.intermediate_size, V = m.vocab_size;
  const int64_t act = cfg.model.precision == Precision::Float32 ? 4 : 2;
  const bool fused = cfg.model.kernels == model::Kernels::Fused;
  const int64_t per_layer = B * T * ((fused ? 8 : 16) * C + 3 * F) * act;
  const bool recompute = cfg.model.activation_checkpointing || s == Strategy::Zero3;
  p.activations = recompute ? m.num_layers * B * T * C * act + per_layer : m.num_layers * per_layer;
  // The loss: HF's order keeps the logits and their softmax gradient in float32; the fused loss one chunk of
  // logits (compute dtype, float32, gradient), the hidden states' gradient, and the head's gradient in float32
  // plus its compute-dtype copy. Then the mask, and (zero3) a gathered group and its gradient.
  const int64_t chunk = std::min(B * T, default_chunk_positions(V));
  p.buffers = (fused ? chunk * V * (act + 4 + act) + B * T * C * act + V * C * (4 + act) : 2 * B * T * V * 4) +
              B * T * T + (s == Strategy::Zero3 ? 2 * largest * elem : 0);
  if (s == Strategy::Zero2) p.buffers += largest * elem;  // one group's full gradient before its reduce-scatter
  // bf16-mixed: the bf16 copies of the weights that the graph keeps (all of them, or one group when recomputing).
  if (cfg.model.precision == Precision::Bf16Mixed) p.buffers += (recompute ? largest : m.num_parameters()) * 2;
  return p;
}

std::string format_plan(const MemoryPlan& p, const model::LlamaConfig& m, const TrainConfig& cfg, int W, double gib) {
  auto g = [](int64_t b) { return static_cast<double>(b) / (1024.0 * 1024 * 1024); };
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "model: %lld parameters (%lld layers, hidden %lld)\n"
                "strategy %s, %d rank(s), precision %s, micro-batch %lld, activation checkpointing %s, %s kernels\n"
                "per rank:\n"
                "  parameters   %8.2f GiB\n  gradients    %8.2f GiB\n  optimizer    %8.2f GiB\n"
                "  activations  %8.2f GiB\n  buffers      %8.2f GiB\n  total        %8.2f GiB of %.0f GiB: %s\n",
                static_cast<long long>(m.num_parameters()), static_cast<long long>(m.num_layers),
                static_cast<long long>(m.hidden_size), strategy_name(cfg.parallel.strategy), W,
                precision_name(cfg.model.precision), static_cast<long long>(cfg.data.micro_batch_size),
                cfg.model.activation_checkpointing ? "on" : "off",
                kernels_name(cfg.model.kernels), g(p.params), g(p.grads), g(p.optimizer),
                g(p.activations), g(p.buffers), g(p.total()), gib, g(p.total()) <= gib * 0.95 ? "fits" : "does NOT fit");
  return buf;
}

}  // namespace chatmill::train
