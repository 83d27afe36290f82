// Engine::tune: autotune's trial of one batch bucket's step variants, in CUDA graphs or eagerly
// (EngineOptions::autotune; the choice itself is infer/step_autotune.h's).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "infer/engine.h"
#include "model/fused_ops.h"
#include "model/persistent_decode.h"

namespace chatmill::infer {

namespace {

// Rounds of timed steps, each variant once a round (interleaved, so that clock and temperature drift falls on
// all alike), and steps a round: about 10 steps a variant, tens of milliseconds for a 7B model.
constexpr int kRounds = 5;
constexpr int kReplaysPerRound = 2;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The cache columns a step over rows [0, n) writes, k and v of every layer at each row's column:
// (n, 2 L, Hkv, D).
at::Tensor written_columns(const model::KVCache& cache, const at::Tensor& rows, const at::Tensor& columns) {
  using at::indexing::Slice;
  std::vector<at::Tensor> parts;
  for (size_t l = 0; l < cache.k.size(); ++l) {
    parts.push_back(cache.k[l].index({rows, Slice(), columns}));  // (n, Hkv, D)
    parts.push_back(cache.v[l].index({rows, Slice(), columns}));
  }
  return at::stack(parts, 1);
}

// NaN into those columns, so that a variant that writes them wrongly, or not at all, cannot pass by attending to
// the configured step's values.
void poison_columns(model::KVCache& cache, const at::Tensor& rows, const at::Tensor& columns) {
  using at::indexing::Slice;
  for (size_t l = 0; l < cache.k.size(); ++l) {
    cache.k[l].index_put_({rows, Slice(), columns}, std::numeric_limits<double>::quiet_NaN());
    cache.v[l].index_put_({rows, Slice(), columns}, std::numeric_limits<double>::quiet_NaN());
  }
}

}  // namespace

Engine::TunedStep Engine::tune(int64_t n) {
  const model::FusedStepOptions configured = step_options();
  const at::Tensor probe = at::empty({n, m_.config.hidden_size}, m_.weights.embed.options());  // x's shape, for tile_applies
  model::fused::LaunchOptions tile = model::launch_options(configured);
  tile.tile_gemm = true;
  tile.tile_min_rows = std::min(configured.tile_min_rows, n);
  const bool tiles = model::fused::tile_applies(probe, {m_.weights.layers.at(0).q_proj}, {}, tile);
  const std::vector<StepVariant> variants =
      step_variants(configured, n, model::fused::persistent_applies(m_, cache_, n), tiles);
  const bool graphed = o_.cuda_graph;

  StepChoice choice;
  choice.rows = n;
  std::vector<std::unique_ptr<model::StepGraph>> graphs(variants.size());
  // Variant i's step on the current inputs: its graph's replay, or its ops launched eagerly.
  auto run = [&](size_t i) {
    if (graphed) graphs[i]->replay();
    else body(n, variants[i].options);
  };
  const at::Tensor rows = at::arange(n, columns_.options()), columns = columns_.narrow(0, 0, n);
  at::Tensor reference, reference_columns;  // the configured step's logits (n, V) and written cache columns
  for (size_t i = 0; i < variants.size(); ++i) {
    VariantTrial t;
    t.name = variants[i].name;
    const model::FusedStepOptions step = variants[i].options;
    // The first run warms up (cuBLAS handles, allocator pools) and, for a graph, captures. The configured step's
    // failure is the engine's, as without autotune; another variant's leaves that variant out. A graph's
    // capture failing after its warm-up passed is not a variant's own check: the engine's too.
    try {
      if (graphed) graphs[i] = model::capture_step_graph([this, n, step] { body(n, step); }, m_.device());
      else body(n, step);  // eager: on the current stream, so whatever it launched before a throw stays ordered
    } catch (const model::StepWarmupError& e) {
      if (i == 0) throw;
      t.failure = e.what();
    } catch (const std::exception& e) {
      if (i == 0 || graphed) throw;
      t.failure = e.what();
    }
    if (!t.failure.empty()) {
      choice.trials.push_back(std::move(t));
      continue;
    }
    // Every variant runs on the same inputs: the step buffers stay as decode_step left them, and each run
    // writes the same cache columns (poisoned first) before attending to them.
    poison_columns(cache_, rows, columns);
    run(i);
    const at::Tensor out = logits_.narrow(0, 0, n).clone(), written = written_columns(cache_, rows, columns);
    if (i == 0) {
      reference = out;
      reference_columns = written;
    }
    t.ran = true;
    t.error = std::max(relative_error(out, reference), relative_error(written, reference_columns));
    choice.trials.push_back(std::move(t));
  }
  if (variants.size() > 1) {
    // Seconds a step: a graph's by device events; eager, by the host clock from an idle device to the last
    // run's end (what eager decoding pays, launches included).
    auto seconds_of = [&](size_t i) {
      if (graphed) return graphs[i]->seconds_per_replay(kReplaysPerRound);
      (void)logits_[0][0].item<float>();  // waits for the device
      const auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < kReplaysPerRound; ++k) run(i);
      (void)logits_[0][0].item<float>();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / kReplaysPerRound;
    };
    std::vector<std::vector<double>> seconds(variants.size());
    for (int r = 0; r < kRounds; ++r)
      for (size_t i = 0; i < variants.size(); ++i)
        if (choice.trials[i].ran) seconds[i].push_back(seconds_of(i));
    for (size_t i = 0; i < variants.size(); ++i) choice.trials[i].seconds = median(seconds[i]);
    choice.chosen = choose_trial(choice.trials, o_.autotune_tolerance);
    run(choice.chosen);  // this step's cache columns and logits from the chosen variant
  }  // else: nothing to choose between, and its checked run was the last
  TunedStep out;
  out.options = variants[choice.chosen].options;
  if (graphed) out.graph = std::move(graphs[choice.chosen]);
  graphs.clear();  // the others' memory pools go now
  {
    std::lock_guard<std::mutex> lock(mu_);
    choices_.push_back(std::move(choice));
  }
  return out;
}

}  // namespace chatmill::infer
