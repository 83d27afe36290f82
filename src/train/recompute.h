// Running a piece of the model so that backward recomputes it instead of keeping its activations: the
// basis of activation checkpointing, and of ZeRO-3, where the parameters themselves are gathered for the
// forward pass, freed, and gathered again for the recomputation.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <vector>

namespace chatmill::train {

// Where a recomputed piece gets its parameters (one list per parameter group), and where gradients go.
class ParamSource {
 public:
  virtual ~ParamSource() = default;
  // For the forward pass, without autograd.
  virtual std::vector<at::Tensor> acquire(int group) = 0;
  // For the recomputation in backward: tensors whose gradients autograd will fill.
  virtual std::vector<at::Tensor> acquire_for_backward(int group) = 0;
  // After that backward: move the gradients of what acquire_for_backward returned to their home.
  virtual void deliver(int group) = 0;
};

using PieceFn = std::function<at::Tensor(const at::Tensor& x, const std::vector<std::vector<at::Tensor>>& params)>;

// Runs pieces so that only their inputs are kept for backward, which re-acquires the parameters,
// recomputes with autograd and back-propagates through the piece. The pieces of a micro-batch stay alive
// until clear() (call it once its backward is done).
class Recomputer {
 public:
  // y = fn(x, params of `groups`). x may be integer (token ids): it then gets no gradient.
  at::Tensor run(PieceFn fn, const at::Tensor& x, std::vector<int> groups, ParamSource& source);
  void clear() { pieces_.clear(); }

  struct Piece;

 private:
  std::vector<std::shared_ptr<Piece>> pieces_;
  at::Tensor anchor_;
};

}  // namespace chatmill::train
