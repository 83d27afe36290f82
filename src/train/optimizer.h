// AdamW with decoupled weight decay (torch.optim.AdamW's update), over a list of parameter tensors that may be
// whole parameters or flat shards of them. State is float32 whatever the parameters' dtype. With `fused` and
// float32 parameters, ATen's fused kernel (CPU and CUDA) runs the update, once for the ranges that decay and once
// for those that do not; else torch's single-tensor path, range by range.
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "train/config.h"

namespace chatmill::train {

// A range of a flat (1-D) parameter's elements, and whether weight decay applies to them.
struct DecayRun {
  int64_t begin = 0, length = 0;
  bool decay = true;
};

struct OptimizerParam {
  std::string name;            // stable key for checkpoints
  at::Tensor param;            // updated in place
  bool decay = true;           // weight decay applies (matrices, not norms)
  std::vector<DecayRun> runs;  // or, for a flat group (1-D), per range; the runs cover the whole tensor
};

// torch.nn.utils.clip_grad_norm_'s factor for gradients of global L2 norm `norm` clipped to `max_norm`:
// min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0 (no clipping).
inline double clip_coefficient(double max_norm, double norm) {
  return max_norm > 0 ? std::min(1.0, max_norm / (norm + 1e-6)) : 1.0;
}

class AdamW {
 public:
  AdamW(const OptimizerConfig& cfg, std::vector<OptimizerParam> params);
  // One update with learning rate `lr` from `grads` (same order and shapes as the params), each first scaled in
  // place by `grad_coef` (gradient clipping's coefficient; 1: none). The fused kernel scales as it reads, so
  // clipping costs no pass of its own over the gradients.
  void step(double lr, const std::vector<at::Tensor>& grads, double grad_coef = 1.0);
  int64_t steps() const { return steps_; }

  // exp_avg / exp_avg_sq per param name, and the step count: everything a resumed run needs.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& s, const std::string& source);
  // Bytes of optimizer state held (for `chatmill plan`'s check).
  int64_t state_bytes() const;

 private:
  bool can_fuse() const;
  OptimizerConfig cfg_;
  std::vector<OptimizerParam> params_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
};

}  // namespace chatmill::train
