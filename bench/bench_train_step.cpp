// Training step time of chatmill: forward, backward and AdamW on random token rows, for a preset (random
// weights made on the device). bench/run_train.py (CPU) and bench/run_gpu.py (GPU) run it beside HF.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "op_profile.h"
#include "model/config.h"
#include "model/weights.h"
#include "train/parallel_model.h"
#ifdef CHATMILL_CUDA
#include "train/cuda/device_info.h"
#endif

using namespace chatmill;

int main(int argc, char** argv) {
  std::string preset = "tiny", device = "cpu", precision = "float32", kernels = "fused", out, profile;
  int64_t batch = 4, seq = 256, layers = 0, steps = 5, warmup = 2, docs = 1;
  int threads = 0;
  bool checkpointing = false, autograd_grads = false;
  CLI::App app{"chatmill training-step benchmark"};
  app.add_option("--preset", preset);
  app.add_option("--layers", layers, "cut the preset to this many layers (0: keep)");
  app.add_option("--device", device);
  app.add_option("--precision", precision, "float32 | bf16-mixed | bf16");
  app.add_option("--kernels", kernels, "fused | reference (HF's op order)")->check(CLI::IsMember({"fused", "reference"}));
  app.add_option("--batch", batch);
  app.add_option("--seq", seq);
  app.add_option("--docs-per-row", docs, "pack this many equal documents into each row (1: one per row)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.add_option("--threads", threads);
  app.add_flag("--checkpointing", checkpointing);
  app.add_flag("--autograd-master-grads", autograd_grads,
               "bf16-mixed: master gradients through autograd's own path (a float32 copy added into zeroed "
               "buffers) instead of written straight into the buffers (train/master_cast.h)");
  app.add_option("--out", out);
  app.add_option("--profile", profile, "after the timed steps, profile 2 more and write a per-kernel table here");
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) at::set_num_threads(threads);
    model::LlamaConfig cfg = model::preset_by_name(preset);
    if (layers > 0) cfg.num_layers = layers;
    const at::Device dev(device == "cuda" ? "cuda:0" : device);
    train::Precision prec = precision == "bf16-mixed" ? train::Precision::Bf16Mixed
                            : precision == "bf16"     ? train::Precision::Bf16Pure
                                                      : train::Precision::Float32;
    model::Weights w;
    for (auto& p : model::named_parameters(cfg, w))
      *p.slot = p.shape.size() == 1 ? at::ones(p.shape, at::TensorOptions().device(dev))
                                    : at::randn(p.shape, at::TensorOptions().device(dev)).mul_(0.02);
    auto comm = train::make_local_communicator();
    train::OptimizerConfig opt;
    opt.lr = 1e-4;
    // Moved in: the ParallelModel releases each group's initial weights once it holds them.
    train::ParallelModel pm(cfg, std::move(w), train::Strategy::None, prec, checkpointing, opt, *comm, dev,
                            kernels == "fused" ? model::Kernels::Fused : model::Kernels::Reference);
    pm.set_direct_master_gradients(!autograd_grads);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    at::Tensor ids = at::randint(3, cfg.vocab_size, {batch, seq}, gen, at::kLong).to(dev);
    // Document d of a row covers positions [d * seq / docs, (d + 1) * seq / docs); positions restart in each.
    at::Tensor t = at::arange(seq, at::kLong);
    at::Tensor doc = (t * docs).div(seq, "floor");
    at::Tensor pos = t - (doc * seq + docs - 1).div(docs, "floor");
    train::MicroBatch mb{ids, pos.unsqueeze(0).expand({batch, seq}).contiguous().to(dev), ids,
                         doc.to(at::kInt).unsqueeze(0).expand({batch, seq}).contiguous().to(dev)};
    auto step = [&] {
      pm.zero_gradients();
      at::Tensor loss = pm.loss_sum(mb);
      pm.backward(loss, static_cast<double>(batch * (seq - 1)), true);
      // Clipped at 1.0 like a real run (the trainer's rule; HF's side calls clip_grad_norm_).
      pm.optimizer_step(1e-4, train::clip_coefficient(1.0, pm.finish_gradients()));
      (void)loss.item<double>();  // synchronise
    };
    std::vector<double> times;
    for (int64_t s = 0; s < warmup + steps; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s >= warmup) times.push_back(dt);
    }
    if (!profile.empty()) {  // after the timing: the profiler's own cost stays out of it
      constexpr int64_t kProfiled = 2;
      bench::OpProfile p(dev.is_cuda());
      for (int64_t s = 0; s < kProfiled; ++s) step();
      p.finish(profile, kProfiled);
    }
    std::sort(times.begin(), times.end());
    const double step_s = times[times.size() / 2];
    const double tokens = static_cast<double>(batch * seq);
    // Model FLOPs: 6 per parameter per token, plus causal attention (6 * L * T * C per token, halved by the
    // mask), T being the document length when rows are packed.
    const double flops = 6.0 * static_cast<double>(cfg.num_parameters()) * tokens +
                         6.0 * static_cast<double>(cfg.num_layers) * (static_cast<double>(seq) / static_cast<double>(docs)) *
                             cfg.hidden_size * tokens;
    nlohmann::json r = {{"engine", "chatmill"}, {"preset", preset}, {"layers", cfg.num_layers},
                        {"params", cfg.num_parameters()}, {"device", device}, {"precision", precision},
                        {"kernels", kernels}, {"docs_per_row", docs}, {"batch", batch}, {"seq", seq}, {"threads", at::get_num_threads()},
                        {"checkpointing", checkpointing}, {"master_grads", autograd_grads ? "autograd" : "direct"},
                        {"step_s", step_s}, {"tokens_per_s", tokens / step_s},
                        {"tflops", flops / step_s / 1e12}};
    // Peak memory: the CUDA caching allocator's peak on a GPU, the process's peak RSS on the CPU.
#ifdef CHATMILL_CUDA
    if (dev.is_cuda()) r["peak_memory_mb"] = train::cuda_peak_memory_mb(dev.index() < 0 ? 0 : dev.index());
#endif
    if (!dev.is_cuda()) {
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      r["peak_rss_mb"] = static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux reports KiB
    }
    std::cout << r.dump() << "\n";
    if (!out.empty()) std::ofstream(out, std::ios::app) << r.dump() << "\n";
  } catch (const Error& e) {
    std::cerr << "bench_train_step: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
