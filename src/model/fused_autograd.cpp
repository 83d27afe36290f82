#include "model/fused_autograd.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <numeric>

#include "common/error.h"
#include "model/rope.h"
#ifdef CHATMILL_CUDA
#include "model/cuda/autograd_kernels.h"
#endif

namespace chatmill::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// x: (B, T, h, D) in the projections' layout; cos, sin: (B, T, D). The model's rotary on the (B, h, T, D)
// view; `inverse` rotates with -sin.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool inverse) {
  return apply_rotary(x.transpose(1, 2), {cos, inverse ? -sin : sin}).transpose(1, 2);
}

struct QkvRotaryFunction : torch::autograd::Function<QkvRotaryFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& qkv, const at::Tensor& cos,
                               const at::Tensor& sin, int64_t H, int64_t Hkv, bool force_aten) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["H"] = H;
    ctx->saved_data["Hkv"] = Hkv;
    ctx->saved_data["aten"] = force_aten;
    const int64_t B = qkv.size(0), T = qkv.size(1), D = cos.size(2);
#ifdef CHATMILL_CUDA
    if (fused::use_kernel(qkv, {force_aten})) {
      at::Tensor q = at::empty({B, T, H, D}, qkv.options()), k = at::empty({B, T, Hkv, D}, qkv.options()),
                 v = at::empty({B, T, Hkv, D}, qkv.options());
      autograd_cuda::qkv_rotary_forward(qkv.contiguous(), cos.contiguous(), sin.contiguous(), q.view({B * T, H, D}),
                                        k.view({B * T, Hkv, D}), v.view({B * T, Hkv, D}));
      return {q, k, v};
    }
#endif
    at::Tensor heads = qkv.view({B, T, H + 2 * Hkv, D});
    return {rotate(heads.narrow(2, 0, H), cos, sin, false).contiguous(),
            rotate(heads.narrow(2, H, Hkv), cos, sin, false).contiguous(), heads.narrow(2, H + Hkv, Hkv).contiguous()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto t = ctx->get_saved_variables();
    const at::Tensor &cos = t[0], &sin = t[1];
    const int64_t H = ctx->saved_data["H"].toInt(), Hkv = ctx->saved_data["Hkv"].toInt();
    const int64_t B = cos.size(0), T = cos.size(1), D = cos.size(2);
    const int64_t sizes[3] = {H, Hkv, Hkv};
    for (int i = 0; i < 3; ++i)  // an output nobody used has no gradient
      grad[i] = grad[i].defined() ? grad[i].contiguous() : at::zeros({B, T, sizes[i], D}, cos.options());
#ifdef CHATMILL_CUDA
    if (fused::use_kernel(cos, {ctx->saved_data["aten"].toBool()})) {
      at::Tensor d_qkv = at::empty({B, T, (H + 2 * Hkv) * D}, cos.options());
      autograd_cuda::qkv_rotary_backward(grad[0].view({B * T, H, D}), grad[1].view({B * T, Hkv, D}),
                                         grad[2].view({B * T, Hkv, D}), cos.contiguous(), sin.contiguous(),
                                         d_qkv.view({B * T, -1}));
      return {d_qkv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
#endif
    at::Tensor d_qkv = at::cat({rotate(grad[0], cos, sin, true), rotate(grad[1], cos, sin, true), grad[2]}, 2);
    return {d_qkv.view({B, T, -1}), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct SwigluFunction : torch::autograd::Function<SwigluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_up, bool force_aten) {
    ctx->save_for_backward({gate_up});
    ctx->saved_data["aten"] = force_aten;
    const int64_t F = gate_up.size(-1) / 2;
#ifdef CHATMILL_CUDA
    if (fused::use_kernel(gate_up, {force_aten})) {
      std::vector<int64_t> shape = gate_up.sizes().vec();
      shape.back() = F;
      at::Tensor out = at::empty(shape, gate_up.options());
      autograd_cuda::swiglu_forward(gate_up.contiguous(), out);
      return out;
    }
#endif
    return at::silu(gate_up.narrow(-1, 0, F)) * gate_up.narrow(-1, F, F);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const at::Tensor gate_up = ctx->get_saved_variables()[0];
    const at::Tensor dy = grad[0].contiguous();
#ifdef CHATMILL_CUDA
    if (fused::use_kernel(gate_up, {ctx->saved_data["aten"].toBool()})) {
      at::Tensor d = at::empty_like(gate_up, at::MemoryFormat::Contiguous);
      autograd_cuda::swiglu_backward(gate_up.contiguous(), dy, d);
      return {d, at::Tensor()};
    }
#endif
    // float32 throughout, rounded once: what the kernel computes.
    const int64_t F = gate_up.size(-1) / 2;
    at::Tensor g = gate_up.narrow(-1, 0, F).to(at::kFloat), u = gate_up.narrow(-1, F, F).to(at::kFloat);
    at::Tensor d = dy.to(at::kFloat), s = at::sigmoid(g);
    return {at::cat({d * u * s * (1 + g * (1 - s)), d * g * s}, -1).to(gate_up.scalar_type()), at::Tensor()};
  }
};

struct StackRowsFunction : torch::autograd::Function<StackRowsFunction> {
  static at::Tensor forward(AutogradContext* ctx, at::TensorList parts, at::ScalarType dtype) {
    std::vector<int64_t> rows;
    for (const at::Tensor& p : parts) rows.push_back(p.size(0));
    ctx->saved_data["rows"] = rows;
    at::Tensor out = at::empty({std::accumulate(rows.begin(), rows.end(), int64_t{0}), parts[0].size(1)},
                               parts[0].options().dtype(dtype));
    int64_t at_row = 0;
    for (const at::Tensor& p : parts) {
      out.narrow(0, at_row, p.size(0)).copy_(p);  // converts while it copies
      at_row += p.size(0);
    }
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    variable_list out;
    int64_t at_row = 0;
    for (int64_t r : ctx->saved_data["rows"].toIntVector()) {
      out.push_back(grad[0].narrow(0, at_row, r));  // autograd converts it to the part's dtype
      at_row += r;
    }
    out.push_back(at::Tensor());
    return out;
  }
};

}  // namespace

at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return at::rms_norm(x, {x.size(-1)}, weight, eps);
}

QkvHeads qkv_rotary_fused(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, int64_t heads,
                          int64_t kv_heads, fused::ForceReference aten) {
  CHATMILL_CHECK(cos.dim() == 3 && cos.size(2) % 2 == 0, "qkv_rotary_fused: the tables must be (B, T, D) with D even, got ",
                 cos.sizes());
  const int64_t B = cos.size(0), T = cos.size(1), D = cos.size(2);
  CHATMILL_CHECK(qkv.dim() == 3 && qkv.size(0) == B && qkv.size(1) == T && qkv.size(2) == (heads + 2 * kv_heads) * D,
                 "qkv_rotary_fused: qkv must be (", B, ", ", T, ", ", (heads + 2 * kv_heads) * D, ") for ", heads,
                 " heads and ", kv_heads, " kv heads of ", D, ", got ", qkv.sizes());
  for (const at::Tensor* t : {&cos, &sin})
    CHATMILL_CHECK(t->sizes() == cos.sizes() && t->scalar_type() == qkv.scalar_type() && t->device() == qkv.device(),
                   "qkv_rotary_fused: the tables must be (", B, ", ", T, ", ", D, ") ", qkv.scalar_type(), " on ",
                   qkv.device(), " like qkv, got ", t->sizes(), " ", t->scalar_type(), " on ", t->device());
  auto out = QkvRotaryFunction::apply(qkv, cos, sin, heads, kv_heads, aten.on);
  return {out[0], out[1], out[2]};
}

at::Tensor swiglu_fused(const at::Tensor& gate_up, fused::ForceReference aten) {
  CHATMILL_CHECK(gate_up.dim() >= 1 && gate_up.size(-1) % 2 == 0,
                 "swiglu_fused: gate_up must end in an even dimension (gate then up), got ", gate_up.sizes());
  return SwigluFunction::apply(gate_up, aten.on);
}

at::Tensor stack_rows(at::TensorList parts, at::ScalarType dtype) {
  CHATMILL_CHECK(!parts.empty(), "stack_rows: no parts given");
  for (const at::Tensor& p : parts)
    CHATMILL_CHECK(p.dim() == 2 && parts[0].dim() == 2 && p.size(1) == parts[0].size(1),
                   "stack_rows: parts must be matrices with equal column counts, got ", parts[0].sizes(), " and ",
                   p.sizes());
  return StackRowsFunction::apply(parts, dtype);
}

}  // namespace chatmill::model
