#include "train/recompute.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <memory>

namespace chatmill::train {

struct Recomputer::Piece {
  PieceFn fn;
  std::vector<int> groups;
  ParamSource* source;
};

namespace {

using Piece = Recomputer::Piece;

std::vector<std::vector<at::Tensor>> acquire(Piece& p, bool for_backward) {
  std::vector<std::vector<at::Tensor>> out;
  for (int g : p.groups) out.push_back(for_backward ? p.source->acquire_for_backward(g) : p.source->acquire(g));
  return out;
}

struct Recompute : torch::autograd::Function<Recompute> {
  // The piece travels as an integer (saved_data holds IValues only); the Recomputer keeps it alive.
  // `anchor` requires grad, so the output does even when x does not (token ids): the parameters the piece
  // uses are not inputs autograd can see.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            [[maybe_unused]] const at::Tensor& anchor,
                            int64_t piece_ptr) {
    auto* p = reinterpret_cast<Piece*>(piece_ptr);
    ctx->saved_data["piece"] = c10::IValue(piece_ptr);
    ctx->save_for_backward({x});
    at::NoGradGuard no_grad;
    auto params = acquire(*p, false);
    return p->fn(x, params);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto* p = reinterpret_cast<Piece*>(ctx->saved_data["piece"].toInt());
    at::Tensor x = ctx->get_saved_variables()[0];
    const bool x_grad = at::isFloatingType(x.scalar_type());
    at::Tensor xr = x_grad ? x.detach().requires_grad_(true) : x;
    at::Tensor y;
    {
      // Grad mode on before acquiring: views of the parameters made with it off would carry no history.
      at::AutoGradMode enable(true);
      auto params = acquire(*p, true);
      y = p->fn(xr, params);
    }
    torch::autograd::backward({y}, {grad_out[0]});
    for (int g : p->groups) p->source->deliver(g);
    return {x_grad ? xr.grad() : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor Recomputer::run(PieceFn fn, const at::Tensor& x, std::vector<int> groups, ParamSource& source) {
  pieces_.push_back(std::make_shared<Piece>(Piece{std::move(fn), std::move(groups), &source}));
  if (!anchor_.defined()) anchor_ = at::zeros({}, at::kFloat).requires_grad_(true);  // at:: factories ignore requires_grad options
  return Recompute::apply(x, anchor_, reinterpret_cast<int64_t>(pieces_.back().get()));
}

}  // namespace chatmill::train
