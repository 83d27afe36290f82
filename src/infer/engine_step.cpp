// The engine's decode step: what one step computes (body) and how steps are queued and read (decode_step,
// launch, collect; EngineOptions::overlap's run-ahead).
#include <ATen/ATen.h>

#include <algorithm>

#include "infer/engine.h"
#include "infer/engine_slot.h"
#include "model/fused_decode.h"
#include "model/fused_ops.h"
#include "model/step_advance.h"

namespace chatmill::infer {

void Engine::body(int64_t n, const model::FusedStepOptions& step) {
  model::KVCache rows_cache;
  for (size_t l = 0; l < cache_.k.size(); ++l) {
    rows_cache.k.push_back(n == B_ ? cache_.k[l] : cache_.k[l].narrow(0, 0, n));
    rows_cache.v.push_back(n == B_ ? cache_.v[l] : cache_.v[l].narrow(0, 0, n));
  }
  rows_cache.split_counters = cache_.split_counters;  // (B_ * H): enough for any n rows
  rows_cache.persistent_table = cache_.persistent_table;  // the rows' caches start where the batch's do
  rows_cache.persistent_table_host = cache_.persistent_table_host;
  rows_cache.grid_barrier = cache_.grid_barrier;
  const at::Tensor ids = ids_.narrow(0, 0, n), columns = columns_.narrow(0, 0, n), lengths = lengths_.narrow(0, 0, n);
  if (fused_) {  // each row attends to its own lengths[b] columns, whatever the capacity
    model::DecodeResidual r = model::fused_decode_residual(m_, ids, columns, columns, lengths, rows_cache, step);
    // The LM head launched as the step's projections, through the tile GEMM only with head_tile_gemm; the kernel
    // right after the layers without PDL where they end in the persistent step's cooperative kernel.
    model::fused::LaunchOptions launch = model::launch_options(step);
    launch.tile_gemm = launch.tile_gemm && step.head_tile_gemm;
    const model::fused::LaunchOptions first = r.after(launch);
    const at::Tensor& head = m_.weights.lm_head;
    at::Tensor logits = logits_.narrow(0, 0, n);
    const model::fused::NormedInput in{r.x, r.delta, m_.weights.norm, at::empty_like(r.x), m_.config.rms_norm_eps};
    const bool tiled_head = model::fused::tile_applies(r.x, {head}, {}, launch);
    if (step.fold && step.skinny_gemm && !tiled_head && model::fused::folds_apply(in, {head})) {
      model::fused::lm_head_logits(in, head, logits, {}, first);  // final norm, head and float32: one kernel
      return;
    }
    const at::Tensor h = model::fused::add_rms_norm(r.x, r.delta, in.weight, in.eps, {}, first);  // (n, C)
    // Through the skinny (or tile) GEMM; copy_ widens to float32 as lm_logits does.
    logits.copy_(step.skinny_gemm || tiled_head ? model::fused::linear(h, head, {}, launch) : model::lm_logits(m_, h));
    return;
  }
  // Eager steps attend over the columns any active row uses; a CUDA graph needs the fixed width S.
  rows_cache.write_rows = columns;
  rows_cache.attend_columns = width_;
  model::AttentionMask mask;
  mask.mask = model::length_mask(lengths, width_);
  at::Tensor h = model::forward_hidden_masked(m_, ids.view({n, 1}), columns.view({n, 1}), &rows_cache, mask);
  logits_.narrow(0, 0, n).copy_(model::lm_logits(m_, h).squeeze(1));
}

void Engine::decode_step() {
  if (in_flight_.empty()) launch(false);  // run_loop calls with a slot active
  if (in_flight_.size() == 1 && can_run_ahead()) launch(true);
  collect();
  if (!in_flight_.empty()) return;
  // Every step queued has been read, and each reset the entries its rows wrote (only theirs:
  // model/step_advance.h), so the whole ring is reset: an entry still written is a write collect() never read.
  const int64_t* ring = ring_.data_ptr<int64_t>();
  for (int64_t i = 0; i < 2 * B_; ++i)
    TORCH_INTERNAL_ASSERT(ring[i] == -1, "ring entry ", i, " holds ", ring[i],
                          " with no step queued: a step wrote a row it did not decode");
}

bool Engine::can_run_ahead() const {
  if (!o_.overlap || rows_changed_) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!queue_.empty() && stats_.active < B_) return false;  // a request waits for a free slot: admit it first
  }
  const Launched& l = in_flight_.back();
  for (size_t i = 0; i < l.slots.size(); ++i) {
    const Slot& s = *slots_[l.slots[i]];
    // Only greedy tokens come from the device, and log-probabilities need this step's logits, which the step
    // ahead overwrites.
    if (!s.request.sampling.greedy() || s.request.logprobs >= 0 || s.handle->cancelled()) return false;
    // The queued step gives token tokens.size() + 1; the step ahead would give one more.
    if (static_cast<int64_t>(s.tokens.size()) + 2 > s.request.max_new_tokens) return false;
  }
  return true;
}

void Engine::launch(bool ahead) {
  Launched l;
  if (ahead) {
    // The queued step's rows, one column on: its last kernel advances the device's state (model/step_advance.h).
    const Launched& queued = in_flight_.back();
    l = queued;
    for (int64_t& c : l.columns) c += 1;
  } else {
    TORCH_INTERNAL_ASSERT(in_flight_.empty(), "a step from the host's state needs every queued step read first");
    // Rows: ids, columns, lengths, advance. Every queued step has been read, so the last copy from step_host_
    // has finished.
    int64_t* step = step_host_.data_ptr<int64_t>();
    std::fill(step, step + 4 * B_, 0);
    int64_t used = 1;
    for (int64_t b = 0; b < B_; ++b) {
      step[2 * B_ + b] = 1;  // an idle row attends to column 0 only (SDPA needs one key) and stays there
      Slot& s = *slots_[b];
      if (!s.active) continue;
      used = b + 1;
      step[b] = s.tokens.back();
      step[B_ + b] = s.length;          // the new token's column, and its position
      step[2 * B_ + b] = s.length + 1;  // it attends to its columns up to and including the new one
      step[3 * B_ + b] = 1;
      l.slots.push_back(b);
      l.epochs.push_back(s.epoch);
      l.columns.push_back(s.length);
    }
    step_dev_.copy_(step_host_, /*non_blocking=*/true);
    // The smallest power-of-two bucket holding every active slot (slots fill from 0): few requests cost few
    // rows; under CUDA graphs, one graph per bucket.
    l.rows = 1;
    while (l.rows < used) l.rows *= 2;
    l.rows = std::min(l.rows, B_);
    rows_changed_ = false;
  }
  int64_t width = 1;
  for (int64_t c : l.columns) width = std::max(width, c + 1);
  width_ = o_.cuda_graph ? S_ : width;
  run_body(l.rows);
  model::advance_greedy(logits_.narrow(0, 0, l.rows), step_dev_, ring_);
  l.event = static_cast<int>(launches_++ % 2);
  events_[l.event]->record();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.steps;
    stats_.steps_ahead += ahead;
  }
  in_flight_.push_back(std::move(l));
}

void Engine::run_body(int64_t n) {
  if (o_.cuda_graph) {
    auto& g = graphs_[n];
    if (!g && o_.autotune && fused_) {
      g = tune(n).graph;  // replayed the chosen variant
    } else {
      if (!g) g = model::capture_step_graph([this, n] { body(n, step_options()); }, m_.device());
      g->replay();
    }
  } else if (o_.autotune && fused_) {
    const auto it = eager_steps_.find(n);
    if (it == eager_steps_.end()) eager_steps_[n] = tune(n).options;  // ran the chosen variant
    else body(n, it->second);
  } else {
    body(n, step_options());
  }
}

void Engine::collect() {
  const Launched l = std::move(in_flight_.front());
  in_flight_.pop_front();
  events_[l.event]->wait();
  int64_t* ring = ring_.data_ptr<int64_t>();
  at::Tensor greedy, host;  // unused for greedy rows: their ids are in ring_
  std::vector<int64_t> active, ids;
  for (size_t i = 0; i < l.slots.size(); ++i) {
    const int64_t b = l.slots[i];
    Slot& s = *slots_[b];
    // Every entry this step wrote (its rows', and only theirs: model/step_advance.h) is reset as the step is
    // read, dropped and sampled rows' too, so that an entry read before the device wrote it shows as -1 rather
    // than an earlier step's id.
    int64_t& entry = ring[(l.columns[i] & 1) * B_ + b];
    const int64_t written = entry;
    entry = -1;
    if (!s.active || s.epoch != l.epochs[i]) continue;  // stopped since it was queued: its token is dropped
    s.length = l.columns[i] + 1;
    active.push_back(b);
    if (s.request.sampling.greedy()) {
      TORCH_INTERNAL_ASSERT(written >= 0, "slot ", b, ": its greedy id was read before the step wrote it");
      ids.push_back(written);
    } else {
      // Sampling reads this step's logits: no step ran ahead (can_run_ahead).
      TORCH_INTERNAL_ASSERT(in_flight_.empty(), "a step ran ahead of a sampled request's step");
      ids.push_back(choose(b, logits_, b, greedy, host));
    }
  }
  if (active.empty()) return;
  const auto lps = logprobs_of(logits_, active, active, ids);  // a slot's row of logits_ is its index
  for (size_t i = 0; i < active.size(); ++i) take(active[i], ids[i], lps[i]);
}

}  // namespace chatmill::infer
