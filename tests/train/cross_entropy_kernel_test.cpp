// The fused cross-entropy kernel (train/cuda/cross_entropy_kernels.cuh) against the reference ATen ops of
// train::cross_entropy_rows on the same logits: run on the CPU under the emulator of tests/common/cuda_emu.h
// (EmulatedKernels.*), and on CUDA (GpuCrossEntropy.*, skipped without a GPU and a -DCHATMILL_CUDA=ON build),
// where linear_cross_entropy_sum with the kernel is also checked against its ATen path and the CPU.
//
// Tolerances: both compute each element with the same float32 operations, but sum the exponentials in another
// order, so lse differs by a few float32 ulps. Losses: 2e-6 of max(1, |lse|). Gradient elements: one rounding
// step of the dtype (float32: 1e-5 relative) plus 2e-6 absolute (the float32 softmax of an lse a few ulps off).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/test_env.h"
#include "data/ignore_label.h"
#include "model/fused_ops.h"
#include "train/linear_cross_entropy.h"
// After every ATen header: the emulator defines CUDA's keywords as macros.
#include "common/cuda_emu.h"
#include "train/cuda/cross_entropy_kernels.cuh"

namespace chatmill {
namespace {

namespace emu = testing::cuda_emu;
using testing::kernel_tolerance;
using testing::max_abs_diff;

// n rows of logits: row r scaled and shifted differently (spreads and maxima from row to row), in a buffer that
// starts `offset` elements past an aligned allocation (rows unaligned for 16-byte loads). Targets: random, with
// columns 0 and V - 1 and two ignored rows.
struct Rows {
  at::Tensor logits, targets;
};

Rows make_rows(int64_t n, int64_t V, at::ScalarType dtype, int64_t offset = 0, at::Device device = at::kCPU) {
  at::Tensor scale = at::linspace(0.5, 4.0, n).unsqueeze(1), shift = at::linspace(-30.0, 20.0, n).unsqueeze(1);
  at::Tensor data = (at::randn({n, V}) * scale + shift).to(dtype);
  at::Tensor logits = at::empty({n * V + offset}, data.options().device(device)).narrow(0, offset, n * V).view({n, V});
  logits.copy_(data);
  at::Tensor t = at::randint(0, V, {n}, at::kLong);
  t[0] = 0;
  t[1] = V - 1;
  t[2] = data::kIgnoreLabel;
  t[n - 1] = data::kIgnoreLabel;
  return {logits, t.to(device)};
}

// The largest gradient difference in units of its bound, and the largest loss difference in units of its
// bound (tolerances in the file comment); both <= 1 where the kernel agrees with the reference.
struct Agreement {
  double loss = 0, grad = 0, loss_abs = 0, grad_abs = 0;
};

Agreement agreement(const at::Tensor& losses, const at::Tensor& want_losses, const at::Tensor& g, const at::Tensor& want_g,
                    const at::Tensor& logits) {
  Agreement a;
  const at::Tensor lse = at::logsumexp(logits.to(at::kDouble).cpu(), {1});
  const at::Tensor loss_err = (losses.cpu().to(at::kDouble) - want_losses.cpu().to(at::kDouble)).abs();
  a.loss = (loss_err / (2e-6 * lse.abs().clamp_min(1.0))).max().item<double>();
  a.loss_abs = loss_err.max().item<double>();
  const at::Tensor w = want_g.cpu().to(at::kDouble), err = (g.cpu().to(at::kDouble) - w).abs();
  a.grad = (err / (kernel_tolerance(want_g.scalar_type(), 1) * w.abs() + 2e-6)).max().item<double>();
  a.grad_abs = err.max().item<double>();
  return a;
}

// The kernel (`kernel`: the emulated launch, or train::cross_entropy_rows on CUDA) and the reference ops on
// copies of rows; returns how far apart they are, and checks the loss-only launch leaves the logits alone.
template <class Kernel>
Agreement compare(const Rows& rows, const Kernel& kernel, const std::string& where) {
  const at::Tensor input = rows.logits.clone();
  at::Tensor g = rows.logits, want_g = rows.logits.clone();
  const at::Tensor want = train::cross_entropy_rows(want_g, rows.targets, true, {true});
  // On the same buffer (its alignment picks the order of the sums): first the losses alone, then the gradient.
  const at::Tensor losses_only = kernel(g, false);
  EXPECT_TRUE(g.equal(input)) << where << ": the loss-only launch wrote the logits";
  const at::Tensor losses = kernel(g, true);
  EXPECT_TRUE(losses_only.equal(losses)) << where << ": the loss-only launch's losses differ";
  const Agreement a = agreement(losses, want, g, want_g, input);
  EXPECT_LE(a.loss, 1.0) << where << ": max |loss - reference| " << a.loss_abs;
  EXPECT_LE(a.grad, 1.0) << where << ": max |gradient - reference| " << a.grad_abs;
  return a;
}

const std::vector<at::ScalarType> kTypes = {at::kFloat, at::kBFloat16, at::kHalf};

TEST(EmulatedKernels, CrossEntropyRowsEqualTheReferenceOps) {
  auto emulated = [](const at::Tensor& targets) {
    return [targets](at::Tensor& x, bool grad) {
      at::Tensor losses = at::empty({x.size(0)}, at::kFloat);
      train::cross_entropy_cuda::cross_entropy_rows(emu::Launcher{}, x, targets, losses, grad);
      return losses;
    };
  };
  for (at::ScalarType dtype : kTypes) {
    Agreement worst;
    // V: under one 16-byte group, whole groups, and not a multiple of the vector width (rows unaligned); the
    // buffer offset by one element makes every row start unaligned.
    for (int64_t V : {5, 64, 1003, 4099})
      for (int64_t offset : {0, 1}) {
        at::manual_seed(21);
        Rows rows = make_rows(7, V, dtype, offset);
        const std::string where = c10::str(dtype, " V ", V, " offset ", offset);
        const Agreement a = compare(rows, emulated(rows.targets), where);
        worst = {std::max(worst.loss, a.loss), std::max(worst.grad, a.grad), std::max(worst.loss_abs, a.loss_abs),
                 std::max(worst.grad_abs, a.grad_abs)};
      }
    std::cout << "  " << dtype << ": max |loss diff| " << worst.loss_abs << " (" << worst.loss
              << " of the bound), max |gradient diff| " << worst.grad_abs << " (" << worst.grad << " of the bound)\n";
  }
}

TEST(EmulatedKernels, CrossEntropyRowsMarkOutOfRangeTargetsNaN) {
  at::Tensor logits = at::randn({3, 40}), targets = at::tensor({int64_t{40}, int64_t{-1}, int64_t{data::kIgnoreLabel}});
  at::Tensor losses = at::empty({3});
  train::cross_entropy_cuda::cross_entropy_rows(emu::Launcher{}, logits, targets, losses, true);
  EXPECT_TRUE(std::isnan(losses[0].item<float>()) && std::isnan(losses[1].item<float>())) << losses;
  EXPECT_EQ(losses[2].item<float>(), 0.f);
  EXPECT_TRUE(logits.narrow(0, 0, 2).isnan().all().item<bool>());
  EXPECT_EQ(logits[2].abs().max().item<float>(), 0.f);
}

TEST(CrossEntropyRows, RejectsBadShapes) {
  at::Tensor logits = at::randn({4, 10}), targets = at::zeros({4}, at::kLong);
  testing::expect_error([&] { train::cross_entropy_rows(logits.t(), targets, true); },
                        {"logits must be a contiguous (n, V) tensor", "pass .contiguous() logits"});
  testing::expect_error([&] { train::cross_entropy_rows(logits, targets.to(at::kInt), true); },
                        {"targets must be (4) int64", "Int"});
}

// ---- GPU ------------------------------------------------------------------------------------------------

#define REQUIRE_CUDA_KERNELS()                                                                                \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine"; \
  if (!model::fused::kernels_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON"

TEST(GpuCrossEntropy, KernelEqualsTheReferenceOpsOnCuda) {
  REQUIRE_CUDA_KERNELS();
  auto on_cuda = [](const at::Tensor& targets) {
    return [targets](at::Tensor& x, bool grad) { return train::cross_entropy_rows(x, targets, grad); };
  };
  for (at::ScalarType dtype : kTypes)
    for (int64_t V : {1003, 32000})
      for (int64_t offset : {0, 1}) {
        at::manual_seed(22);
        Rows rows = make_rows(300, V, dtype, offset, at::kCUDA);
        const std::string where = c10::str(dtype, " V ", V, " offset ", offset);
        const Agreement a = compare(rows, on_cuda(rows.targets), where);
        std::cout << "  " << where << ": max |loss diff| " << a.loss_abs << ", max |gradient diff| " << a.grad_abs
                  << "\n";
      }
}

// linear_cross_entropy_sum in bf16 on CUDA with the kernel, against its ATen path on CUDA (the same GEMMs: the
// gradients differ by a rounding of g at most) and against the CPU (other GEMMs: as the bf16 test of
// linear_cross_entropy_test.cpp).
TEST(GpuCrossEntropy, LinearCrossEntropyOnCudaEqualsTheReferencePath) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(23);
  const int64_t B = 4, T = 96, C = 256, V = 32000;
  const at::Tensor hidden = at::randn({B, T, C}).to(at::kBFloat16), weight = (at::randn({V, C}) * 0.05).to(at::kBFloat16);
  at::Tensor labels = at::randint(0, V, {B, T}, at::kLong);
  labels.narrow(1, 0, 10).fill_(data::kIgnoreLabel);
  auto run = [&](at::Device device, model::fused::ForceReference ref) {
    at::Tensor h = hidden.to(device).requires_grad_(true), w = weight.to(device).requires_grad_(true);
    at::Tensor loss = train::linear_cross_entropy_sum(h, w, labels.to(device), 100, ref);
    auto g = torch::autograd::grad({loss}, {h, w});
    return std::vector<at::Tensor>{loss.cpu(), g[0].cpu(), g[1].cpu()};
  };
  const auto got = run(at::kCUDA, {}), aten = run(at::kCUDA, {true}), cpu = run(at::kCPU, {});
  // The loss: float32 sums only against the ATen path; against the CPU, bf16 logits an ulp apart.
  for (const auto& [want, name, loss_tol, ulps] :
       {std::tuple{aten, "cuda aten", 1e-5, 1.0}, std::tuple{cpu, "cpu", 1e-3, 2.0}}) {
    const double loss = got[0].item<double>(), want_loss = want[0].item<double>();
    std::cout << "  vs " << name << ": loss " << loss << " / " << want_loss;
    EXPECT_NEAR(loss, want_loss, loss_tol * std::abs(want_loss)) << name;
    for (int i = 1; i < 3; ++i) {
      const double scale = want[i].to(at::kFloat).abs().max().item<double>(), diff = max_abs_diff(got[i], want[i]);
      std::cout << ", " << (i == 1 ? "hidden" : "head") << " grad max diff " << diff << " (max " << scale << ")";
      EXPECT_LE(diff, kernel_tolerance(at::kBFloat16, ulps) * scale) << name << (i == 1 ? " hidden" : " head");
    }
    std::cout << "\n";
  }
}

}  // namespace
}  // namespace chatmill
