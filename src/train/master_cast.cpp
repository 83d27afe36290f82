#include "train/master_cast.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>

#include "common/error.h"
#include "model/fused_autograd.h"
#include "train/cuda/grad_cast.h"

namespace chatmill::train {

namespace {

// g (float32) = part, or += part after the master's first gradient of the step. On CUDA through a vectorised
// kernel where it applies: ATen's mixed-dtype copy_ and add_ run at about 40% of the bandwidth.
void hand_over(at::Tensor& g, const at::Tensor& part, bool first) {
#ifdef CHATMILL_CUDA
  if (g.is_cuda() && grad_cast::applies(g, part)) {
    grad_cast::cast_into_cuda(g, part, !first);
    return;
  }
#endif
  if (first) g.copy_(part);
  else g.add_(part);
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct MasterCastFunction : torch::autograd::Function<MasterCastFunction> {
  static at::Tensor forward(AutogradContext* ctx, at::TensorList masters, at::ScalarType dtype, GradWrites* writes) {
    ctx->saved_data["masters"] = masters.vec();  // the leaves themselves: their .grad is where gradients go
    ctx->saved_data["writes"] = reinterpret_cast<int64_t>(writes);
    at::NoGradGuard no_grad;  // the stacking itself records nothing: this function's backward is the one
    return masters.size() == 1 ? masters[0].to(dtype) : model::stack_rows(masters, dtype);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto* writes = reinterpret_cast<GradWrites*>(ctx->saved_data["writes"].toInt());
    const std::vector<at::Tensor> masters = ctx->saved_data["masters"].toTensorVector();
    at::NoGradGuard no_grad;
    int64_t at_row = 0;
    for (const at::Tensor& m : masters) {
      at::Tensor g = m.grad();  // shares the flat buffer: written in place
      const int64_t rows = masters.size() == 1 ? 0 : m.size(0);
      const bool first = writes->first(m);
      if (!grad[0].defined()) {  // an output nobody used: a zero gradient
        if (first) g.zero_();
      } else {
        const at::Tensor part = masters.size() == 1 ? grad[0] : grad[0].narrow(0, at_row, rows);
        hand_over(g, part, first);
      }
      at_row += rows;
    }
    // No gradient for the leaves themselves: AccumulateGrad runs (and its hooks fire) and leaves .grad alone.
    return variable_list(masters.size() + 2);
  }
};

}  // namespace

void GradWrites::zero_unwritten(at::TensorList masters) {
  at::NoGradGuard no_grad;
  for (const at::Tensor& m : masters)
    if (written_.count(m.unsafeGetTensorImpl()) == 0 && m.grad().defined()) m.grad().zero_();
}

at::Tensor master_cast(at::TensorList masters, at::ScalarType dtype, GradWrites& writes) {
  CHATMILL_CHECK(!masters.empty(), "master_cast: no masters given");
  for (const at::Tensor& m : masters)  // stacked ones are checked by stack_rows
    CHATMILL_CHECK(m.is_leaf() && m.requires_grad() && m.grad().defined(),
                   "master_cast: each master must be a leaf whose .grad is its gradient buffer");
  return MasterCastFunction::apply(masters, dtype, &writes);
}

}  // namespace chatmill::train
