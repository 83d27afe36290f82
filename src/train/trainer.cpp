#include "train/trainer.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>

#include "common/error.h"
#include "common/interrupted.h"
#include "common/sha256.h"
#include "data/token_store.h"
#include "eval/suite.h"
#include "model/hf_checkpoint.h"
#include "model/tokenizer.h"
#include "train/checkpoint.h"
#include "train/device_peak.h"
#include "train/loss.h"
#include "train/metrics.h"
#include "train/parallel_model.h"
#include "train/schedule.h"
#ifdef CHATMILL_CUDA
#include "train/cuda/device_info.h"
#endif

namespace chatmill::train {

namespace fs = std::filesystem;

namespace {

struct Setup {
  model::LlamaConfig model_cfg;
  model::Weights weights;                  // on the device: the checkpoint's dtype, or float32 when fresh
  std::optional<fs::path> tokenizer;       // the model's tokenizer.model
};

// The model to train: a checkpoint to resume, an HF folder, or a fresh init of a preset.
Setup load_model(const TrainConfig& cfg, const std::optional<fs::path>& resume, at::Device device) {
  Setup s;
  // The checkpoint's own dtype: the ParallelModel converts group by group, so a bf16 checkpoint costs half the
  // transient memory of a float32 copy.
  const model::LoadOptions load{at::kFloat, device, /*stored_dtype=*/true};
  if (resume) {
    model::Model m = model::load_hf_model(*resume / "model", load);
    s.model_cfg = m.config;
    s.weights = m.weights;
    if (fs::exists(*resume / "model" / "tokenizer.model")) s.tokenizer = *resume / "model" / "tokenizer.model";
  } else if (!cfg.model.from.empty()) {
    model::Model m = model::load_hf_model(cfg.model.from, load);
    s.model_cfg = m.config;
    s.weights = m.weights;
    if (fs::exists(fs::path(cfg.model.from) / "tokenizer.model")) s.tokenizer = fs::path(cfg.model.from) / "tokenizer.model";
  } else {
    s.model_cfg = model::preset_by_name(cfg.model.preset);
    CHATMILL_CHECK(!cfg.model.tokenizer.empty(), "model.preset needs model.tokenizer (the vocabulary it is trained on)");
    auto tok = model::Tokenizer::load(cfg.model.tokenizer);
    s.model_cfg.vocab_size = tok.vocab_size();
    s.model_cfg.bos_token_id = tok.bos_id();
    s.model_cfg.eos_token_ids = {tok.eos_id()};
    s.model_cfg.validate();
    s.weights = model::init_weights(s.model_cfg, cfg.model.init_std, cfg.run.seed, at::kFloat, device);
  }
  if (!cfg.model.tokenizer.empty()) s.tokenizer = fs::path(cfg.model.tokenizer);
  return s;
}

at::Device parse_train_device(const std::string& d, const DistEnv& env) {
  if (d == "cpu") return at::kCPU;
  CHATMILL_CHECK(d == "cuda", "model.device is '", d, "'; use cpu or cuda (each rank takes cuda:LOCAL_RANK)");
  CHATMILL_CHECK(at::hasCUDA(), "model.device is cuda, but this build or machine has no CUDA");
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

double rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

}  // namespace

TrainSummary run_training(const TrainConfig& cfg, const DistEnv& env, const std::function<bool()>& stop_requested) {
  const at::Device device = parse_train_device(cfg.model.device, env);
#ifdef CHATMILL_CUDA
  if (device.is_cuda()) use_cuda_device(device.index());  // before the process group: NCCL binds to it
#endif
  const fs::path out(cfg.run.output_dir);
  std::unique_ptr<Communicator> comm =
      env.world_size > 1 ? make_c10d_communicator(env, device.is_cuda(),
                                                  std::chrono::milliseconds(static_cast<int64_t>(cfg.parallel.timeout_s * 1000)))
                         : make_local_communicator();
  const bool lead = comm->rank() == 0;

  std::optional<fs::path> resume;
  if (cfg.checkpoint.resume) resume = latest_checkpoint(out);
  Setup setup = load_model(cfg, resume, device);

  // The data, and its agreement with the model.
  data::TokenStore store = data::TokenStore::open(cfg.data.store);
  if (setup.tokenizer) store.require_tokenizer(sha256_file(*setup.tokenizer), setup.tokenizer->string());
  else CHATMILL_FAIL("no tokenizer to check the store against: the model folder has no tokenizer.model; set model.tokenizer");
  const int W = comm->world_size();
  CHATMILL_CHECK(cfg.data.global_batch_size % (static_cast<int64_t>(W) * cfg.data.micro_batch_size) == 0,
                 "data.global_batch_size (", cfg.data.global_batch_size, ") must be a multiple of world size (", W,
                 ") x data.micro_batch_size (", cfg.data.micro_batch_size, ")");
  const int64_t per_rank = cfg.data.global_batch_size / W;
  const int64_t accum = per_rank / cfg.data.micro_batch_size;
  data::RowSampler sampler(store.num_rows(), per_rank, W, comm->rank(), cfg.run.seed);
  const int64_t per_epoch = sampler.steps_per_epoch();
  int64_t total = cfg.run.epochs * per_epoch;
  if (cfg.run.max_steps >= 0) total = std::min(total, cfg.run.max_steps);

  ParallelModel pm(setup.model_cfg, std::move(setup.weights), cfg.parallel.strategy, cfg.model.precision,
                   cfg.model.activation_checkpointing, cfg.optimizer, *comm, device, cfg.model.kernels);
  const int64_t setup_params = setup.model_cfg.num_parameters();
  int64_t start = 0;
  if (resume) {
    auto contents = load_checkpoint_contents(*resume);
    start = contents.step;
    pm.load_optimizer_state(load_optimizer_state(*resume, comm->rank(), W), resume->string());
  }

  if (lead) {
    fs::create_directories(out);
    std::ofstream(out / "train_config.json") << cfg.to_json().dump(2) << "\n";
    std::cout << "resolved config:\n" << cfg.to_json().dump(2) << "\n";
    std::cout << (resume ? "resuming from " + resume->string() + " at step " + std::to_string(start) : "starting")
              << ": " << setup.model_cfg.num_parameters() << " parameters, " << store.num_rows() << " rows of "
              << store.meta().row_length << " tokens, " << per_epoch << " steps per epoch, " << total << " steps, "
              << W << " rank(s), strategy " << strategy_name(cfg.parallel.strategy) << ", " << accum
              << " micro-batch(es) of " << cfg.data.micro_batch_size << " per step\n";
  }
  // MFU's denominator: the configured peak, else the device's datasheet bf16 peak when training in bf16.
  double peak_tflops = cfg.logging.peak_tflops;
#ifdef CHATMILL_CUDA
  if (peak_tflops <= 0 && device.is_cuda() && cfg.model.precision != Precision::Float32) {
    const std::string name = cuda_device_name(device.index());
    peak_tflops = dense_bf16_peak_tflops(name);
    if (lead)
      std::cout << (peak_tflops > 0 ? "MFU against the " + name + "'s dense bf16 peak of " + std::to_string(peak_tflops) +
                                          " TFLOP/s (logging.peak_tflops overrides it)\n"
                                    : "MFU not reported: no known peak for " + name + "; set logging.peak_tflops\n");
  }
#endif
  MetricsLog metrics(out, lead && cfg.logging.progress, total, start);
  if (lead) {
    const MemoryBytes mem = pm.memory();
    metrics.log({{"event", "memory"}, {"rank", 0}, {"world_size", W}, {"strategy", strategy_name(cfg.parallel.strategy)},
                 {"params_bytes", mem.params}, {"grads_bytes", mem.grads}, {"optimizer_bytes", mem.optimizer}});
  }

  auto save = [&](int64_t step, double loss) {
    // Rank 0 writes the model: only it copies the weights, to the host (no second copy on the GPU).
    model::Weights weights = pm.full_weights(at::kCPU, lead);
    std::optional<model::Model> snapshot;
    if (lead) snapshot.emplace(pm.config(), std::move(weights));
    SaveRequest req;
    req.model = lead ? &*snapshot : nullptr;
    req.optimizer_state = pm.optimizer_state();
    req.contents.step = step;
    req.contents.trainer_state = {{"step", step}, {"epoch", step / per_epoch}, {"step_in_epoch", step % per_epoch},
                                  {"total_steps", total}, {"loss", loss}, {"world_size", W},
                                  {"strategy", strategy_name(cfg.parallel.strategy)}};
    req.contents.config = cfg.to_json();
    req.tokenizer = setup.tokenizer;
    req.keep_last = cfg.checkpoint.keep_last;
    req.pause_before_commit_ms = cfg.checkpoint.pause_before_commit_ms;
    return save_checkpoint(out, req, *comm);
  };

  // Benchmarks on the weights in memory (no export, no subprocess); rank 0 runs them while the others wait.
  // Evaluates the weights after `step`; false, on every rank, when a stop request cut it short (the lead polls it
  // between benchmarks, batches and generation steps, and tells the others in the closing collective).
  auto evaluate = [&](int64_t step) {
    if (cfg.eval.empty()) return true;
    model::Weights weights = pm.full_weights(device, lead);  // collective under ZeRO-3: every rank takes part
    bool completed = true;
    if (lead) {
      model::Model snapshot(pm.config(), std::move(weights));
      CHATMILL_CHECK(setup.tokenizer, "eval: the model has no tokenizer.model; set model.tokenizer");
      const model::Tokenizer tok = model::Tokenizer::load(*setup.tokenizer);
      const std::string name = out.filename().string() + "-step-" + std::to_string(step);
      const fs::path dir = out / "eval" / ("step-" + std::to_string(step));
      fs::remove_all(dir);  // results of earlier weights (a rerun of this folder) are never reused
      try {
        auto results = eval::run_eval_suite({snapshot, tok, name, {}, stop_requested}, cfg.eval, dir);
        metrics.log({{"event", "eval"}, {"step", step}, {"results", results}});
      } catch (const Interrupted& e) {
        completed = false;
        fs::remove_all(dir);  // partial results are not results
        metrics.log({{"event", "eval"}, {"step", step}, {"stopped", true}, {"reason", e.what()}});
        std::cout << "\nthe evaluation after step " << step << " was stopped as asked (" << e.what() << ")"
                  << std::endl;
      }
    }
    at::Tensor sync = at::full({1}, completed ? 0.0 : 1.0, at::TensorOptions().dtype(at::kDouble)).to(device);
    comm->all_reduce_sum(sync);  // the others wait here (within parallel.timeout_s)
    return sync.item<double>() == 0;
  };

  TrainSummary summary;
  summary.first_step = start;
  summary.steps = start;
  double last_loss = 0;
  int64_t last_saved = resume ? start : -1;
  for (int64_t step = start; step < total; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int64_t> rows = sampler.batch(step / per_epoch, step % per_epoch);
    // Damaged rows stop every rank at this step, not only the one that read them (the others would wait in the
    // next collective until parallel.timeout_s).
    data::Batch batch;
    std::string bad_rows;
    try {
      batch = store.rows(rows);
      data::check_vocabulary(batch, setup.model_cfg.vocab_size, store.path());
    } catch (const Error& e) {
      bad_rows = e.what();
    }
    // The loss is normalised by the trained tokens of the whole global batch, not per micro-batch. The same
    // collective carries each rank's stop request, so that every rank stops before the same step, and whether
    // its rows were good.
    const double stop_here = stop_requested && stop_requested() ? 1.0 : 0.0;
    const double tokens_here = bad_rows.empty() ? static_cast<double>(trained_tokens(batch.labels)) : 0.0;
    at::Tensor count = at::tensor({tokens_here, stop_here, bad_rows.empty() ? 0.0 : 1.0}, at::kDouble).to(device);
    comm->all_reduce_sum(count);
    const at::Tensor counted = count.cpu();
    const double n_tokens = counted[0].item<double>();
    if (counted[2].item<double>() > 0) {
      if (!bad_rows.empty()) throw Error(bad_rows);
      CHATMILL_FAIL("step ", step + 1, ": another rank read damaged rows of the token store ", store.path(),
                    " (its error says which); tokenize the data again");
    }
    if (counted[1].item<double>() > 0) {
      summary.stopped = true;
      break;
    }
    pm.zero_gradients();
    // Summed on the device: no host sync between a micro-batch's forward and its backward.
    at::Tensor total_loss = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(device));
    for (int64_t m = 0; m < accum; ++m) {
      const int64_t b = m * cfg.data.micro_batch_size, n = cfg.data.micro_batch_size;
      MicroBatch mb{batch.ids.narrow(0, b, n).to(device), batch.positions.narrow(0, b, n).to(device),
                    batch.labels.narrow(0, b, n).to(device), batch.doc.narrow(0, b, n).to(device)};
      at::Tensor ls = pm.loss_sum(mb);
      total_loss += ls.detach().to(at::kDouble);
      pm.backward(ls, std::max(n_tokens, 1.0), m + 1 == accum);
    }
    comm->all_reduce_sum(total_loss);
    const double loss = total_loss.item<double>() / std::max(n_tokens, 1.0);
    const double norm = pm.finish_gradients();
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      const std::string culprit = std::isfinite(norm) ? "the loss" : "the gradient of " + pm.first_non_finite_gradient();
      if (cfg.run.on_non_finite == OnNonFinite::Stop)
        CHATMILL_FAIL("step ", step + 1, ": non-finite values in ", culprit, " (loss ", loss, ", gradient norm ", norm,
                      "); the last good checkpoint ",
                      latest_checkpoint(out) ? latest_checkpoint(out)->string() : std::string("(none yet)"),
                      " is untouched. Lower optimizer.lr, or set run.on_non_finite: skip");
      ++summary.skipped_steps;
      if (lead) metrics.log({{"step", step + 1}, {"skipped", true}, {"reason", "non-finite " + culprit}});
      continue;
    }
    const double lr = lr_at(cfg.schedule, cfg.optimizer.lr, step, total);
    pm.optimizer_step(lr, clip_coefficient(cfg.optimizer.grad_clip, norm));
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step == start) summary.first_loss = loss;
    last_loss = loss;
    summary.steps = step + 1;
    if (lead && ((step + 1) % std::max<int64_t>(cfg.logging.every_steps, 1) == 0 || step + 1 == total)) {
      // MFU: 6 FLOPs per parameter per processed token (rows x row length, all ranks) against the peak.
      const double processed = static_cast<double>(cfg.data.global_batch_size * store.meta().row_length);
      const double model_tflops = 6.0 * static_cast<double>(setup_params) * processed / std::max(dt, 1e-9) / 1e12;
      nlohmann::ordered_json rec = {{"step", step + 1}, {"epoch", step / per_epoch}, {"loss", loss}, {"lr", lr},
                                    {"grad_norm", norm}, {"trained_tokens", n_tokens},
                                    {"tokens_per_s", n_tokens / std::max(dt, 1e-9)}, {"step_seconds", dt},
                                    {"model_tflops_per_rank", model_tflops / W}};
      rec["mfu"] = peak_tflops > 0 ? nlohmann::ordered_json(model_tflops / W / peak_tflops) : nlohmann::ordered_json(nullptr);
#ifdef CHATMILL_CUDA
      if (device.is_cuda()) rec["memory_mb"] = cuda_peak_memory_mb(device.index());
#endif
      if (!device.is_cuda()) rec["rss_mb"] = rss_mb();
      metrics.log(rec);
    }
    if (lead) metrics.progress(step, loss, lr);
    if (cfg.checkpoint.every_steps > 0 && (step + 1) % cfg.checkpoint.every_steps == 0 && step + 1 < total) {
      save(step + 1, loss);
      last_saved = step + 1;
    }
    if (cfg.eval.every_steps > 0 && (step + 1) % cfg.eval.every_steps == 0 && step + 1 < total) evaluate(step + 1);
  }
  // A stop asked for during the last step: agreed here, before the final evaluation, whose collectives every
  // rank must join.
  if (!summary.stopped && stop_requested) {
    at::Tensor flag = at::full({1}, stop_requested() ? 1.0 : 0.0, at::TensorOptions().dtype(at::kDouble)).to(device);
    comm->all_reduce_sum(flag);
    summary.stopped = flag.item<double>() > 0;
  }
  if (last_saved != summary.steps) summary.final_checkpoint = save(summary.steps, last_loss);
  else if (auto l = latest_checkpoint(out)) summary.final_checkpoint = *l;
  summary.last_loss = last_loss;
  if (summary.stopped) {
    if (lead && summary.steps < total)
      std::cout << "\nstopped as asked before step " << summary.steps + 1 << " of " << total << "; saved "
                << summary.final_checkpoint.string() << ". Continue with checkpoint.resume=true" << std::endl;
    else if (lead)
      std::cout << "\nstopped as asked after the last step; saved " << summary.final_checkpoint.string()
                << "; the final evaluation was skipped" << std::endl;
  } else if ((summary.steps > summary.first_step || !resume) && !evaluate(summary.steps)) {
    summary.stopped = true;  // during the final evaluation: the checkpoint above is saved; exit as stopped
    if (lead)
      std::cout << "stopped as asked during the final evaluation; saved " << summary.final_checkpoint.string()
                << "; evaluate it with chatmill eval" << std::endl;
  }
  if (lead) metrics.finish();
  return summary;
}

}  // namespace chatmill::train
