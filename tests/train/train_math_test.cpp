// Training math against PyTorch and HF transformers (tests/train/train_reference.py): loss and every gradient
// of one step, AdamW, the schedules; and packed rows that equal their documents trained apart.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/test_env.h"
#include "model/hf_checkpoint.h"
#include "train/loss.h"
#include "train/optimizer.h"
#include "train/param_groups.h"
#include "train/parallel_model.h"
#include "train/schedule.h"

namespace chatmill {
namespace {

using testing::max_abs_diff;
using testing::read_all;
using testing::testdata;

train::MicroBatch single_docs(const at::Tensor& ids, const at::Tensor& labels) {
  const int64_t B = ids.size(0), T = ids.size(1);
  return {ids, at::arange(T, at::kLong).unsqueeze(0).expand({B, T}).contiguous(), labels,
          at::zeros({B, T}, at::kInt)};
}

struct StepResult {
  double loss;
  std::map<std::string, at::Tensor> grads;
};

StepResult one_step(const std::string& name, train::Strategy strategy, bool checkpointing, model::Kernels kernels,
                    const at::Tensor& ids, const at::Tensor& labels) {
  model::Model m = model::load_hf_model(testdata() / "models" / name);
  auto comm = train::make_local_communicator();
  train::ParallelModel pm(m.config, m.weights, strategy, train::Precision::Float32, checkpointing, {}, *comm, at::kCPU,
                          kernels);
  const double n = static_cast<double>(train::trained_tokens(labels));
  at::Tensor ls = pm.loss_sum(single_docs(ids, labels));
  pm.backward(ls, n, true);
  pm.finish_gradients();
  return {ls.item<double>() / n, pm.named_gradients()};
}

class GradParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GradParity, LossAndEveryGradientMatchTransformers) {
  auto ref = read_all(testdata() / "ref" / ("grads_" + GetParam() + ".safetensors"));
  struct Variant {
    train::Strategy strategy;
    bool checkpointing;
    model::Kernels kernels;
  };
  for (auto [strategy, ckpt, kernels] : {Variant{train::Strategy::None, false, model::Kernels::Reference},
                                         Variant{train::Strategy::None, false, model::Kernels::Fused},
                                         Variant{train::Strategy::None, true, model::Kernels::Fused},
                                         Variant{train::Strategy::Zero3, false, model::Kernels::Fused},
                                         // Checkpointed pieces with gradient hooks: a tied embedding gets its
                                         // gradient in two pieces (head, embedding) and must be reduced once.
                                         Variant{train::Strategy::Ddp, true, model::Kernels::Fused},
                                         Variant{train::Strategy::Zero2, true, model::Kernels::Reference}}) {
    const char* kname = kernels == model::Kernels::Fused ? "fused" : "reference";
    StepResult r = one_step(GetParam(), strategy, ckpt, kernels, ref["input_ids"], ref["labels"]);
    EXPECT_NEAR(r.loss, ref["loss"].item<double>(), 1e-5) << train::strategy_name(strategy) << " " << kname;
    double worst = 0;
    int compared = 0;
    for (const auto& [key, g] : ref) {
      if (key.rfind("grad.", 0) != 0) continue;
      const std::string pname = key.substr(5);
      ASSERT_TRUE(r.grads.count(pname)) << pname;
      const double d = max_abs_diff(r.grads[pname], g);
      worst = std::max(worst, d);
      EXPECT_LE(d, 1e-5) << pname << " (" << train::strategy_name(strategy) << ", checkpointing " << ckpt << ", "
                         << kname << " kernels)";
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<int>(r.grads.size()));
    std::cout << GetParam() << " " << train::strategy_name(strategy) << (ckpt ? " +checkpointing" : "") << " " << kname
              << ": loss " << r.loss << " vs HF " << ref["loss"].item<double>() << ", worst gradient diff " << worst << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GradParity, ::testing::Values("mha_untied", "gqa_tied"));

TEST(PackedRows, EqualTheirDocumentsTrainedApart) {
  model::Model m = model::load_hf_model(testdata() / "models" / "gqa_tied");
  auto comm = train::make_local_communicator();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  at::Tensor a = at::randint(3, 1000, {1, 7}, gen, at::kLong), b = at::randint(3, 1000, {1, 9}, gen, at::kLong);
  auto loss_of = [&](const train::MicroBatch& mb) {
    train::ParallelModel pm(m.config, m.weights, train::Strategy::None, train::Precision::Float32, false, {}, *comm, at::kCPU);
    at::Tensor ls = pm.loss_sum(mb);
    pm.backward(ls, 1.0, true);
    pm.finish_gradients();
    return std::pair{ls.item<double>(), pm.named_gradients()};
  };
  // One row [a | b | pad pad]: positions restart, documents do not see each other, padding is inert.
  at::Tensor ids = at::cat({a, b, at::full({1, 2}, 2, at::kLong)}, 1);
  at::Tensor positions = at::cat({at::arange(7, at::kLong), at::arange(9, at::kLong), at::zeros({2}, at::kLong)}).unsqueeze(0);
  at::Tensor doc = at::cat({at::zeros({7}, at::kInt), at::ones({9}, at::kInt), at::full({2}, -1, at::kInt)}).unsqueeze(0);
  at::Tensor labels = ids.clone();
  labels.narrow(1, 16, 2).fill_(-100);
  labels[0][7] = -100;  // the first token of a document is never a target of the previous one
  auto packed = loss_of({ids, positions, labels, doc});
  auto alone_a = loss_of(single_docs(a, a));
  auto alone_b = loss_of(single_docs(b, b));
  EXPECT_NEAR(packed.first, alone_a.first + alone_b.first, 1e-4);
  for (const auto& [name, g] : packed.second)
    EXPECT_LE(max_abs_diff(g, alone_a.second[name] + alone_b.second[name]), 1e-5) << name;
}

TEST(AdamW, MatchesTorchOptimAdamW) {
  auto ref = read_all(testdata() / "ref" / "adamw.safetensors");
  for (const char* wd : {"wd0.0", "wd0.1"}) {
    train::OptimizerConfig cfg;
    cfg.lr = 1e-2;
    cfg.beta1 = 0.9;
    cfg.beta2 = 0.95;
    cfg.eps = 1e-8;
    cfg.weight_decay = std::string(wd) == "wd0.1" ? 0.1 : 0.0;
    for (bool fused : {false, true}) {
      cfg.fused = fused;
      at::Tensor p = ref[std::string(wd) + ".init"].clone();
      train::AdamW opt(cfg, {{"p", p, true, {}}});
      for (int s = 0; s < 5; ++s) {
        opt.step(cfg.lr, {ref[std::string(wd) + ".grad" + std::to_string(s)]});
        // The single-tensor path is torch's own order of operations; the fused kernel rounds differently.
        EXPECT_LE(max_abs_diff(p, ref[std::string(wd) + ".param" + std::to_string(s)]), fused ? 1e-6 : 1e-7)
            << wd << " step " << s << (fused ? " fused" : "");
      }
    }
  }
}

// Clipping inside the update: step(lr, grads, coef) equals scaling the gradients by coef, then stepping, on both
// paths, and leaves the gradients scaled as clip_grad_norm_ does (the fused kernel divides by 1 / coef).
TEST(AdamW, GradientCoefficientEqualsScalingTheGradientsFirst) {
  train::OptimizerConfig cfg;
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  for (bool fused : {false, true}) {
    cfg.fused = fused;
    at::manual_seed(1);
    at::Tensor p1 = at::randn({300}), p2 = p1.clone();
    train::AdamW clipped(cfg, {{"p", p1, true, {}}}), scaled(cfg, {{"p", p2, true, {}}});
    for (int s = 0; s < 4; ++s) {
      const double coef = s == 2 ? 1.0 : 0.25 + 0.1 * s;  // one step unclipped
      at::Tensor g1 = at::randn({300}), g2 = g1 * coef;
      clipped.step(cfg.lr, {g1}, coef);
      scaled.step(cfg.lr, {g2});
      EXPECT_LE(max_abs_diff(g1, g2), 1e-6) << (fused ? "fused" : "single-tensor") << " step " << s
                                            << ": the gradient is left scaled";
      EXPECT_LE(max_abs_diff(p1, p2), 1e-7) << (fused ? "fused" : "single-tensor") << " step " << s;
    }
  }
}

// Weights in a checkpoint's own dtype (bf16 here) become the float32 masters exactly, and the ParallelModel
// releases the loaded copy: the caller's moved-in tensors are gone once it is built.
TEST(ParallelModel, TakesWeightsInAnyDtypeAndReleasesThem) {
  model::Model m = model::load_hf_model(testdata() / "models" / "gqa_tied");
  std::map<std::string, at::Tensor> loaded;
  for (auto& p : model::named_parameters(m.config, m.weights)) loaded[p.name] = *p.slot;
  model::Weights bf16;
  std::map<std::string, at::Tensor> want;
  for (auto& p : model::named_parameters(m.config, bf16)) {
    *p.slot = loaded.at(p.name).to(at::kBFloat16);
    want[p.name] = p.slot->to(at::kFloat);
  }
  model::tie_weights(m.config, bf16);
  const at::Tensor embed = bf16.embed;
  auto comm = train::make_local_communicator();
  train::ParallelModel pm(m.config, std::move(bf16), train::Strategy::None, train::Precision::Float32, false, {},
                          *comm, at::kCPU);
  EXPECT_EQ(embed.use_count(), 1) << "the ParallelModel kept a handle to the loaded embedding";
  model::Weights full = pm.full_weights(at::kCPU);
  for (auto& p : model::named_parameters(m.config, full)) {
    EXPECT_EQ(p.slot->scalar_type(), at::kFloat) << p.name;
    EXPECT_TRUE(p.slot->equal(want[p.name])) << p.name;
  }
}

// A flat group's shard with decay runs updates exactly as its parameters would one by one (a matrix with decay,
// a norm without), on both paths; the runs of a group split across ranks cover each shard.
TEST(AdamW, DecayRunsOfAFlatShardEqualWholeTensors) {
  train::OptimizerConfig cfg;
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  for (bool fused : {false, true}) {
    cfg.fused = fused;
    at::manual_seed(0);
    at::Tensor matrix = at::randn({6, 4}), norm = at::randn({5});
    at::Tensor flat = at::cat({norm, matrix.reshape({-1}), at::zeros({3})});  // norm, matrix, padding
    std::vector<train::DecayRun> runs = {{0, 5, false}, {5, 24, true}, {29, 3, false}};
    train::AdamW whole(cfg, {{"m", matrix, true, {}}, {"n", norm, false, {}}});
    train::AdamW flat_opt(cfg, {{"f", flat, true, runs}});
    for (int s = 0; s < 4; ++s) {
      at::Tensor gm = at::randn({6, 4}), gn = at::randn({5});
      whole.step(cfg.lr, {gm, gn});
      flat_opt.step(cfg.lr, {at::cat({gn, gm.reshape({-1}), at::zeros({3})})});
    }
    EXPECT_TRUE(flat.narrow(0, 0, 5).equal(norm)) << (fused ? "fused" : "single-tensor");
    EXPECT_TRUE(flat.narrow(0, 5, 24).equal(matrix.reshape({-1}))) << (fused ? "fused" : "single-tensor");
    EXPECT_TRUE(flat.narrow(0, 29, 3).equal(at::zeros({3}))) << "the padding stays zero";
  }
  // A layer group over 3 ranks: each shard's runs tile it, and agree with the parameters' kinds.
  model::LlamaConfig m = model::llama2_debug();
  for (const auto& g : train::make_param_groups(m, 3)) {
    const int64_t S = g.shard_size(3);
    for (int r = 0; r < 3; ++r) {
      int64_t covered = 0;
      for (const auto& run : train::decay_runs(g, r * S, S)) {
        EXPECT_EQ(run.begin, covered) << g.name << " rank " << r;
        covered += run.length;
      }
      EXPECT_EQ(covered, S) << g.name << " rank " << r;
    }
    const auto all = train::decay_runs(g, 0, g.padded);
    if (g.name == "layers.0") {  // input norm, q k v o, post norm, gate up down, padding
      ASSERT_EQ(all.size(), g.padded > g.numel ? 5u : 4u);
      for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].decay, i % 2 == 1) << "run " << i;
    }
  }
}

TEST(Schedules, MatchTransformers) {
  std::ifstream in(testdata() / "ref" / "schedules.json");
  auto j = nlohmann::json::parse(in);
  for (auto [name, kind] : {std::pair{"cosine", train::Schedule::Cosine}, std::pair{"linear", train::Schedule::Linear},
                            std::pair{"constant", train::Schedule::Constant}}) {
    train::ScheduleConfig s;
    s.kind = kind;
    s.warmup_steps = 3;
    auto lrs = j[name].get<std::vector<double>>();
    for (size_t step = 0; step < lrs.size(); ++step)
      EXPECT_NEAR(train::lr_at(s, 2e-5, static_cast<int64_t>(step), 40), lrs[step], 1e-12) << name << " step " << step;
  }
  train::ScheduleConfig ratio;
  ratio.warmup_ratio = 0.03;
  EXPECT_EQ(train::warmup_steps(ratio, 1000), 30);
}

}  // namespace
}  // namespace chatmill
