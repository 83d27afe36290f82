// The training-side fused ops (model/fused_autograd.h) and the decoder layer built from them.
// CPU: each op's forward and hand-written backward against autograd through the reference ops (HF's order)
// on the same tensors, and a whole decoder layer (forward and every gradient) under Kernels::Fused against
// Kernels::Reference. GPU (scripts/gpu_check.sh): the CUDA kernels against the LibTorch path on CUDA tensors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/test_env.h"
#include "model/fused_autograd.h"
#include "model/fused_ops.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace chatmill {
namespace {

using testing::max_abs_diff;
using testing::rel_diff;

at::Tensor leaf(const at::Tensor& t) { return t.detach().clone().requires_grad_(true); }

// Gradients of sum_i sum(outs[i] * probes[i]) with respect to each input.
std::vector<at::Tensor> grads_of(const std::vector<at::Tensor>& outs, const std::vector<at::Tensor>& probes,
                                 const std::vector<at::Tensor>& inputs) {
  at::Tensor total = at::zeros({}, at::kFloat);
  for (size_t i = 0; i < outs.size(); ++i) total = total + (outs[i].to(at::kFloat) * probes[i]).sum();
  return torch::autograd::grad({total}, inputs);
}
std::vector<at::Tensor> grads_of(const at::Tensor& out, const at::Tensor& probe, const std::vector<at::Tensor>& inputs) {
  return grads_of(std::vector<at::Tensor>{out}, std::vector<at::Tensor>{probe}, inputs);
}

model::RopeTables tables(int64_t B, int64_t T, int64_t D, at::ScalarType dtype, at::Device dev) {
  model::RotaryEmbedding rope(D, 50000.0, dev);
  at::Tensor pos = at::randint(0, 4000, {B, T}, at::TensorOptions().dtype(at::kLong).device(dev));
  return rope.tables(pos, dtype);
}

// The packed q/k/v split + rotary, SwiGLU and RMSNorm on `dev`: forward and backward of the fused op vs
// HF's ops under autograd, each diff relative to the reference's largest magnitude, by name.
std::map<std::string, double> op_diffs(at::ScalarType dtype, at::Device dev, int64_t D, int64_t H, int64_t Hkv,
                                       model::fused::ForceReference aten) {
  at::manual_seed(3);
  const auto opts = at::TensorOptions().dtype(dtype).device(dev);
  const int64_t B = 2, T = 7, F = 40;
  std::map<std::string, double> d;
  {
    model::RopeTables rt = tables(B, T, D, dtype, dev);
    at::Tensor qkv = leaf(at::randn({B, T, (H + 2 * Hkv) * D}, opts));
    std::vector<at::Tensor> probes;
    for (int64_t h : {H, Hkv, Hkv}) probes.push_back(at::randn({B, T, h, D}, opts.dtype(at::kFloat)));
    // HF: three projections, each viewed as heads and transposed, q and k rotated.
    at::Tensor heads = qkv.view({B, T, H + 2 * Hkv, D});
    std::vector<at::Tensor> want = {
        model::apply_rotary(heads.narrow(2, 0, H).transpose(1, 2), rt).transpose(1, 2),
        model::apply_rotary(heads.narrow(2, H, Hkv).transpose(1, 2), rt).transpose(1, 2), heads.narrow(2, H + Hkv, Hkv)};
    model::QkvHeads got = model::qkv_rotary_fused(qkv, rt.cos, rt.sin, H, Hkv, aten);
    d["qkv rotary forward q"] = rel_diff(got.q, want[0]);
    d["qkv rotary forward k"] = rel_diff(got.k, want[1]);
    d["qkv rotary forward v"] = rel_diff(got.v, want[2]);
    d["qkv rotary backward"] =
        rel_diff(grads_of({got.q, got.k, got.v}, probes, {qkv})[0], grads_of(want, probes, {qkv})[0]);
    // Only q used: the unused outputs' gradients count as zeros.
    at::Tensor q_only = model::qkv_rotary_fused(qkv, rt.cos, rt.sin, H, Hkv, aten).q;
    at::Tensor q_ref = model::apply_rotary(heads.narrow(2, 0, H).transpose(1, 2), rt).transpose(1, 2);
    d["qkv rotary backward, q only"] =
        rel_diff(grads_of(q_only, probes[0], {qkv})[0], grads_of(q_ref, probes[0], {qkv})[0]);
  }
  {
    at::Tensor gu = leaf(at::cat({at::randn({B, T, F}, opts) * 3, at::randn({B, T, F}, opts)}, -1));
    at::Tensor probe = at::randn({B, T, F}, opts.dtype(at::kFloat));
    at::Tensor want = at::silu(gu.narrow(-1, 0, F)) * gu.narrow(-1, F, F), got = model::swiglu_fused(gu, aten);
    d["swiglu forward"] = rel_diff(got, want);
    d["swiglu backward"] = rel_diff(grads_of(got, probe, {gu})[0], grads_of(want, probe, {gu})[0]);
  }
  {
    at::Tensor x = leaf(at::randn({B, T, 48}, opts) * 2), w = leaf(at::rand({48}, opts) + 0.5);
    at::Tensor probe = at::randn({B, T, 48}, opts.dtype(at::kFloat));
    at::Tensor want = model::rms_norm(x, w, 1e-6), got = model::rms_norm_fused(x, w, 1e-6);
    d["rms_norm forward"] = rel_diff(got, want);
    auto gw = grads_of(want, probe, {x, w}), gg = grads_of(got, probe, {x, w});
    d["rms_norm backward x"] = rel_diff(gg[0], gw[0]);
    d["rms_norm backward weight"] = rel_diff(gg[1], gw[1]);
  }
  return d;
}

TEST(FusedAutograd, EachOpAndItsBackwardMatchAutogradOfTheReferenceOps) {
  for (int64_t D : {16, 64}) {
    for (auto [H, Hkv] : {std::pair<int64_t, int64_t>{3, 3}, std::pair<int64_t, int64_t>{4, 2}}) {
      for (const auto& [name, diff] : op_diffs(at::kFloat, at::kCPU, D, H, Hkv, {})) {
        std::cout << "  float32 D=" << D << " H=" << H << " Hkv=" << Hkv << " " << name << ": " << diff << "\n";
        EXPECT_LE(diff, 1e-6) << name << " D=" << D << " H=" << H << " Hkv=" << Hkv;
      }
    }
  }
  // bf16 on the CPU: the rotation rounds exactly as HF's ops; the others within a rounding step of bf16.
  for (const auto& [name, diff] : op_diffs(at::kBFloat16, at::kCPU, 64, 4, 2, {})) {
    std::cout << "  bf16 " << name << ": " << diff << "\n";
    EXPECT_LE(diff, name.rfind("qkv", 0) == 0 ? 0.0 : 2.0 / 128) << name;
  }
}

TEST(FusedAutograd, StackRowsConvertsInOnePassAndSplitsTheGradient) {
  at::Tensor a = leaf(at::randn({3, 4})), b = leaf(at::randn({2, 4})), c = leaf(at::randn({5, 4}));
  at::Tensor s = model::stack_rows({a, b, c}, at::kBFloat16);
  EXPECT_EQ(s.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(s, at::cat({a, b, c}).to(at::kBFloat16)));
  at::Tensor probe = at::randn({10, 4});
  auto g = grads_of(s, probe, {a, b, c});
  at::Tensor want = probe.to(at::kBFloat16).to(at::kFloat);  // the gradient arrives in bf16
  for (int i = 0; i < 3; ++i) EXPECT_EQ(g[i].scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(g[0], want.narrow(0, 0, 3)) && at::equal(g[1], want.narrow(0, 3, 2)) &&
              at::equal(g[2], want.narrow(0, 5, 5)));
  at::Tensor two = model::stack_rows({a, b}, at::kFloat);
  EXPECT_TRUE(at::equal(two, at::cat({a, b})));
  auto g2 = grads_of(two, probe.narrow(0, 0, 5), {a, b});
  EXPECT_TRUE(at::equal(g2[1], probe.narrow(0, 3, 2)));
  testing::expect_error([&] { model::stack_rows({a, at::randn({2, 5})}, at::kFloat); },
                        {"equal column counts", "[2, 5]"});
}

TEST(FusedAutograd, RejectsBadShapes) {
  at::Tensor qkv = at::randn({2, 3, 4 * 8});  // 2 heads + 2 x 1 kv head of 8
  model::RopeTables rt = tables(2, 3, 8, at::kFloat, at::kCPU);
  testing::expect_error([&] { model::qkv_rotary_fused(qkv, rt.cos, rt.sin, 3, 1); },
                        {"qkv must be (2, 3, 40) for 3 heads and 1 kv heads of 8", "[2, 3, 32]"});
  testing::expect_error([&] { model::qkv_rotary_fused(qkv, rt.cos, rt.sin.narrow(1, 0, 2), 2, 1); },
                        {"tables must be (2, 3, 8)", "[2, 2, 8]"});
  testing::expect_error([&] { model::qkv_rotary_fused(qkv, rt.cos, rt.sin.to(at::kDouble), 2, 1); },
                        {"tables", "Double"});
  testing::expect_error([&] { model::swiglu_fused(at::randn({2, 5})); }, {"even dimension", "[2, 5]"});
}

// A decoder layer under Kernels::Fused vs Kernels::Reference: output and the gradients of its input and of
// all nine weights, GQA, several documents per row (an explicit mask) and plain causal attention.
TEST(FusedAutograd, DecoderLayerEqualsTheReferenceLayerForwardAndBackward) {
  at::manual_seed(5);
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.hidden_size = 64;
  cfg.num_heads = 4;
  cfg.num_kv_heads = 2;
  cfg.intermediate_size = 96;
  cfg.num_layers = 1;
  cfg.rms_norm_eps = 1e-6;
  model::Weights w = model::init_weights(cfg, 0.05, 7, at::kFloat, at::kCPU);
  const int64_t B = 2, T = 9;
  at::Tensor pos = at::arange(T).unsqueeze(0).expand({B, T}).contiguous();
  model::RotaryEmbedding rope(cfg.head_dim(), 50000.0, at::kCPU);
  model::RopeTables rt = rope.tables(pos, at::kFloat);
  at::Tensor x0 = at::randn({B, T, cfg.hidden_size});
  at::Tensor probe = at::randn({B, T, cfg.hidden_size});
  at::Tensor docs = at::arange(T).ge(4).to(at::kLong);  // two documents per row: keys of the other one hidden
  at::Tensor allowed = (docs.unsqueeze(0) == docs.unsqueeze(1)) & at::ones({T, T}, at::kBool).tril();
  for (const model::AttentionMask& mask : {model::AttentionMask{at::Tensor(), true},
                                           model::AttentionMask{allowed.view({1, 1, T, T}).expand({B, 1, T, T}), false}}) {
    std::vector<at::Tensor> out, grads[2];
    int i = 0;
    for (model::Kernels k : {model::Kernels::Reference, model::Kernels::Fused}) {
      model::LayerWeights lw = w.layers[0];
      std::vector<at::Tensor*> slots = {&lw.input_norm, &lw.q_proj, &lw.k_proj, &lw.v_proj, &lw.o_proj,
                                        &lw.post_norm, &lw.gate_proj, &lw.up_proj, &lw.down_proj};
      std::vector<at::Tensor> inputs = {leaf(x0)};
      for (at::Tensor* s : slots) inputs.push_back(*s = leaf(*s));
      at::Tensor y = model::decoder_layer(cfg, lw, inputs[0], rt, nullptr, 0, mask, k);
      out.push_back(y);
      grads[i++] = grads_of(y, probe, inputs);
    }
    EXPECT_LE(max_abs_diff(out[1], out[0]), 1e-5) << "forward, causal " << mask.is_causal;
    double worst = 0;
    for (size_t j = 0; j < grads[0].size(); ++j) worst = std::max(worst, rel_diff(grads[1][j], grads[0][j]));
    std::cout << "  layer (causal " << mask.is_causal << "): forward " << max_abs_diff(out[1], out[0])
              << ", worst relative gradient diff " << worst << "\n";
    EXPECT_LE(worst, 1e-5);
  }
  model::Model m(cfg, w);
  model::KVCache cache = model::KVCache::allocate(cfg, 1, 4, at::kFloat, at::kCPU);
  testing::expect_error([&] {
    model::decoder_layer(cfg, w.layers[0], x0.narrow(0, 0, 1), rt, &cache, 0, {}, model::Kernels::Fused);
  }, {"without a KV cache"});
}

// ---- GPU ------------------------------------------------------------------------------------------------

TEST(GpuAutograd, KernelsEqualTheLibTorchOpsOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::fused::kernels_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  for (at::ScalarType t : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (int64_t D : {64, 128}) {
      auto kernel = op_diffs(t, at::kCUDA, D, 32, 8, {});
      auto aten = op_diffs(t, at::kCUDA, D, 32, 8, {true});
      for (const auto& [name, diff] : kernel) {
        // Both against the same reference: the kernel may differ from it by what ATen's op does, plus a
        // rounding step of the dtype (SwiGLU's backward rounds once where the ops round several times).
        const double tol = t == at::kFloat ? 1e-5 : (t == at::kBFloat16 ? 2.0 / 128 : 2.0 / 1024);
        std::cout << "  " << c10::toString(t) << " D=" << D << " " << name << ": kernel " << diff << ", aten "
                  << aten[name] << "\n";
        EXPECT_LE(diff, std::max(tol, aten[name])) << c10::toString(t) << " D=" << D << " " << name;
      }
    }
  }
}

}  // namespace
}  // namespace chatmill
