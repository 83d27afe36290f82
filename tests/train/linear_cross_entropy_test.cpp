// The chunked LM head + loss (train/linear_cross_entropy.h) against the unfused head and HF-order loss
// (at::linear, then token_loss_sum) under autograd: loss and the gradients of the hidden states and the head,
// over chunk sizes from one position to the whole batch, with ignored labels.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/test_env.h"
#include "train/linear_cross_entropy.h"
#include "train/loss.h"

namespace chatmill {
namespace {

using testing::max_abs_diff;

struct Case {
  at::Tensor hidden, weight, labels;
};

Case make_case(at::ScalarType dtype) {
  at::manual_seed(11);
  const int64_t B = 3, T = 10, C = 24, V = 57;
  at::Tensor labels = at::randint(0, V, {B, T}, at::kLong);
  labels.index_put_({0, at::indexing::Slice(0, 4)}, -100);  // a masked prompt
  labels.index_put_({2, at::indexing::Slice(6, T)}, -100);  // padding at the end
  return {at::randn({B, T, C}).to(dtype), (at::randn({V, C}) * 0.3).to(dtype), labels};
}

TEST(LinearCrossEntropy, EqualsTheHeadThenTheLossForEveryChunkSize) {
  Case c = make_case(at::kFloat);
  at::Tensor h = c.hidden.clone().requires_grad_(true), w = c.weight.clone().requires_grad_(true);
  at::Tensor want = train::token_loss_sum(at::linear(h, w), c.labels);
  auto want_g = torch::autograd::grad({want * 0.37}, {h, w});
  for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{30}, int64_t{0}}) {
    at::Tensor hh = c.hidden.clone().requires_grad_(true), ww = c.weight.clone().requires_grad_(true);
    at::Tensor got = train::linear_cross_entropy_sum(hh, ww, c.labels, chunk);
    auto got_g = torch::autograd::grad({got * 0.37}, {hh, ww});
    EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-4) << "chunk " << chunk;
    EXPECT_LE(max_abs_diff(got_g[0], want_g[0]), 1e-6) << "hidden, chunk " << chunk;
    EXPECT_LE(max_abs_diff(got_g[1], want_g[1]), 1e-6) << "head, chunk " << chunk;
  }
}

TEST(LinearCrossEntropy, Bf16FollowsTheUnfusedLossWithinItsRounding) {
  Case c = make_case(at::kBFloat16);
  at::Tensor h = c.hidden.clone().requires_grad_(true), w = c.weight.clone().requires_grad_(true);
  at::Tensor want = train::token_loss_sum(at::linear(h, w), c.labels);
  auto want_g = torch::autograd::grad({want}, {h, w});
  at::Tensor hh = c.hidden.clone().requires_grad_(true), ww = c.weight.clone().requires_grad_(true);
  at::Tensor got = train::linear_cross_entropy_sum(hh, ww, c.labels, 4);
  auto got_g = torch::autograd::grad({got}, {hh, ww});
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-3 * std::abs(want.item<double>()));
  for (int i = 0; i < 2; ++i) {
    const double scale = want_g[i].to(at::kFloat).abs().max().item<double>();
    EXPECT_LE(max_abs_diff(got_g[i], want_g[i]), 2.0 / 128 * scale) << i;  // bf16 roundings of the sums
  }
}

// The loss is divided by the trained tokens: bf16 gradients take that scale at float precision, unbiased (a
// factor rounded to bf16 first would scale every gradient by the same error, up to 0.4%; 1/7 by -0.2%).
TEST(LinearCrossEntropy, Bf16GradientsTakeTheLossScaleUnrounded) {
  Case c = make_case(at::kBFloat16);
  at::Tensor h = c.hidden.clone().requires_grad_(true), w = c.weight.clone().requires_grad_(true);
  auto g1 = torch::autograd::grad({train::linear_cross_entropy_sum(h, w, c.labels, 4)}, {h, w});
  auto g7 = torch::autograd::grad({train::linear_cross_entropy_sum(h, w, c.labels, 4) / 7.0}, {h, w});
  for (int i = 0; i < 2; ++i) {
    const double ratio = (g7[i].to(at::kFloat) * 7).abs().sum().item<double>() / g1[i].to(at::kFloat).abs().sum().item<double>();
    EXPECT_NEAR(ratio, 1.0, 5e-4) << (i == 0 ? "hidden" : "head");
  }
}

TEST(LinearCrossEntropy, WithoutGradModeComputesTheLossOnly) {
  Case c = make_case(at::kFloat);
  at::Tensor want = train::token_loss_sum(at::linear(c.hidden, c.weight), c.labels);
  at::NoGradGuard no_grad;
  at::Tensor got = train::linear_cross_entropy_sum(c.hidden.requires_grad_(true), c.weight, c.labels, 8);
  EXPECT_FALSE(got.requires_grad());
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-4);
}

TEST(LinearCrossEntropy, RejectsMismatchedShapesAndDtypes) {
  Case c = make_case(at::kFloat);
  testing::expect_error([&] { train::linear_cross_entropy_sum(c.hidden, c.weight.narrow(1, 0, 5), c.labels); },
                        {"hidden must be (B, T, C) and the head (V, C)", "[57, 5]"});
  testing::expect_error([&] { train::linear_cross_entropy_sum(c.hidden, c.weight, c.labels.narrow(1, 0, 3)); },
                        {"labels must be (B, T) = (3, 10)"});
  testing::expect_error([&] { train::linear_cross_entropy_sum(c.hidden, c.weight.to(at::kDouble), c.labels); },
                        {"hidden is Float but the head is Double"});
}

TEST(LinearCrossEntropy, DefaultChunksHoldAbout64MLogits) {
  EXPECT_EQ(train::default_chunk_positions(32000), 2097);
  EXPECT_EQ(train::default_chunk_positions(1LL << 30), 1);
}

}  // namespace
}  // namespace chatmill
