#include "train/linear_cross_entropy.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "common/error.h"
#include "data/ignore_label.h"
#include "train/loss.h"
#ifdef CHATMILL_CUDA
#include "train/cuda/cross_entropy.h"
#endif

namespace chatmill::train {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LinearCrossEntropy : torch::autograd::Function<LinearCrossEntropy> {
  // hidden: (N, C); weight: (V, C); targets: (N) int64 (already shifted).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk, bool need_hidden, bool need_weight,
                            bool force_aten) {
    const int64_t N = hidden.size(0), C = hidden.size(1), V = weight.size(0);
    at::Tensor loss = at::zeros({}, hidden.options().dtype(at::kFloat));
    at::Tensor d_hidden = need_hidden ? at::empty({N, C}, hidden.options()) : at::Tensor();
    // Accumulated over chunks in float32 and rounded to the weight's dtype at the end (in bf16 each chunk's
    // product is rounded once before that: a few chunks, where HF's one GEMM rounds once).
    at::Tensor d_weight = need_weight ? at::zeros({V, C}, weight.options().dtype(at::kFloat)) : at::Tensor();
    for (int64_t start = 0; start < N; start += chunk) {
      const int64_t n = std::min(chunk, N - start);
      const at::Tensor h = hidden.narrow(0, start, n), t = targets.narrow(0, start, n);
      // The (n, V) logits in the hidden's dtype, then d loss / d logits in their place, rounded to that dtype
      // as HF's backward of `.float()` rounds it.
      const at::Tensor g = at::linear(h, weight);
      loss += cross_entropy_rows(g, t, need_hidden || need_weight, {force_aten}).sum();
      if (!need_hidden && !need_weight) continue;
      if (need_hidden) {
        at::Tensor rows = d_hidden.narrow(0, start, n);
        at::mm_out(rows, g, weight);
      }
      if (need_weight) {
        if (weight.scalar_type() == at::kFloat) d_weight.addmm_(g.t(), h);
        else d_weight.add_(at::mm(g.t(), h));
      }
    }
    ctx->save_for_backward({d_hidden, need_weight ? d_weight.to(weight.scalar_type()) : at::Tensor()});
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& go = grad[0];  // scalar: d final loss / d loss sum
    // go stays float32: a 0-dim operand takes part at float precision, so 1/tokens is not rounded to bf16 first.
    auto scaled = [&](const at::Tensor& d) { return d.defined() ? d * go : at::Tensor(); };
    return {scaled(saved[0]), scaled(saved[1]), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor cross_entropy_rows(const at::Tensor& logits, const at::Tensor& targets, bool grad,
                              [[maybe_unused]] model::fused::ForceReference ref) {
  CHATMILL_CHECK(logits.dim() == 2 && logits.is_contiguous() && logits.size(1) < (int64_t{1} << 31),
                 "cross_entropy_rows: logits must be a contiguous (n, V) tensor with V < 2^31, got sizes ",
                 logits.sizes(), " strides ", logits.strides(), "; pass .contiguous() logits");
  CHATMILL_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0) && targets.scalar_type() == at::kLong &&
                     targets.device() == logits.device(),
                 "cross_entropy_rows: targets must be (", logits.size(0), ") int64 on ", logits.device(), ", got ",
                 targets.sizes(), " ", targets.scalar_type(), " on ", targets.device());
#ifdef CHATMILL_CUDA
  if (model::fused::use_kernel(logits, ref)) {
    at::Tensor losses = at::empty({logits.size(0)}, logits.options().dtype(at::kFloat));
    cross_entropy_cuda::cross_entropy_rows(logits, targets.contiguous(), losses, grad);
    return losses;
  }
#endif
  // The reference ops: over a float32 copy of the logits (none when float32), rounded back once at the end.
  at::Tensor x = logits.to(at::kFloat);
  const at::Tensor valid = targets.ne(data::kIgnoreLabel);
  const at::Tensor index = at::where(valid, targets, at::zeros_like(targets)).unsqueeze(1);  // (n, 1)
  const at::Tensor lse = at::logsumexp(x, {1});
  at::Tensor losses = (lse - x.gather(1, index).squeeze(1)) * valid;
  if (!grad) return losses;
  x.sub_(lse.unsqueeze(1)).exp_();
  x.scatter_add_(1, index, at::full({x.size(0), 1}, -1.0, x.options()));
  x.mul_(valid.unsqueeze(1));
  if (!x.is_same(logits)) logits.copy_(x);
  return losses;
}

int64_t default_chunk_positions(int64_t vocab) { return std::max<int64_t>(1, (int64_t{64} << 20) / std::max<int64_t>(1, vocab)); }

at::Tensor linear_cross_entropy_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                    int64_t chunk_positions, model::fused::ForceReference ref) {
  CHATMILL_CHECK(hidden.dim() == 3 && weight.dim() == 2 && hidden.size(2) == weight.size(1),
                 "linear_cross_entropy_sum: hidden must be (B, T, C) and the head (V, C), got ", hidden.sizes(),
                 " and ", weight.sizes());
  CHATMILL_CHECK(labels.dim() == 2 && labels.size(0) == hidden.size(0) && labels.size(1) == hidden.size(1),
                 "linear_cross_entropy_sum: labels must be (B, T) = (", hidden.size(0), ", ", hidden.size(1),
                 "), got ", labels.sizes());
  CHATMILL_CHECK(hidden.scalar_type() == weight.scalar_type(), "linear_cross_entropy_sum: hidden is ",
                 hidden.scalar_type(), " but the head is ", weight.scalar_type());
  const int64_t C = hidden.size(2);
  const int64_t chunk = chunk_positions > 0 ? chunk_positions : default_chunk_positions(weight.size(0));
  const bool grad = at::GradMode::is_enabled();
  at::Tensor targets = shift_labels(labels).reshape({-1}).to(at::kLong);
  return LinearCrossEntropy::apply(hidden.reshape({-1, C}), weight, targets, chunk, grad && hidden.requires_grad(),
                                   grad && weight.requires_grad(), ref.on);
}

}  // namespace chatmill::train
