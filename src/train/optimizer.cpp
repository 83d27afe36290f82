#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "common/error.h"

namespace chatmill::train {

AdamW::AdamW(const OptimizerConfig& cfg, std::vector<OptimizerParam> params) : cfg_(cfg), params_(std::move(params)) {
  for (const auto& p : params_) {
    exp_avg_.push_back(at::zeros_like(p.param, p.param.options().dtype(at::kFloat)));
    exp_avg_sq_.push_back(at::zeros_like(p.param, p.param.options().dtype(at::kFloat)));
  }
}

bool AdamW::can_fuse() const {
  // ATen's fused kernel takes float32 parameters (the masters of bf16-mixed, or float32 runs).
  if (!cfg_.fused) return false;
  for (const auto& p : params_)
    if (p.param.scalar_type() != at::kFloat) return false;
  return true;
}

void AdamW::step(double lr, const std::vector<at::Tensor>& grads, double grad_coef) {
  TORCH_INTERNAL_ASSERT(grads.size() == params_.size());
  at::NoGradGuard no_grad;
  ++steps_;
  // The update is elementwise: split every tensor (and its gradient and state) into its decay runs.
  struct Piece {
    at::Tensor p, g, m, v;
    bool decay;
  };
  std::vector<Piece> pieces;
  for (size_t i = 0; i < params_.size(); ++i) {
    const OptimizerParam& op = params_[i];
    if (op.runs.empty()) {
      pieces.push_back({op.param, grads[i], exp_avg_[i], exp_avg_sq_[i], op.decay});
      continue;
    }
    TORCH_INTERNAL_ASSERT(op.param.dim() == 1, "decay runs need a flat parameter: ", op.name);
    for (const DecayRun& r : op.runs)
      pieces.push_back({op.param.narrow(0, r.begin, r.length), grads[i].narrow(0, r.begin, r.length),
                        exp_avg_[i].narrow(0, r.begin, r.length), exp_avg_sq_[i].narrow(0, r.begin, r.length),
                        r.decay});
  }
  if (can_fuse()) {
    // The kernel divides each gradient by grad_scale and stores the quotient back, as a clip's mul_ would.
    const std::optional<at::Tensor> grad_scale =
        grad_coef == 1.0 ? std::nullopt
                         : std::optional<at::Tensor>(at::full({}, 1.0 / grad_coef, pieces.front().p.options()));
    for (const bool decay : {true, false}) {
      const double wd = decay ? cfg_.weight_decay : 0.0;
      std::vector<at::Tensor> ps, gs, ms, vs, steps;
      for (const Piece& pc : pieces) {
        if ((pc.decay && cfg_.weight_decay != 0) != decay) continue;
        ps.push_back(pc.p);
        gs.push_back(pc.g);
        ms.push_back(pc.m);
        vs.push_back(pc.v);
        // The kernel reads the step count, torch.optim increments it first.
        steps.push_back(at::full({}, static_cast<double>(steps_), pc.p.options()));
      }
      if (ps.empty()) continue;
      at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, cfg_.beta1, cfg_.beta2, wd, cfg_.eps, /*amsgrad=*/false,
                        /*maximize=*/false, grad_scale);
    }
    return;
  }
  const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(steps_));
  for (Piece& pc : pieces) {
    if (grad_coef != 1.0) pc.g.mul_(grad_coef);
    at::Tensor g = pc.g.to(at::kFloat);
    at::Tensor master = pc.p.scalar_type() == at::kFloat ? pc.p : pc.p.to(at::kFloat);
    // The order of operations of torch.optim.AdamW's single-tensor path.
    if (cfg_.weight_decay != 0 && pc.decay) master.mul_(1.0 - lr * cfg_.weight_decay);
    pc.m.lerp_(g, 1.0 - cfg_.beta1);
    pc.v.mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
    at::Tensor denom = (pc.v.sqrt() / std::sqrt(bc2)).add_(cfg_.eps);
    master.addcdiv_(pc.m, denom, -lr / bc1);
    if (!master.is_same(pc.p)) pc.p.copy_(master);
  }
}

std::map<std::string, at::Tensor> AdamW::state() const {
  std::map<std::string, at::Tensor> s;
  for (size_t i = 0; i < params_.size(); ++i) {
    s[params_[i].name + ".exp_avg"] = exp_avg_[i];
    s[params_[i].name + ".exp_avg_sq"] = exp_avg_sq_[i];
  }
  s["__step__"] = at::tensor({steps_}, at::kLong);
  return s;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& s, const std::string& source) {
  auto get = [&](const std::string& key, const at::Tensor& like) {
    auto it = s.find(key);
    CHATMILL_CHECK(it != s.end(), "optimizer state ", source, " has no tensor '", key,
                   "'; was it written by a run with another model or parallel layout?");
    CHATMILL_CHECK(it->second.sizes() == like.sizes(), "optimizer state ", source, ": '", key, "' has shape ",
                   it->second.sizes(), ", expected ", like.sizes());
    return it->second;
  };
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    exp_avg_[i].copy_(get(params_[i].name + ".exp_avg", exp_avg_[i]));
    exp_avg_sq_[i].copy_(get(params_[i].name + ".exp_avg_sq", exp_avg_sq_[i]));
  }
  steps_ = get("__step__", at::empty({1})).item<int64_t>();
}

int64_t AdamW::state_bytes() const {
  int64_t b = 0;
  for (size_t i = 0; i < params_.size(); ++i) b += (exp_avg_[i].numel() + exp_avg_sq_[i].numel()) * 4;
  return b;
}

}  // namespace chatmill::train
