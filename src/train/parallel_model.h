// The model as training sees it: parameters laid out in flat groups, the forward pass of a micro-batch to a
// summed token loss, backward with the gradient communication of the chosen strategy, and the optimizer
// update. The model code itself (src/model) knows nothing of this.
//
//   none   one rank; flat group buffers; gradients land in flat buffers.
//   ddp    every rank holds everything; each group's gradients are all-reduced as soon as the group's last
//          gradient is accumulated (overlapping backward), on the last micro-batch of a step.
//   zero1  as ddp, but each rank keeps optimizer state for its slice of every group only, updates that
//          slice and all-gathers the parameters.
//   zero2  gradients are reduce-scattered group by group during every backward, so a rank keeps only the
//          gradient of its slices; optimizer as zero1.
//   zero3  only parameter slices persist: each group is all-gathered for its forward piece, freed, gathered
//          again for its recomputation in backward, and its gradient reduce-scattered into the slice.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/rope.h"
#include "model/weights.h"
#include "train/config.h"
#include "train/master_cast.h"
#include "train/optimizer.h"
#include "train/param_groups.h"
#include "train/parallel/communicator.h"
#include "train/recompute.h"

namespace torch::autograd {
struct Node;
}

namespace chatmill::train {

struct MicroBatch {
  at::Tensor tokens, positions, labels;  // (B, T) int64 on the model's device
  at::Tensor doc;                         // (B, T) int32: document number, -1 = padding
};

struct MemoryBytes {
  int64_t params = 0, grads = 0, optimizer = 0;
};

class ParallelModel : public ParamSource {
 public:
  // `init`: full float32 weights, identical on every rank (rank 0's are broadcast to make sure).
  // `init` may be in any floating dtype (a checkpoint's own): each group is converted into its flat buffer and its
  // tensors released, so loading costs at most one copy of the model beside the growing flat buffers.
  ParallelModel(model::LlamaConfig cfg, model::Weights init, Strategy strategy, Precision precision,
                bool activation_checkpointing, const OptimizerConfig& opt, Communicator& comm, at::Device device,
                model::Kernels kernels = model::Kernels::Fused);
  ~ParallelModel() override;

  const model::LlamaConfig& config() const { return cfg_; }
  Strategy strategy() const { return strategy_; }

  at::Tensor loss_sum(const MicroBatch& mb);  // summed next-token loss, float32 scalar, with autograd
  // Back-propagates loss_sum / divisor; `last` marks the step's last micro-batch (DDP communicates then).
  void backward(const at::Tensor& loss_sum, double divisor, bool last);
  // Waits for the step's gradient communication; the global L2 norm of the gradient.
  double finish_gradients();
  // The optimizer's update; the gradients first scaled by grad_coef (clipping), within the update.
  void optimizer_step(double lr, double grad_coef = 1.0);
  void zero_gradients();

  // The full float32 weights on `to` (gathered under zero3, where every rank must call it); ranks with
  // keep = false only take part in the gathering and get nothing.
  model::Weights full_weights(at::Device to, bool keep = true);
  std::map<std::string, at::Tensor> optimizer_state() const { return optimizer_->state(); }
  void load_optimizer_state(const std::map<std::string, at::Tensor>& s, const std::string& source) {
    optimizer_->load_state(s, source);
  }
  // Every parameter's gradient by HF name (unsharded strategies, or one rank).
  std::map<std::string, at::Tensor> named_gradients();
  // Name of the first parameter whose gradient holds NaN or Inf ("" when all are finite).
  std::string first_non_finite_gradient();
  MemoryBytes memory() const;

  // bf16-mixed with flat gradient buffers (none, ddp, zero1): whether the masters' gradients are written
  // straight into the buffers (train/master_cast.h; the default) or take autograd's own path (a float32 copy of
  // each gradient added into zeroed buffers). An option so that tests and benchmarks can compare the two; set it
  // before the first step.
  void set_direct_master_gradients(bool on) { direct_grads_ = on; }

  // ParamSource (recomputed pieces).
  std::vector<at::Tensor> acquire(int group) override;
  std::vector<at::Tensor> acquire_for_backward(int group) override;
  void deliver(int group) override;

 private:
  bool sharded() const { return strategy_ == Strategy::Zero1 || strategy_ == Strategy::Zero2 || strategy_ == Strategy::Zero3; }
  // This rank's gradient buffer of group g: its slice under zero2/zero3 (undefined before zero3's first
  // backward), the whole group otherwise.
  at::Tensor group_gradient(size_t g);
  int64_t shard_begin(int g) const { return comm_.rank() * groups_[g].shard_size(comm_.world_size()); }
  at::ScalarType compute_dtype() const;  // float32, or bf16 under either bf16 precision
  at::Tensor compute(const at::Tensor& p);  // cast to the compute dtype
  // Matrices stacked along the rows, in the compute dtype, in one pass (model::stack_rows, or master_cast).
  at::Tensor compute_stacked(at::TensorList parts);
  bool master_cast_on() const;  // gradients through master_cast (see set_direct_master_gradients)
  void on_group_gradients(int g);                 // every gradient of group g is accumulated
  void gather_group(int g, at::Tensor& full) const;

  model::LlamaConfig cfg_;
  Strategy strategy_;
  Precision precision_;
  bool recompute_;
  model::Kernels kernels_;
  Communicator& comm_;
  at::Device device_;
  at::ScalarType param_dtype_;
  std::vector<ParamGroup> groups_;
  int embed_group_ = 0, head_group_ = 0;
  model::RotaryEmbedding rope_;

  std::vector<at::Tensor> full_;        // flat parameters per group (all but zero3)
  std::vector<std::vector<at::Tensor>> leaves_;  // views of full_, autograd leaves
  std::vector<at::Tensor> grad_;        // flat gradients per group (none, ddp, zero1); the leaves' .grad view them
  std::vector<at::Tensor> shard_;       // zero3: this rank's slice of each group (a leaf)
  std::vector<at::Tensor> shard_grad_;  // zero2: reduce-scattered gradient slices
  std::vector<at::Tensor> gathered_;    // zero3: the group gathered for a recomputation (a leaf)
  std::vector<int> ready_;              // gradients accumulated per group in this backward
  std::vector<int> expected_;           // accumulations per group in one backward (see the constructor)
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // the leaves' AccumulateGrad nodes
  bool sync_ = false;
  std::vector<Communicator::Pending> pending_;
  std::unique_ptr<AdamW> optimizer_;
  std::vector<at::Tensor> opt_grads_;   // the gradient tensors the optimizer reads, per group
  Recomputer recomputer_;
  bool direct_grads_ = true;
  GradWrites grad_writes_;  // master_cast's record of which masters got a gradient this step
};

}  // namespace chatmill::train
