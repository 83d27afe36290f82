// bf16-mixed gradients written straight into the flat buffers (train/master_cast.h) against autograd's own path
// (a float32 copy of each gradient added into zeroed buffers): the same gradients over two steps of two
// micro-batches each (so a buffer that is no longer zeroed must be overwritten by the first gradient of a step),
// the same updates, and the same gradient collectives (DDP's readiness hooks still fire, once per group).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "common/test_env.h"
#include "model/hf_checkpoint.h"
#include "train/master_cast.h"
#include "train/parallel_model.h"

namespace chatmill {
namespace {

using testing::max_abs_diff;
using testing::testdata;

// The local (one-rank) communicator, counting the asynchronous all-reduces DDP launches from its hooks.
class CountingCommunicator : public train::Communicator {
 public:
  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  void all_reduce_sum(at::Tensor& t) override { inner_->all_reduce_sum(t); }
  Pending all_reduce_sum_async(at::Tensor& t) override {
    ++async_reduces;
    return inner_->all_reduce_sum_async(t);
  }
  void broadcast(at::Tensor& t, int root) override { inner_->broadcast(t, root); }
  void reduce_scatter_sum(at::Tensor& out, const at::Tensor& in) override { inner_->reduce_scatter_sum(out, in); }
  void all_gather(at::Tensor& out, const at::Tensor& in) override { inner_->all_gather(out, in); }
  void barrier() override { inner_->barrier(); }
  int async_reduces = 0;

 private:
  std::unique_ptr<train::Communicator> inner_ = train::make_local_communicator();
};

train::MicroBatch batch(const model::LlamaConfig& cfg, int seed) {
  at::manual_seed(seed);
  const int64_t B = 2, T = 9;
  at::Tensor ids = at::randint(3, cfg.vocab_size, {B, T}, at::kLong);
  return {ids, at::arange(T, at::kLong).unsqueeze(0).expand({B, T}).contiguous(), ids, at::zeros({B, T}, at::kInt)};
}

struct TwoSteps {
  std::vector<std::map<std::string, at::Tensor>> grads;  // per step
  std::map<std::string, at::Tensor> weights;             // after the last step
  int async_reduces = 0;
  bool zeroed_between_steps = false;  // zero_gradients() cleared the buffers (autograd's path needs it)
};

TwoSteps train_two_steps(const std::string& name, train::Strategy strategy, bool checkpointing, model::Kernels kernels,
                    bool direct) {
  model::Model m = model::load_hf_model(testdata() / "models" / name);
  CountingCommunicator comm;
  train::OptimizerConfig opt;
  opt.lr = 1e-2;
  train::ParallelModel pm(m.config, std::move(m.weights), strategy, train::Precision::Bf16Mixed, checkpointing, opt,
                          comm, at::kCPU, kernels);
  pm.set_direct_master_gradients(direct);
  TwoSteps run;
  for (int step = 0; step < 2; ++step) {
    pm.zero_gradients();
    if (step == 1) {
      double largest = 0;
      for (const auto& [n, g] : pm.named_gradients()) largest = std::max(largest, g.abs().max().item<double>());
      run.zeroed_between_steps = largest == 0;
    }
    for (int micro = 0; micro < 2; ++micro) {
      at::Tensor loss = pm.loss_sum(batch(m.config, 10 * step + micro));
      pm.backward(loss, 18.0, micro == 1);
    }
    const double norm = pm.finish_gradients();
    run.grads.push_back({});
    for (const auto& [n, g] : pm.named_gradients()) run.grads.back()[n] = g.clone();
    pm.optimizer_step(opt.lr, train::clip_coefficient(1.0, norm));
  }
  model::Weights w = pm.full_weights(at::kCPU);
  for (auto& p : model::named_parameters(m.config, w)) run.weights[p.name] = *p.slot;
  run.async_reduces = comm.async_reduces;
  return run;
}

TEST(MasterCast, DirectGradientsEqualAutogradsPath) {
  struct Variant {
    train::Strategy strategy;
    bool checkpointing;
    model::Kernels kernels;
  };
  for (const char* name : {"mha_untied", "gqa_tied"})
    for (auto [strategy, ckpt, kernels] : {Variant{train::Strategy::None, false, model::Kernels::Fused},
                                           Variant{train::Strategy::None, false, model::Kernels::Reference},
                                           Variant{train::Strategy::None, true, model::Kernels::Fused},
                                           Variant{train::Strategy::Ddp, true, model::Kernels::Fused},
                                           Variant{train::Strategy::Ddp, false, model::Kernels::Reference},
                                           Variant{train::Strategy::Zero1, false, model::Kernels::Fused}}) {
      const std::string where = c10::str(name, " ", train::strategy_name(strategy), ckpt ? " +checkpointing" : "",
                                         kernels == model::Kernels::Fused ? " fused" : " reference");
      const TwoSteps direct = train_two_steps(name, strategy, ckpt, kernels, true);
      const TwoSteps autograd = train_two_steps(name, strategy, ckpt, kernels, false);
      for (int step = 0; step < 2; ++step) {
        ASSERT_EQ(direct.grads[step].size(), autograd.grads[step].size()) << where;
        for (const auto& [n, g] : autograd.grads[step]) {
          // Equal but for the order in which a tied embedding's two uses are added up.
          const double scale = std::max(1e-3, g.abs().max().item<double>());
          EXPECT_LE(max_abs_diff(direct.grads[step].at(n), g) / scale, 1e-6) << where << " step " << step << " " << n;
          EXPECT_GT(g.abs().max().item<double>(), 0.0) << where << " step " << step << " " << n << " has a gradient";
        }
      }
      for (const auto& [n, w] : autograd.weights)
        EXPECT_LE(max_abs_diff(direct.weights.at(n), w), 1e-6) << where << " weights after two steps: " << n;
      EXPECT_TRUE(autograd.zeroed_between_steps && !direct.zeroed_between_steps)
          << where << ": the direct path was taken, and needs no zeroing";
      EXPECT_EQ(direct.async_reduces, autograd.async_reduces) << where << ": DDP's hooks fire as on autograd's path";
      if (strategy == train::Strategy::Ddp) EXPECT_GT(direct.async_reduces, 0) << where;
    }
}

TEST(MasterCast, RefusesMastersWithoutAGradientBuffer) {
  train::GradWrites writes;
  at::Tensor no_grad = at::randn({3, 4});
  at::Tensor leaf = at::randn({3, 4}).requires_grad_(true);
  for (const at::Tensor& t : {no_grad, leaf}) {
    try {
      train::master_cast({t}, at::kBFloat16, writes);
      ADD_FAILURE() << "master_cast took a tensor without a gradient buffer";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("leaf whose .grad is its gradient buffer"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace chatmill
