#include "model/fused_autograd.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common/error.h"
#ifdef CHATMILL_CUDA
#include "model/cuda/autograd_kernels.h"
#endif

namespace chatmill::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

[[maybe_unused]] bool use_kernel(const at::Tensor& t, bool force_aten) {
#ifdef CHATMILL_CUDA
  return t.is_cuda() && !force_aten;
#else
  (void)t;
  (void)force_aten;
  return false;
#endif
}

// x: (B, T, H, D); cos, sin: (B, T, D). HF's rotate_half formula with the tables' sign flipped by `sign`.
at::Tensor rotary_op(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, float sign, bool force_aten) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
#ifdef CHATMILL_CUDA
  if (use_kernel(x, force_aten)) {
    at::Tensor out = at::empty({B, T, H, D}, x.options());
    autograd_cuda::rotary(x.contiguous().view({B * T, H, D}), cos.contiguous(), sin.contiguous(), sign,
                          out.view({B * T, H, D}));
    return out;
  }
#endif
  const int64_t half = D / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  at::Tensor s = sign > 0 ? sin : -sin;
  return (x * cos.unsqueeze(2) + rotated * s.unsqueeze(2)).contiguous();
}

struct RotaryFunction : torch::autograd::Function<RotaryFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            bool force_aten) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["aten"] = force_aten;
    return rotary_op(x, cos, sin, 1.f, force_aten);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto t = ctx->get_saved_variables();
    return {rotary_op(grad[0], t[0], t[1], -1.f, ctx->saved_data["aten"].toBool()), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

struct SwigluFunction : torch::autograd::Function<SwigluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up, bool force_aten) {
    ctx->save_for_backward({gate, up});
    ctx->saved_data["aten"] = force_aten;
#ifdef CHATMILL_CUDA
    if (use_kernel(gate, force_aten)) {
      at::Tensor out = at::empty_like(gate, at::MemoryFormat::Contiguous);
      autograd_cuda::swiglu_forward(gate.contiguous(), up.contiguous(), out);
      return out;
    }
#endif
    return at::silu(gate) * up;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto t = ctx->get_saved_variables();
    const at::Tensor &gate = t[0], &up = t[1];
    at::Tensor dy = grad[0].contiguous();
#ifdef CHATMILL_CUDA
    if (use_kernel(gate, ctx->saved_data["aten"].toBool())) {
      at::Tensor d_gate = at::empty_like(gate, at::MemoryFormat::Contiguous);
      at::Tensor d_up = at::empty_like(up, at::MemoryFormat::Contiguous);
      autograd_cuda::swiglu_backward(gate.contiguous(), up.contiguous(), dy, d_gate, d_up);
      return {d_gate, d_up, at::Tensor()};
    }
#endif
    // float32 throughout, rounded once: what the kernel computes.
    at::Tensor g = gate.to(at::kFloat), u = up.to(at::kFloat), d = dy.to(at::kFloat);
    at::Tensor s = at::sigmoid(g);
    at::Tensor d_up = (d * g * s).to(up.scalar_type());
    at::Tensor d_gate = (d * u * s * (1 + g * (1 - s))).to(gate.scalar_type());
    return {d_gate, d_up, at::Tensor()};
  }
};

}  // namespace

at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return at::rms_norm(x, {x.size(-1)}, weight, eps);
}

at::Tensor rotary_fused(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, ForceAtenOps aten) {
  CHATMILL_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rotary_fused: x must be (B, T, H, D) with D even, got ",
                 x.sizes());
  const int64_t B = x.size(0), T = x.size(1), D = x.size(3);
  for (const at::Tensor* t : {&cos, &sin})
    CHATMILL_CHECK(t->dim() == 3 && t->size(0) == B && t->size(1) == T && t->size(2) == D &&
                       t->scalar_type() == x.scalar_type() && t->device() == x.device(),
                   "rotary_fused: the tables must be (", B, ", ", T, ", ", D, ") ", x.scalar_type(), " on ",
                   x.device(), " like x, got ", t->sizes(), " ", t->scalar_type(), " on ", t->device());
  return RotaryFunction::apply(x, cos, sin, aten.on);
}

at::Tensor swiglu_fused(const at::Tensor& gate, const at::Tensor& up, ForceAtenOps aten) {
  CHATMILL_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type() && gate.device() == up.device(),
                 "swiglu_fused: gate and up must match, got ", gate.sizes(), " ", gate.scalar_type(), " and ",
                 up.sizes(), " ", up.scalar_type());
  return SwigluFunction::apply(gate, up, aten.on);
}

}  // namespace chatmill::model
