#include "train/linear_cross_entropy.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "common/error.h"
#include "data/ignore_label.h"
#include "train/loss.h"

namespace chatmill::train {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LinearCrossEntropy : torch::autograd::Function<LinearCrossEntropy> {
  // hidden: (N, C); weight: (V, C); targets: (N) int64 (already shifted).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk, bool need_hidden, bool need_weight) {
    const int64_t N = hidden.size(0), C = hidden.size(1), V = weight.size(0);
    at::Tensor loss = at::zeros({}, hidden.options().dtype(at::kFloat));
    at::Tensor d_hidden = need_hidden ? at::empty({N, C}, hidden.options()) : at::Tensor();
    // Accumulated over chunks in float32 and rounded to the weight's dtype at the end (in bf16 each chunk's
    // product is rounded once before that: a few chunks, where HF's one GEMM rounds once).
    at::Tensor d_weight = need_weight ? at::zeros({V, C}, weight.options().dtype(at::kFloat)) : at::Tensor();
    for (int64_t start = 0; start < N; start += chunk) {
      const int64_t n = std::min(chunk, N - start);
      const at::Tensor h = hidden.narrow(0, start, n), t = targets.narrow(0, start, n);
      at::Tensor logits = at::linear(h, weight).to(at::kFloat);  // (n, V)
      const at::Tensor valid = t.ne(data::kIgnoreLabel);                      // (n)
      const at::Tensor index = at::where(valid, t, at::zeros_like(t)).unsqueeze(1);  // (n, 1)
      const at::Tensor lse = at::logsumexp(logits, {1});           // (n)
      loss += ((lse - logits.gather(1, index).squeeze(1)) * valid).sum();
      if (!need_hidden && !need_weight) continue;
      // d loss / d logits = softmax - one_hot(target), zero on ignored positions; in place over the logits.
      logits.sub_(lse.unsqueeze(1)).exp_();
      logits.scatter_add_(1, index, at::full({n, 1}, -1.0, logits.options()));
      logits.mul_(valid.unsqueeze(1));
      const at::Tensor g = logits.to(hidden.scalar_type());  // (n, V), as HF's backward of `.float()`
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
    return {scaled(saved[0]), scaled(saved[1]), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

int64_t default_chunk_positions(int64_t vocab) { return std::max<int64_t>(1, (int64_t{64} << 20) / std::max<int64_t>(1, vocab)); }

at::Tensor linear_cross_entropy_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                    int64_t chunk_positions) {
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
                                   grad && weight.requires_grad());
}

}  // namespace chatmill::train
