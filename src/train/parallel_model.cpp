#include "train/parallel_model.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <utility>

#include "common/error.h"
#include "model/transformer.h"
#include "train/linear_cross_entropy.h"
#include "train/loss.h"

namespace chatmill::train {

namespace {

model::LayerWeights layer_from(const std::vector<at::Tensor>& p) {
  TORCH_INTERNAL_ASSERT(p.size() == 9);  // named_parameters' order within a layer
  model::LayerWeights w;
  w.input_norm = p[0];
  w.q_proj = p[1];
  w.k_proj = p[2];
  w.v_proj = p[3];
  w.o_proj = p[4];
  w.post_norm = p[5];
  w.gate_proj = p[6];
  w.up_proj = p[7];
  w.down_proj = p[8];
  return w;
}

}  // namespace

ParallelModel::ParallelModel(model::LlamaConfig cfg, model::Weights init, Strategy strategy, Precision precision,
                             bool activation_checkpointing, const OptimizerConfig& opt, Communicator& comm,
                             at::Device device, model::Kernels kernels)
    : cfg_(std::move(cfg)),
      strategy_(strategy),
      precision_(precision),
      recompute_(activation_checkpointing || strategy == Strategy::Zero3),
      kernels_(kernels),
      comm_(comm),
      device_(device),
      param_dtype_(precision == Precision::Bf16Pure ? at::kBFloat16 : at::kFloat),
      groups_(make_param_groups(cfg_, comm.world_size())),
      rope_(cfg_.head_dim(), cfg_.rope_theta, device) {
  CHATMILL_CHECK(strategy != Strategy::None || comm.world_size() == 1, "parallel.strategy is none but ", comm.world_size(),
                 " ranks are running; choose ddp, zero1, zero2 or zero3");
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (groups_[g].name == "embed") embed_group_ = static_cast<int>(g);
    if (groups_[g].name == "head") head_group_ = static_cast<int>(g);
  }
  const auto opts = at::TensorOptions().dtype(param_dtype_).device(device);
  model::Weights w = std::move(init);
  std::vector<OptimizerParam> opt_params;
  const int W = comm.world_size();
  ready_.assign(groups_.size(), 0);
  // One accumulation per leaf, except a tied embedding under recomputation: the head piece and the embedding
  // piece run separate backward passes, so its leaf accumulates twice, and the group is complete after both.
  expected_.clear();
  for (size_t g = 0; g < groups_.size(); ++g) {
    const bool twice = recompute_ && cfg_.tie_word_embeddings && static_cast<int>(g) == embed_group_;
    expected_.push_back(static_cast<int>(groups_[g].names.size()) * (twice ? 2 : 1));
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& grp = groups_[g];
    std::vector<at::Tensor> tensors;
    for (at::Tensor* slot : group_slots(cfg_, grp, w)) tensors.push_back(std::exchange(*slot, at::Tensor()));
    at::Tensor flat = flatten_group(grp, tensors, opts);
    tensors.clear();  // this group's loaded copy goes (unless the caller still holds it)
    comm.broadcast(flat, 0);  // every rank starts from rank 0's weights
    const int64_t S = grp.shard_size(W), begin = comm.rank() * S;
    if (strategy == Strategy::Zero3) {
      shard_.push_back(flat.narrow(0, begin, S).clone().requires_grad_(true));
      full_.emplace_back();
      leaves_.emplace_back();
      opt_params.push_back({"group." + grp.name, shard_.back(), true, decay_runs(grp, begin, S)});
      continue;
    }
    full_.push_back(flat);
    // Leaves share the flat buffer's storage (detach keeps it): an all-gather into `flat` updates them.
    std::vector<at::Tensor> views;
    for (const at::Tensor& v : group_views(grp, flat)) views.push_back(v.detach().requires_grad_(true));
    leaves_.push_back(views);
    if (strategy != Strategy::Zero2) {
      // Gradients accumulate straight into one flat buffer per group ("gradient as bucket view").
      grad_.push_back(at::zeros_like(flat));
      auto gviews = group_views(grp, grad_.back());
      for (size_t i = 0; i < views.size(); ++i) views[i].mutable_grad() = gviews[i];
    } else {
      grad_.emplace_back();
      shard_grad_.push_back(at::zeros({S}, opts));
    }
    for (auto& v : views) {
      const int gi = static_cast<int>(g);
      // Autograd keeps only a weak reference to a leaf's accumulator: hold it, or backward makes a fresh one
      // without the hook.
      accumulators_.push_back(torch::autograd::impl::grad_accumulator(v));
      accumulators_.back()->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [this, gi](const torch::autograd::variable_list& out, const torch::autograd::variable_list&) {
            if (++ready_[gi] == expected_[gi]) on_group_gradients(gi);
            return out;
          }));
    }
    if (sharded())
      opt_params.push_back({"group." + grp.name, flat.narrow(0, begin, S), true, decay_runs(grp, begin, S)});
    else
      opt_params.push_back({"group." + grp.name, flat, true, decay_runs(grp, 0, grp.padded)});
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    const int64_t S = groups_[g].shard_size(W), begin = comm.rank() * S;
    if (strategy == Strategy::Zero3) opt_grads_.emplace_back();  // shard_[g].grad(), bound at step time
    else if (strategy == Strategy::Zero2) opt_grads_.push_back(shard_grad_[g]);
    else if (strategy == Strategy::Zero1) opt_grads_.push_back(grad_[g].narrow(0, begin, S));
    else opt_grads_.push_back(grad_[g]);
  }
  optimizer_ = std::make_unique<AdamW>(opt, opt_params);
}

ParallelModel::~ParallelModel() = default;

at::ScalarType ParallelModel::compute_dtype() const {
  return precision_ == Precision::Float32 ? at::kFloat : at::kBFloat16;
}

bool ParallelModel::master_cast_on() const {
  return direct_grads_ && precision_ == Precision::Bf16Mixed &&
         (strategy_ == Strategy::None || strategy_ == Strategy::Ddp || strategy_ == Strategy::Zero1);
}

at::Tensor ParallelModel::compute(const at::Tensor& p) {
  if (master_cast_on() && p.requires_grad()) return master_cast({p}, compute_dtype(), grad_writes_);
  return p.to(compute_dtype());  // a no-op unless bf16-mixed (float32 masters)
}

at::Tensor ParallelModel::compute_stacked(at::TensorList parts) {
  if (master_cast_on() && parts[0].requires_grad()) return master_cast(parts, compute_dtype(), grad_writes_);
  return model::stack_rows(parts, compute_dtype());
}

void ParallelModel::gather_group(int g, at::Tensor& full) const {
  full = at::empty({groups_[g].padded}, shard_[g].options().requires_grad(false));
  comm_.all_gather(full, shard_[g].detach());
}

std::vector<at::Tensor> ParallelModel::acquire(int g) {
  if (strategy_ != Strategy::Zero3) return leaves_[g];
  at::Tensor full;
  gather_group(g, full);  // freed when the forward piece returns
  return group_views(groups_[g], full);
}

std::vector<at::Tensor> ParallelModel::acquire_for_backward(int g) {
  if (strategy_ != Strategy::Zero3) return leaves_[g];  // gradients accumulate into the leaves as usual
  if (gathered_.size() < groups_.size()) gathered_.resize(groups_.size());
  gather_group(g, gathered_[g]);
  gathered_[g].requires_grad_(true);
  return group_views(groups_[g], gathered_[g]);
}

void ParallelModel::deliver(int g) {
  if (strategy_ != Strategy::Zero3) return;
  const int64_t S = groups_[g].shard_size(comm_.world_size());
  at::Tensor piece = at::empty({S}, shard_[g].options().requires_grad(false));
  comm_.reduce_scatter_sum(piece, gathered_[g].grad());
  at::Tensor& sg = shard_[g].mutable_grad();
  if (sg.defined()) sg.add_(piece);
  else sg = piece;
  gathered_[g] = at::Tensor();  // free the gathered copy
}

void ParallelModel::on_group_gradients(int g) {
  if (strategy_ == Strategy::Ddp || strategy_ == Strategy::Zero1) {
    if (sync_) pending_.push_back(comm_.all_reduce_sum_async(grad_[g]));
  } else if (strategy_ == Strategy::Zero2) {
    // Reduce-scatter this group now and drop its full gradients: a rank holds one group's worth at a time.
    std::vector<at::Tensor> grads;
    for (auto& leaf : leaves_[g]) grads.push_back(leaf.grad());
    at::Tensor flat = flatten_group(groups_[g], grads, grads[0].options());
    at::Tensor piece = at::empty_like(shard_grad_[g]);
    comm_.reduce_scatter_sum(piece, flat);
    shard_grad_[g].add_(piece);
    for (auto& leaf : leaves_[g]) leaf.mutable_grad() = at::Tensor();
  }
}

at::Tensor ParallelModel::loss_sum(const MicroBatch& mb) {
  const model::RopeTables rope = rope_.tables(mb.positions, compute_dtype());
  const model::AttentionMask mask = document_mask(mb.doc);
  const bool tied = cfg_.tie_word_embeddings;
  const int eg = embed_group_, hg = head_group_;
  auto embed = [this](const at::Tensor& tokens, const std::vector<std::vector<at::Tensor>>& p) {
    return at::embedding(compute(p[0][0]), tokens);
  };
  auto layer = [this, rope, mask](int64_t i) {
    return [this, rope, mask, i](const at::Tensor& h, const std::vector<std::vector<at::Tensor>>& p) {
      model::LayerWeights w;
      if (kernels_ == model::Kernels::Fused) {
        // Packed projections, converted to the compute dtype in the same pass (layer_from's order).
        w.input_norm = compute(p[0][0]);
        w.qkv_proj = compute_stacked({p[0][1], p[0][2], p[0][3]});
        w.o_proj = compute(p[0][4]);
        w.post_norm = compute(p[0][5]);
        w.gate_up_proj = compute_stacked({p[0][6], p[0][7]});
        w.down_proj = compute(p[0][8]);
      } else {
        std::vector<at::Tensor> c;
        for (const auto& t : p[0]) c.push_back(compute(t));
        w = layer_from(c);
      }
      return model::decoder_layer(cfg_, w, h, rope, nullptr, i, mask, kernels_);
    };
  };
  const at::Tensor labels = mb.labels;
  auto head = [this, tied, labels](const at::Tensor& h, const std::vector<std::vector<at::Tensor>>& p) {
    // p[0]: the head group (norm[, lm_head]); p[1]: the embedding, when tied.
    const at::Tensor lm = tied ? p[1][0] : p[0][1];
    if (kernels_ == model::Kernels::Fused)
      return linear_cross_entropy_sum(model::rms_norm_fused(h, compute(p[0][0]), cfg_.rms_norm_eps), compute(lm), labels);
    return token_loss_sum(model::head_logits(cfg_, compute(p[0][0]), compute(lm), h), labels);
  };
  std::vector<int> head_groups = {hg};
  if (tied) head_groups.push_back(eg);

  if (!recompute_) {
    auto params = [this](const std::vector<int>& gs) {
      std::vector<std::vector<at::Tensor>> out;
      for (int g : gs) out.push_back(leaves_[g]);
      return out;
    };
    at::Tensor h = embed(mb.tokens, params({eg}));
    for (int64_t i = 0; i < cfg_.num_layers; ++i) h = layer(i)(h, params({eg + 1 + static_cast<int>(i)}));
    return head(h, params(head_groups));
  }
  at::Tensor h = recomputer_.run(embed, mb.tokens, {eg}, *this);
  for (int64_t i = 0; i < cfg_.num_layers; ++i) h = recomputer_.run(layer(i), h, {eg + 1 + static_cast<int>(i)}, *this);
  return recomputer_.run(head, h, head_groups, *this);
}

void ParallelModel::backward(const at::Tensor& loss_sum, double divisor, bool last) {
  std::fill(ready_.begin(), ready_.end(), 0);
  sync_ = last;
  torch::autograd::backward({loss_sum / divisor});
  recomputer_.clear();
}

at::Tensor ParallelModel::group_gradient(size_t g) {
  if (strategy_ == Strategy::Zero3) return shard_[g].grad();
  return strategy_ == Strategy::Zero2 ? shard_grad_[g] : grad_[g];
}

double ParallelModel::finish_gradients() {
  for (auto& wait : pending_) wait();
  pending_.clear();
  at::NoGradGuard no_grad;
  if (master_cast_on())
    for (const auto& leaves : leaves_) grad_writes_.zero_unwritten(leaves);
  // Summed on the device, one host sync: sharded strategies add up the ranks' slices.
  at::Tensor sumsq = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(device_));
  const bool sharded_grads = strategy_ == Strategy::Zero2 || strategy_ == Strategy::Zero3;
  for (size_t g = 0; g < groups_.size(); ++g) {
    at::Tensor gr = group_gradient(g);
    if (gr.defined()) sumsq += at::linalg_vector_norm(gr, 2).to(at::kDouble).pow(2);
  }
  if (sharded_grads) comm_.all_reduce_sum(sumsq);
  return std::sqrt(sumsq.item<double>());
}

std::string ParallelModel::first_non_finite_gradient() {
  at::NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    at::Tensor gr = group_gradient(g);
    if (!gr.defined() || at::isfinite(gr).all().item<bool>()) continue;
    if (strategy_ == Strategy::Zero2 || strategy_ == Strategy::Zero3) return "a slice of group " + groups_[g].name;
    for (size_t i = 0; i < groups_[g].names.size(); ++i) {
      at::Tensor part = gr.narrow(0, groups_[g].offsets[i], leaves_[g][i].numel());
      if (!at::isfinite(part).all().item<bool>()) return groups_[g].names[i];
    }
  }
  return "";
}

void ParallelModel::optimizer_step(double lr, double grad_coef) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads = opt_grads_;
  if (strategy_ == Strategy::Zero3)
    for (size_t g = 0; g < groups_.size(); ++g) {
      grads[g] = shard_[g].grad();
      if (!grads[g].defined()) grads[g] = at::zeros_like(shard_[g]);
    }
  optimizer_->step(lr, grads, grad_coef);
  if (strategy_ == Strategy::Zero1 || strategy_ == Strategy::Zero2) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      const int64_t S = groups_[g].shard_size(comm_.world_size());
      at::Tensor mine = full_[g].narrow(0, shard_begin(static_cast<int>(g)), S).clone();
      comm_.all_gather(full_[g], mine);  // the leaves view full_ and see the update
    }
  }
}

void ParallelModel::zero_gradients() {
  at::NoGradGuard no_grad;
  if (master_cast_on()) {  // the first gradient of the step overwrites; the unwritten are zeroed after backward
    grad_writes_.new_step();
    return;
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    at::Tensor gr = group_gradient(g);  // shares the buffer: in place
    if (gr.defined()) gr.zero_();
  }
}

model::Weights ParallelModel::full_weights(at::Device to, bool keep) {
  at::NoGradGuard no_grad;
  model::Weights w;
  for (size_t g = 0; g < groups_.size(); ++g) {
    at::Tensor full;
    if (strategy_ == Strategy::Zero3) gather_group(static_cast<int>(g), full);  // every rank takes part
    else full = full_[g];
    if (!keep) continue;
    auto views = group_views(groups_[g], full);
    auto slots = group_slots(cfg_, groups_[g], w);
    // One copy per tensor, straight to `to` in float32.
    for (size_t i = 0; i < views.size(); ++i) *slots[i] = views[i].to(to, at::kFloat, false, /*copy=*/true);
  }
  if (keep) model::tie_weights(cfg_, w);
  return w;
}

std::map<std::string, at::Tensor> ParallelModel::named_gradients() {
  CHATMILL_CHECK(!(strategy_ == Strategy::Zero2 || strategy_ == Strategy::Zero3) || comm_.world_size() == 1,
                 "per-parameter gradients of a sharded run exist on no single rank");
  std::map<std::string, at::Tensor> out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    at::Tensor flat = group_gradient(g);
    auto views = group_views(groups_[g], flat);
    for (size_t i = 0; i < views.size(); ++i) out[groups_[g].names[i]] = views[i];
  }
  return out;
}

MemoryBytes ParallelModel::memory() const {
  MemoryBytes m;
  const int64_t elem = at::elementSize(param_dtype_);
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (strategy_ == Strategy::Zero3) {
      m.params += shard_[g].numel() * elem;
      m.grads += shard_[g].numel() * elem;
    } else {
      m.params += full_[g].numel() * elem;
      m.grads += (strategy_ == Strategy::Zero2 ? shard_grad_[g].numel() : grad_[g].numel()) * elem;
    }
  }
  m.optimizer = optimizer_->state_bytes();
  return m;
}

}  // namespace chatmill::train
