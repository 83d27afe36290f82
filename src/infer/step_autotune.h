// Choosing the decode step's kernels on the device that runs them (EngineOptions::autotune). Which step is
// fastest depends on the card and the batch bucket: the skinny GEMM against the tile GEMM at a few rows, the
// persistent step's grid barriers against kernel boundaries. The engine captures each variant that applies to a
// bucket in a CUDA graph, checks its logits against the configured step's on the same inputs, times the replays,
// and keeps the fastest that passed. This file holds the device-free parts: the variants, the check, the choice.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "model/fused_decode.h"

namespace chatmill::infer {

struct StepVariant {
  std::string name;  // "configured", "persistent", "tile GEMM", ... (what differs from the configured step)
  model::FusedStepOptions options;
};

// The configured step first (the reference the others are checked against), then each variant that changes one
// feature of it (with what that feature needs: the tile GEMM's variant also sets its fewest rows and leaves the
// persistent step) and applies at `rows` rows: the persistent step with its o-projection prefetch as configured
// and toggled (rows <= fused::kPersistentRows; needs fold and the skinny GEMM), the tile GEMM (rows <=
// fused::kTileRows) with its norm fold toggled (with fold), the step without the tile GEMM where the configured
// step takes it, the skinny GEMM's L2 prefetch toggled where skinny kernels run (rows <= fused::kSkinnyRows: the
// folded step's q/k/v and gate/up also beside the tile GEMM), and the staged o projection toggled where the folded
// skinny step runs. `persistent_applies` and `tile_applies`: what
// fused::persistent_applies and fused::tile_applies say for this model at `rows` rows. Past 16 rows the
// configured step is the only one.
std::vector<StepVariant> step_variants(const model::FusedStepOptions& configured, int64_t rows,
                                       bool persistent_applies, bool tile_applies);

// The worst row's ||got_r - ref_r|| / ||ref_r|| over the rows of dim 0 (a 0-d or 1-d tensor is one row), in
// float64 on got's device: per row, so that one wrong row among 16 is not diluted by the others. +inf when the
// shapes differ, got has a NaN or an infinity, or a row of ref is zero where got's is not; 0 for rows both zero.
double relative_error(const at::Tensor& got, const at::Tensor& ref);

struct VariantTrial {
  std::string name;
  bool ran = false;      // captured and replayed; false with `failure` set when its capture threw
  std::string failure;
  double error = 0;      // relative_error against the configured step's: the worse of its logits and of the
                         // cache columns it wrote
  double seconds = 0;    // per step, the median of the timed rounds
  bool accepted = false; // ran, and error <= the tolerance
};

// What the engine chose for one bucket: trials in step_variants' order, trial 0 the configured step.
struct StepChoice {
  int64_t rows = 0;
  std::vector<VariantTrial> trials;
  size_t chosen = 0;
};

// Sets each trial's `accepted` (ran, error <= max_error) and returns the fastest accepted; 0, the configured step,
// when no other passed. Trial 0 is accepted whenever it ran: it is the reference.
size_t choose_trial(std::vector<VariantTrial>& trials, double max_error);

// One line for logs and benchmark rows: "rows 16: tile GEMM (3.912 ms a step; configured 4.301 ms, ...)".
std::string describe(const StepChoice& c);

}  // namespace chatmill::infer
