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
  // ATen's fused kernel takes one weight decay for all tensors and float32 parameters.
  if (!cfg_.fused) return false;
  for (const auto& p : params_) {
    if (p.param.scalar_type() != at::kFloat) return false;
    if (cfg_.weight_decay != 0 && (p.decay_mask.defined() || !p.decay)) return false;
  }
  return true;
}

void AdamW::step(double lr, const std::vector<at::Tensor>& grads) {
  TORCH_INTERNAL_ASSERT(grads.size() == params_.size());
  at::NoGradGuard no_grad;
  ++steps_;
  if (can_fuse()) {
    std::vector<at::Tensor> ps, gs, steps;
    for (size_t i = 0; i < params_.size(); ++i) {
      ps.push_back(params_[i].param);
      gs.push_back(grads[i]);
      steps.push_back(at::full({}, static_cast<double>(steps_), params_[i].param.options()));
    }
    at::_fused_adamw_(ps, gs, exp_avg_, exp_avg_sq_, {}, steps, lr, cfg_.beta1, cfg_.beta2, cfg_.weight_decay,
                      cfg_.eps, /*amsgrad=*/false, /*maximize=*/false);
    return;
  }
  const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(steps_));
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor p = params_[i].param;
    at::Tensor g = grads[i].to(at::kFloat);
    at::Tensor master = p.scalar_type() == at::kFloat ? p : p.to(at::kFloat);
    // The order of operations of torch.optim.AdamW's single-tensor path.
    if (cfg_.weight_decay != 0) {
      if (params_[i].decay_mask.defined()) master.mul_(params_[i].decay_mask * (-lr * cfg_.weight_decay) + 1.0);
      else if (params_[i].decay) master.mul_(1.0 - lr * cfg_.weight_decay);
    }
    exp_avg_[i].lerp_(g, 1.0 - cfg_.beta1);
    exp_avg_sq_[i].mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
    at::Tensor denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bc2)).add_(cfg_.eps);
    master.addcdiv_(exp_avg_[i], denom, -lr / bc1);
    if (!master.is_same(p)) p.copy_(master);
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
