// The tile GEMM's ops (model/fused_ops.h: LaunchOptions::tile_gemm, residual_add_linear, TileNormedInput) and
// its decode step. CPU: what the ops dispatch to off the GPU, the sums of squares element by element, and bad
// arguments. GPU (scripts/gpu_check.sh, in a process of its own): the kernels against the reference on the same
// tensors, and the step against the full forward of each sequence. The emulator runs the kernels on the CPU in
// tile_kernels_emu_test.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common/test_env.h"
#include "model/fused_decode.h"
#include "model/fused_ops.h"
#include "model/fused_step_check.h"
#include "model/rms_norm.h"
#include "model/rope.h"

namespace chatmill {
namespace {

using model::fused::ForceReference;
using testing::expect_step_near_full_forward;
using testing::kernel_tolerance;
using testing::rel_diff;
using testing::small_config;

// The tile GEMM's ops (model/fused_ops.h) off the GPU: they dispatch to the compositions they stand for (so
// most comparisons here check dispatch; the kernels' own are the emulator's and the GPU's), the sums of squares
// are checked element by element, and bad arguments are refused with messages.
TEST(FusedOps, TileOpsAreTheUnfoldedCompositionOffTheGpu) {
  at::manual_seed(3);
  const int64_t M = 5, H = 4, Hkv = 2, D = 8, C = H * D, S = 6;
  at::Tensor x = at::randn({M, C}, at::kBFloat16), wq = at::randn({H * D, C}, at::kBFloat16),
             wk = at::randn({Hkv * D, C}, at::kBFloat16), wv = at::randn({Hkv * D, C}, at::kBFloat16);
  model::fused::LaunchOptions tiled;
  tiled.tile_gemm = true;
  EXPECT_FALSE(model::fused::tile_applies(x, {wq, wk, wv}, {}, tiled)) << "no CUDA kernels for CPU tensors";
  at::Tensor positions = at::tensor(std::vector<int64_t>{4, 0, 9, 2, 7}, at::kLong);
  at::Tensor columns = at::tensor(std::vector<int64_t>{1, 0, 5, 2, 3}, at::kLong);
  model::RotaryEmbedding rope(D, 10000, at::kCPU);
  at::Tensor kc = at::randn({M, Hkv, S, D}, at::kBFloat16), vc = at::randn({M, Hkv, S, D}, at::kBFloat16);
  at::Tensor kc_ref = kc.clone(), vc_ref = vc.clone();
  at::Tensor q = model::fused::qkv_rope_append(x, wq, wk, wv, positions, columns, rope.inv_freq(), kc, vc, {}, tiled);
  const std::vector<at::Tensor> qkv = {at::linear(x, wq), at::linear(x, wk), at::linear(x, wv)};
  at::Tensor q_ref = model::fused::rope_append(qkv[0], qkv[1], qkv[2], positions, columns, rope.inv_freq(), kc_ref, vc_ref);
  EXPECT_TRUE(q.equal(q_ref));
  EXPECT_TRUE(kc.equal(kc_ref) && vc.equal(vc_ref));
  at::Tensor wg = at::randn({24, C}, at::kBFloat16), wu = at::randn({24, C}, at::kBFloat16);
  EXPECT_TRUE(model::fused::gate_up_silu(x, wg, wu, {}, tiled)
                  .equal(model::fused::silu_mul(at::linear(x, wg), at::linear(x, wu))));
  testing::expect_error([&] { model::fused::gate_up_silu(x, wg, at::randn({23, C}, at::kBFloat16)); },
                        {"differ in rows"});
  testing::expect_error([&] { model::fused::gate_up_silu(x, wg, at::randn({24, C + 8}, at::kBFloat16)); },
                        {"do not multiply"});
  testing::expect_error([&] {
    model::fused::qkv_rope_append(x, wq, wk, at::randn({Hkv * D, C - 1}, at::kBFloat16), positions, columns,
                                  rope.inv_freq(), kc, vc);
  }, {"do not multiply"});

  // The residual add with its row sums: residual += x w^T rounded once, sums of squares by 16-column groups
  // (C = 40: a partial last group), computed here element by element.
  at::Tensor wo = at::randn({40, C}, at::kBFloat16) * 0.1, residual = at::randn({M, 40}, at::kBFloat16);
  const at::Tensor before = residual.clone();
  ASSERT_EQ(model::fused::sumsq_parts(40), 3);
  at::Tensor sumsq = at::full({3, model::fused::kTileRows}, -1.f);
  model::fused::residual_add_linear(residual, x, wo, sumsq, {}, tiled);
  EXPECT_TRUE(residual.equal(before + at::linear(x, wo)));
  for (int64_t n = 0; n < M; ++n)
    for (int64_t p = 0; p < 3; ++p) {
      double want = 0;
      for (int64_t c = 16 * p; c < std::min<int64_t>(40, 16 * p + 16); ++c) {
        const double v = residual[n][c].item<float>();
        want += v * v;
      }
      EXPECT_NEAR(sumsq[p][n].item<float>(), want, 1e-5 * (1 + want)) << "row " << n << " part " << p;
    }
  EXPECT_EQ(sumsq.narrow(1, M, model::fused::kTileRows - M).ne(-1.f).sum().item<int64_t>(), 0) << "rows past M";
  // x normalised from those sums: the norm, then the ops.
  at::Tensor nw = at::randn({40}, at::kBFloat16);
  const model::fused::TileNormedInput in{residual, nw, sumsq, 1e-5};
  const at::Tensor normed = model::rms_norm(residual, nw, 1e-5);
  at::Tensor wg40 = at::randn({24, 40}, at::kBFloat16), wu40 = at::randn({24, 40}, at::kBFloat16);
  EXPECT_TRUE(model::fused::gate_up_silu(in, wg40, wu40, {}, tiled).equal(model::fused::gate_up_silu(normed, wg40, wu40)));
  testing::expect_error([&] { model::fused::residual_add_linear(residual, x, wo, kc); }, {"sumsq", "sumsq_parts"});
  at::Tensor own = residual.clone();  // x a view of the residual's own memory
  testing::expect_error([&] { model::fused::residual_add_linear(own, own.narrow(1, 0, C), wo, sumsq); },
                        {"shares memory", "own buffer"});
  at::Tensor wide = at::randn({17, C}, at::kBFloat16), rows17 = at::randn({17, 40}, at::kBFloat16);
  testing::expect_error([&] { model::fused::residual_add_linear(rows17, wide, wo, sumsq); }, {"up to 16 rows"});
  testing::expect_error([&] { model::fused::residual_add_linear(rows17, x, wo, sumsq); }, {"the residual", "must be ("});
  const model::fused::TileNormedInput short_sums{residual, nw, at::zeros({2, 16}), 1e-5};
  testing::expect_error([&] { model::fused::gate_up_silu(short_sums, wg40, wu40); }, {"sumsq", "(3, 16)"});
}

// The tile GEMM (LaunchOptions::tile_gemm, here from one row) against the reference on the GPU: projections at
// 7B's shapes and the LM head, and small widths that leave partial tiles and slabs; its epilogues (rotary + cache
// append, SwiGLU, the residual add with its row sums) and its loads that normalise x, at 1, 3 and 16 rows, MHA
// and GQA, head dims 16 to 256, with PDL and without. A test of its own, so that gpu_check.sh runs it in its own
// process: a fault here cannot take the other GPU tests' results with it.
TEST(GpuFused, TileGemmEqualsTheReference) {
  SKIP_WITHOUT_GPU_KERNELS();
  const at::Device dev("cuda:0");
  ForceReference ref{true};
  std::map<std::string, double> worst;
  for (bool programmatic : {true, false})
    for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
      model::fused::LaunchOptions tiled{programmatic};
      tiled.tile_gemm = true;
      tiled.tile_min_rows = 1;  // from one row: in place of the skinny GEMM too
      auto close = [&](const std::string& op, const at::Tensor& got, const at::Tensor& want, const std::string& where) {
        const double d = rel_diff(got, want);
        worst[c10::str(op, " ", dtype)] = std::max(worst[c10::str(op, " ", dtype)], d);
        // cuBLAS may reduce partly in the dtype; both round the outputs: 4 ulps.
        EXPECT_LE(d, kernel_tolerance(dtype, 4)) << op << " " << dtype << " " << where << (programmatic ? " (PDL)" : "");
      };
      auto opts = at::TensorOptions().dtype(dtype).device(dev);
      at::manual_seed(4);
      for (auto [K, Ns] : std::vector<std::pair<int64_t, std::vector<int64_t>>>{
               {4096, {4096, 1024, 1024}}, {4096, {11008, 11008}}, {11008, {4096}}, {4096, {32000}},
               {264, {13, 5, 40}}, {96, {1000}}}) {
        std::vector<at::Tensor> ws;
        for (int64_t N : Ns) ws.push_back(at::randn({N, K}, opts) * 0.05);
        for (int64_t M : {1, 2, 3, 8, 9, 16}) {
          at::Tensor x = at::randn({M, K}, opts);
          ASSERT_TRUE(model::fused::tile_applies(x, ws, {}, tiled)) << dtype << " M " << M << " K " << K;
          const std::vector<at::Tensor> parts = model::fused::linear_parts(x, ws, {}, tiled);
          ASSERT_EQ(parts.size(), ws.size());
          for (size_t i = 0; i < ws.size(); ++i)
            close("linear_parts", parts[i], at::linear(x, ws[i]), c10::str("M ", M, " K ", K, " part ", i));
        }
      }
      for (auto [H, Hkv, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
               {32, 32, 128}, {8, 2, 64}, {6, 3, 16}, {4, 2, 96}, {4, 4, 256}})
        for (int64_t B : {1, 3, 16}) {
          const int64_t C = H * D, F = 352, S = 300;
          const std::string where = c10::str("B ", B, " H ", H, " Hkv ", Hkv, " D ", D);
          at::Tensor positions = at::randint(0, 4000, {B}, at::TensorOptions().dtype(at::kLong).device(dev));
          at::Tensor columns = at::randint(0, S, {B}, at::TensorOptions().dtype(at::kLong).device(dev));
          model::RotaryEmbedding rope(D, 10000, dev);
          at::Tensor kc = at::randn({B, Hkv, S, D}, opts), vc = at::randn({B, Hkv, S, D}, opts);
          at::Tensor wq = at::randn({H * D, C}, opts) * 0.05, wk = at::randn({Hkv * D, C}, opts) * 0.05,
                     wv = at::randn({Hkv * D, C}, opts) * 0.05;
          at::Tensor wg = at::randn({F, C}, opts) * 0.05, wu = at::randn({F, C}, opts) * 0.05;
          // q/k/v with rotary and cache append, gate/up with SwiGLU, on `in` (x, or a TileNormedInput).
          auto epilogues = [&](const auto& in, const std::string& what) {
            at::Tensor kf = kc.clone(), vf = vc.clone(), kf_ref = kc.clone(), vf_ref = vc.clone();
            at::Tensor qf = model::fused::qkv_rope_append(in, wq, wk, wv, positions, columns, rope.inv_freq(), kf, vf,
                                                          {}, tiled);
            at::Tensor qf_ref =
                model::fused::qkv_rope_append(in, wq, wk, wv, positions, columns, rope.inv_freq(), kf_ref, vf_ref, ref);
            close("qkv_rope_append (" + what + ")", qf, qf_ref, where);
            close("qkv_rope_append (" + what + ") k cache", kf, kf_ref, where);
            close("qkv_rope_append (" + what + ") v cache", vf, vf_ref, where);
            close("gate_up_silu (" + what + ")", model::fused::gate_up_silu(in, wg, wu, {}, tiled),
                  model::fused::gate_up_silu(in, wg, wu, ref), where);
          };
          at::Tensor x = at::randn({B, C}, opts);
          ASSERT_TRUE(model::fused::tile_applies(x, {wq, wk, wv}, {}, tiled)) << where;
          epilogues(x, "plain x");
          // The folded step's pieces: the residual add with its row sums (o), then x normalised from those sums
          // as it is loaded, against the norm and the ops.
          at::Tensor wo = at::randn({C, H * D}, opts) * 0.05, attn = at::randn({B, H * D}, opts);
          at::Tensor residual = at::randn({B, C}, opts), residual_ref = residual.clone();
          at::Tensor sumsq = at::empty({model::fused::sumsq_parts(C), model::fused::kTileRows}, opts.dtype(at::kFloat));
          at::Tensor sumsq_ref = sumsq.clone();
          model::fused::residual_add_linear(residual, attn, wo, sumsq, {}, tiled);
          model::fused::residual_add_linear(residual_ref, attn, wo, sumsq_ref, ref);
          close("residual_add_linear", residual, residual_ref, where);
          close("residual_add_linear sums of squares", sumsq.narrow(1, 0, B), sumsq_ref.narrow(1, 0, B), where);
          epilogues(model::fused::TileNormedInput{residual_ref, at::randn({C}, opts), sumsq_ref, 1e-5}, "normalised");
        }
    }
  for (const auto& [op, d] : worst) std::cout << "tile GEMM vs reference, " << op << ": max relative diff " << d << "\n";
}

// The tile GEMM's step (FusedStepOptions::tile_gemm, from one row) against the full forward: with tile_fold (five
// kernels a layer: the norms in the projections' loads, the residual adds in their epilogues), without (seven, the
// default) and unfolded, at 1, 2, 4 and 16 rows. A test of its own, for gpu_check.sh's separate process.
TEST(GpuFused, TileStepEqualsTheFullForwardOnTheGpu) {
  SKIP_WITHOUT_GPU_KERNELS();
  for (auto cfg : {small_config(512, 8, 2), small_config(1024, 8, 8)})
    for (auto [dtype, tol] : std::vector<std::pair<at::ScalarType, double>>{{at::kBFloat16, 0.1}, {at::kHalf, 0.05}})
      for (const std::vector<int64_t>& lengths :
           {std::vector<int64_t>{5, 12, 1, 9}, std::vector<int64_t>{5, 12, 1, 9, 16, 3, 7, 2, 11, 4, 8, 6, 13, 10, 15, 14},
            std::vector<int64_t>{7}, std::vector<int64_t>{3, 11}})
        for (auto [fold, tile_fold] : std::vector<std::pair<bool, bool>>{{true, true}, {true, false}, {false, false}}) {
          model::FusedStepOptions options;
          options.fold = fold;
          options.tile_fold = tile_fold;
          options.tile_gemm = true;
          options.tile_min_rows = 1;
          expect_step_near_full_forward(cfg, dtype, tol, lengths, options,
                                        std::string("fused step (tile GEMM)") + (tile_fold ? " (norms in its loads)" : "") +
                                            (fold ? "" : " (no fold)"));
        }
}

}  // namespace
}  // namespace chatmill
