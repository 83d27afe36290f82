#include "infer/step_autotune.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "model/fused_ops.h"
#include "model/persistent_decode.h"

namespace chatmill::infer {

namespace {

bool same(const model::FusedStepOptions& a, const model::FusedStepOptions& b) {
  return a.skinny_gemm == b.skinny_gemm && a.programmatic_launch == b.programmatic_launch && a.fold == b.fold &&
         a.l2_prefetch == b.l2_prefetch && a.persistent == b.persistent &&
         a.persistent_o_prefetch == b.persistent_o_prefetch && a.tile_gemm == b.tile_gemm &&
         a.tile_min_rows == b.tile_min_rows && a.tile_fold == b.tile_fold && a.o_stage == b.o_stage &&
         a.head_tile_gemm == b.head_tile_gemm && a.early_kv == b.early_kv;
}

std::string milliseconds(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f ms", 1e3 * seconds);
  return buf;
}

}  // namespace

std::vector<StepVariant> step_variants(const model::FusedStepOptions& configured, int64_t rows,
                                       bool persistent_applies, bool tile_applies) {
  std::vector<StepVariant> out{{"configured", configured}};
  auto add = [&](std::string name, const model::FusedStepOptions& o) {
    for (const auto& v : out)
      if (same(v.options, o)) return;
    out.push_back({std::move(name), o});
  };
  if (rows < 1 || rows > model::fused::kTileRows) return out;
  // What the configured step runs at these rows (fused_decode.cpp's order): the persistent step where it applies,
  // then the tile GEMM's five-kernel step (tile_fold), then the folded skinny step (whose o and down take the
  // tile GEMM where `tiled`), then the unfolded step (all tile GEMM where `tiled`).
  const bool persistent_fits =
      persistent_applies && configured.fold && configured.skinny_gemm && rows <= model::fused::kPersistentRows;
  const bool persistent_runs = persistent_fits && configured.persistent;
  const bool tiled = !persistent_runs && tile_applies && configured.tile_gemm && rows >= configured.tile_min_rows;
  const bool tile_fold_runs = tiled && configured.fold && configured.tile_fold;
  const bool folded_skinny_runs = !persistent_runs && !tile_fold_runs && configured.fold && configured.skinny_gemm &&
                                  rows <= model::fused::kSkinnyRows;
  // Skinny kernels run (and their L2 prefetch matters): the persistent or folded skinny step, or the unfolded step
  // without the tile GEMM.
  const bool skinny_runs = configured.skinny_gemm && rows <= model::fused::kSkinnyRows && !tile_fold_runs &&
                           (configured.fold || !tiled);
  if (persistent_fits) {
    model::FusedStepOptions p = configured;
    p.persistent = true;
    add("persistent", p);
    p.persistent_o_prefetch = !configured.persistent_o_prefetch;
    add(p.persistent_o_prefetch ? "persistent, o prefetch" : "persistent, no o prefetch", p);
    p.persistent = false;
    p.persistent_o_prefetch = configured.persistent_o_prefetch;
    add("not persistent", p);
  }
  if (tile_applies) {
    model::FusedStepOptions t = configured;
    t.tile_gemm = true;
    t.persistent = false;
    t.tile_min_rows = std::min(configured.tile_min_rows, rows);  // at 1 or 2 rows, in the skinny GEMM's place
    add("tile GEMM", t);
    if (configured.fold) {
      t.tile_fold = !configured.tile_fold;
      add(t.tile_fold ? "tile GEMM, norms in its loads" : "tile GEMM, norms apart", t);
    }
    if (tiled) {
      model::FusedStepOptions c = configured;
      c.tile_gemm = false;
      add("no tile GEMM", c);
    }
  }
  if (skinny_runs) {
    model::FusedStepOptions l = configured;
    l.l2_prefetch = !configured.l2_prefetch;
    add(l.l2_prefetch ? "L2 prefetch" : "no L2 prefetch", l);
  }
  // The folded step's o projection staged during attention (or not), where that step runs.
  if (folded_skinny_runs) {
    model::FusedStepOptions o = configured;
    o.o_stage = !configured.o_stage;
    add(o.o_stage ? "o staged" : "o not staged", o);
  }
  // Attention's cache loads before its wait (or after), where attention is a kernel of its own.
  if (!persistent_runs) {
    model::FusedStepOptions e = configured;
    e.early_kv = !configured.early_kv;
    add(e.early_kv ? "early kv" : "no early kv", e);
  }
  return out;
}

double relative_error(const at::Tensor& got, const at::Tensor& ref) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (!got.defined() || !ref.defined() || !got.sizes().equals(ref.sizes())) return inf;
  if (got.numel() == 0) return 0;
  const int64_t rows = got.dim() < 2 ? 1 : got.size(0);
  const at::Tensor g = got.to(at::kDouble).reshape({rows, -1}), r = ref.to(got.device(), at::kDouble).reshape({rows, -1});
  if (!at::isfinite(g).all().item<bool>()) return inf;
  const at::Tensor diff = (g - r).norm(2, {1}), norm = r.norm(2, {1});  // (rows)
  // Rows of ref that are zero: 0 where got's is too, else infinite.
  const at::Tensor per_row = at::where(norm > 0, diff / norm, at::where(diff > 0, at::full_like(diff, inf), at::zeros_like(diff)));
  return per_row.max().item<double>();
}

size_t choose_trial(std::vector<VariantTrial>& trials, double max_error) {
  size_t best = 0;
  for (size_t i = 0; i < trials.size(); ++i) {
    VariantTrial& t = trials[i];
    t.accepted = t.ran && (i == 0 || t.error <= max_error);  // a NaN error fails the comparison
    if (t.accepted && (!trials[best].accepted || t.seconds < trials[best].seconds)) best = i;
  }
  return best;
}

std::string describe(const StepChoice& c) {
  std::string s = "rows " + std::to_string(c.rows) + ": ";
  if (c.trials.empty()) return s + "no trials";
  const VariantTrial& chosen = c.trials[c.chosen];
  if (c.trials.size() == 1) return s + chosen.name + " (the only variant here)";
  s += chosen.name + " (" + milliseconds(chosen.seconds) + " a step; ";
  for (size_t i = 0; i < c.trials.size(); ++i) {
    const VariantTrial& t = c.trials[i];
    if (i > 0) s += ", ";
    s += t.name + " ";
    if (!t.ran) {
      s += "failed: " + t.failure;
      continue;
    }
    char err[32];
    std::snprintf(err, sizeof err, "%.1e", t.error);
    s += milliseconds(t.seconds) + (i == 0 ? "" : std::string(" error ") + err + (t.accepted ? "" : " rejected"));
  }
  return s + ")";
}

}  // namespace chatmill::infer
