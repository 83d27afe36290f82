// bf16-mixed training's cast of the float32 master weights to the compute dtype, with a backward that writes
// each master's gradient straight into its .grad (a view of its group's flat gradient buffer): a copy for the
// first gradient a master gets in a step, an add after that. Autograd's own path would make a float32 copy of
// the bf16 gradient and AccumulateGrad would add it into a buffer zeroed beforehand: some 16 bytes of traffic
// per parameter more (30 GB a step for a 1.9B-parameter model). The masters' AccumulateGrad nodes still run,
// with no gradient, so hooks on them (gradient readiness for DDP) fire as before.
//
// Every use of a master in the forward must go through master_cast once this is in use: the gradient buffers
// are no longer zeroed, and autograd's own accumulation would add to the last step's values.
#pragma once
#include <ATen/core/Tensor.h>

#include <unordered_set>

namespace chatmill::train {

// The masters that got a gradient since the step began.
class GradWrites {
 public:
  void new_step() { written_.clear(); }
  // True the first time `master` gets a gradient this step.
  bool first(const at::Tensor& master) { return written_.insert(master.unsafeGetTensorImpl()).second; }
  // Zeroes the .grad of each of `masters` that got no gradient this step.
  void zero_unwritten(at::TensorList masters);

 private:
  std::unordered_set<const c10::TensorImpl*> written_;
};

// masters: float32 leaves with a defined .grad, matrices with equal column counts (stacked along the rows) or
// one tensor of any shape. Returns them in `dtype`, stacked: (sum of rows, K), or the one tensor's shape.
at::Tensor master_cast(at::TensorList masters, at::ScalarType dtype, GradWrites& writes);

}  // namespace chatmill::train
