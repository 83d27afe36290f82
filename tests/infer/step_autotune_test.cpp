// Autotune of the decode step (EngineOptions::autotune, infer/step_autotune.h): which variants each bucket
// tries, the logits check, the choice (the fastest that matches, never a fast wrong one), and on a GPU the
// engine's choices per bucket, each within bf16 rounding of the configured step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "common/error.h"
#include "infer/engine.h"
#include "infer/engine_check.h"
#include "infer/step_autotune.h"
#include "model/weights.h"

namespace chatmill {
namespace {

std::vector<std::string> names(const std::vector<infer::StepVariant>& vs) {
  std::vector<std::string> out;
  for (const auto& v : vs) out.push_back(v.name);
  return out;
}

const infer::StepVariant& named(const std::vector<infer::StepVariant>& vs, const std::string& name) {
  for (const auto& v : vs)
    if (v.name == name) return v;
  throw std::runtime_error("no variant " + name);
}

TEST(StepAutotune, VariantsFollowTheRowsAndWhatApplies) {
  const model::FusedStepOptions configured;  // the defaults: fold, the tile GEMM from 1 row, no persistent step
  using V = std::vector<std::string>;
  for (int64_t rows : {1, 2}) {
    const auto vs = infer::step_variants(configured, rows, true, true);
    // The folded step's q/k/v and gate/up stay the skinny GEMM's beside the tile GEMM: its L2 prefetch matters.
    EXPECT_EQ(names(vs), (V{"configured", "persistent", "persistent, o prefetch", "tile GEMM, norms in its loads",
                            "no tile GEMM", "L2 prefetch", "o staged", "no early kv"}))
        << rows;
    EXPECT_TRUE(named(vs, "persistent").options.persistent);
    EXPECT_FALSE(named(vs, "persistent").options.persistent_o_prefetch);
    EXPECT_TRUE(named(vs, "persistent, o prefetch").options.persistent_o_prefetch);
    const auto& folded_tile = named(vs, "tile GEMM, norms in its loads").options;
    EXPECT_TRUE(folded_tile.tile_gemm && folded_tile.tile_fold);
    EXPECT_EQ(folded_tile.tile_min_rows, 1);
    EXPECT_FALSE(named(vs, "no tile GEMM").options.tile_gemm);  // the skinny GEMM's folded step alone
    EXPECT_TRUE(named(vs, "o staged").options.o_stage);
    EXPECT_FALSE(named(vs, "o staged").options.persistent);
    EXPECT_FALSE(vs[0].options.persistent || vs[0].options.l2_prefetch || vs[0].options.tile_fold);
    EXPECT_TRUE(vs[0].options.early_kv);
    EXPECT_FALSE(named(vs, "no early kv").options.early_kv);
  }
  // Past the skinny GEMM's rows the tile GEMM's variants; past 16 rows nothing but the configured step.
  for (int64_t rows : {3, 8, 16}) {
    const auto vs = infer::step_variants(configured, rows, true, true);
    EXPECT_EQ(names(vs), (V{"configured", "tile GEMM, norms in its loads", "no tile GEMM", "no early kv"})) << rows;
    EXPECT_TRUE(vs[1].options.tile_fold);
    EXPECT_FALSE(vs[2].options.tile_gemm);
  }
  EXPECT_EQ(names(infer::step_variants(configured, 32, true, true)), V{"configured"});
  // What does not apply is not tried: without the tile GEMM the skinny GEMM serves 1 and 2 rows, and its L2
  // prefetch is a variant there.
  EXPECT_EQ(names(infer::step_variants(configured, 1, false, false)), (V{"configured", "L2 prefetch", "o staged", "no early kv"}));
  EXPECT_EQ(names(infer::step_variants(configured, 8, true, false)), (V{"configured", "no early kv"}));
  model::FusedStepOptions no_fold = configured;
  no_fold.fold = false;  // the persistent step, the tile fold and the staged o are the folded step's
  EXPECT_EQ(names(infer::step_variants(no_fold, 1, true, true)), (V{"configured", "no tile GEMM", "no early kv"}));
  model::FusedStepOptions cublas = configured;
  cublas.skinny_gemm = false;  // nor the skinny GEMM's prefetch or staging
  EXPECT_EQ(names(infer::step_variants(cublas, 1, true, true)),
            (V{"configured", "tile GEMM, norms in its loads", "no tile GEMM", "no early kv"}));
  // The skinny GEMM alone at 1 and 2 rows (tile_min_rows 3): the tile GEMM from this bucket is a variant.
  model::FusedStepOptions skinny = configured;
  skinny.tile_min_rows = 3;
  const auto vs = infer::step_variants(skinny, 2, true, true);
  EXPECT_EQ(names(vs), (V{"configured", "persistent", "persistent, o prefetch", "tile GEMM",
                          "tile GEMM, norms in its loads", "L2 prefetch", "o staged", "no early kv"}));
  EXPECT_EQ(named(vs, "tile GEMM").options.tile_min_rows, 2);  // in the skinny GEMM's place at this bucket
  EXPECT_TRUE(named(vs, "L2 prefetch").options.l2_prefetch);
}

TEST(StepAutotune, VariantsNeverRepeatTheConfiguredStep) {
  model::FusedStepOptions persistent;
  persistent.persistent = true;
  persistent.l2_prefetch = true;
  using V = std::vector<std::string>;
  const auto vs = infer::step_variants(persistent, 1, true, true);
  // "tile GEMM" would be "not persistent" again (the tile GEMM from 1 row is the default); the staged o and the
  // early cache loads are the steps' with kernel boundaries, not the persistent step's.
  EXPECT_EQ(names(vs), (V{"configured", "persistent, o prefetch", "not persistent", "tile GEMM, norms in its loads",
                          "no L2 prefetch"}));
  EXPECT_FALSE(named(vs, "not persistent").options.persistent);
  EXPECT_TRUE(named(vs, "not persistent").options.l2_prefetch);
  EXPECT_FALSE(named(vs, "tile GEMM, norms in its loads").options.persistent);
  model::FusedStepOptions tiled;
  tiled.tile_fold = true;
  EXPECT_EQ(names(infer::step_variants(tiled, 8, true, true)), (V{"configured", "tile GEMM, norms apart", "no tile GEMM", "no early kv"}));
  // At 1 and 2 rows the five-kernel tile step runs no skinny kernel: neither its prefetch nor the staged o applies.
  for (int64_t rows : {1, 2})
    EXPECT_EQ(names(infer::step_variants(tiled, rows, true, true)),
              (V{"configured", "persistent", "persistent, o prefetch", "tile GEMM, norms apart", "no tile GEMM", "no early kv"}))
        << rows;
}

TEST(StepAutotune, RelativeErrorIsTheWorstRowsL2GapOverTheReference) {
  const at::Tensor ref = at::tensor({3.0, 4.0}, at::kFloat);
  EXPECT_EQ(infer::relative_error(ref.clone(), ref), 0);
  EXPECT_NEAR(infer::relative_error(at::tensor({3.0, 4.5}, at::kFloat), ref), 0.1, 1e-12);
  EXPECT_NEAR(infer::relative_error(at::tensor({3.0, 4.5}, at::kFloat).to(at::kBFloat16), ref), 0.1, 1e-12);  // 4.5 is exact in bf16
  constexpr double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(infer::relative_error(at::tensor({3.0, std::nan("")}, at::kFloat), ref), inf);
  EXPECT_EQ(infer::relative_error(at::tensor({3.0, inf}, at::kFloat), ref), inf);
  EXPECT_EQ(infer::relative_error(at::tensor({3.0, 4.0, 0.0}, at::kFloat), ref), inf);  // another shape
  EXPECT_EQ(infer::relative_error(at::zeros({2}), at::zeros({2})), 0);
  EXPECT_EQ(infer::relative_error(at::ones({2}), at::zeros({2})), inf);
  EXPECT_EQ(infer::relative_error(at::Tensor(), ref), inf);
  // Per row of dim 0: one wrong row of 16 counts in full, not diluted by the 15 right ones.
  const at::Tensor rows = at::ones({16, 8});
  at::Tensor one_wrong = rows.clone();
  one_wrong[3].mul_(1.5);
  EXPECT_NEAR(infer::relative_error(one_wrong, rows), 0.5, 1e-12);
  EXPECT_NEAR(infer::relative_error(one_wrong.view({16, 2, 4}), rows.view({16, 2, 4})), 0.5, 1e-12);  // rows of any rank
  at::Tensor zero_row = rows.clone();
  zero_row[5].zero_();
  EXPECT_EQ(infer::relative_error(zero_row, zero_row.clone()), 0);  // a zero row matched by a zero row
  at::Tensor not_zero = zero_row.clone();
  not_zero[5][0] = 1e-3;
  EXPECT_EQ(infer::relative_error(not_zero, zero_row), inf);
}

infer::VariantTrial trial(std::string name, double ms, double error, bool ran = true) {
  infer::VariantTrial t;
  t.name = std::move(name);
  t.seconds = 1e-3 * ms;
  t.error = error;
  t.ran = ran;
  if (!ran) t.failure = "boom";
  return t;
}

TEST(StepAutotune, ChoosesTheFastestVariantWhoseLogitsMatch) {
  std::vector<infer::VariantTrial> ts{trial("configured", 4.0, 0), trial("wrong", 2.0, 0.9),
                                      trial("good", 3.0, 0.01), trial("slower", 3.5, 0.0),
                                      trial("failed", 0.0, 0, false), trial("nan", 1.0, std::nan(""))};
  EXPECT_EQ(infer::choose_trial(ts, 0.05), 2u);
  const std::vector<bool> accepted{true, false, true, true, false, false};
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(ts[i].accepted, accepted[i]) << ts[i].name;
  // An error at the tolerance passes; above it does not.
  std::vector<infer::VariantTrial> edge{trial("configured", 4.0, 0), trial("at", 3.0, 0.05)};
  EXPECT_EQ(infer::choose_trial(edge, 0.05), 1u);
  EXPECT_EQ(infer::choose_trial(edge, 0.049), 0u);
  EXPECT_FALSE(edge[1].accepted);
  // The configured step stays when it is the fastest, or when nothing else passed.
  std::vector<infer::VariantTrial> fastest{trial("configured", 2.0, 0), trial("other", 3.0, 0)};
  EXPECT_EQ(infer::choose_trial(fastest, 0.05), 0u);
  std::vector<infer::VariantTrial> none{trial("configured", 4.0, 0), trial("wrong", 1.0, 1.0),
                                        trial("failed", 0.0, 0, false)};
  EXPECT_EQ(infer::choose_trial(none, 0.05), 0u);
  EXPECT_TRUE(none[0].accepted);
}

TEST(StepAutotune, DescribeNamesTheChoiceAndEveryTrial) {
  infer::StepChoice c;
  c.rows = 16;
  c.trials = {trial("configured", 4.301, 0), trial("tile GEMM", 3.912, 2.1e-3), trial("wrong", 1.0, 0.5),
              trial("persistent", 0, 0, false)};
  c.chosen = infer::choose_trial(c.trials, 0.05);
  EXPECT_EQ(infer::describe(c),
            "rows 16: tile GEMM (3.912 ms a step; configured 4.301 ms, tile GEMM 3.912 ms error 2.1e-03, "
            "wrong 1.000 ms error 5.0e-01 rejected, persistent failed: boom)");
  infer::StepChoice only;
  only.rows = 32;
  only.trials = {trial("configured", 0, 0)};
  EXPECT_EQ(infer::describe(only), "rows 32: configured (the only variant here)");
}

// Autotune with the eager step (the CPU's default) leaves the engine as it was; a tolerance that is not positive
// is refused with the field's name.
TEST(StepAutotune, EagerStepEngineIgnoresItAndABadToleranceIsRefused) {
  const model::LlamaConfig cfg = model::llama2_debug();
  model::Model m(cfg, model::init_weights(cfg, 0.05, 3, at::kFloat, at::kCPU));
  infer::EngineOptions o{2, 64};
  o.autotune = true;
  infer::Engine engine(m, nullptr, o);
  infer::EngineRequest r;
  r.prompt = {1, 5, 9};
  r.max_new_tokens = 4;
  r.stop_on_eos = false;
  const auto got = engine.run({r});
  EXPECT_EQ(got.at(0).tokens.size(), 4u);
  EXPECT_TRUE(engine.step_choices().empty());
  infer::EngineOptions bad = o;
  bad.autotune_tolerance = 0;
  try {
    infer::Engine refused(m, nullptr, bad);
    FAIL() << "a tolerance of 0 was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("autotune_tolerance must be positive, got 0"), std::string::npos) << e.what();
  }
}

// Without CUDA graphs the engine tunes eagerly: on the CPU the fused step is LibTorch's ops, and its variants
// here (the skinny GEMM's L2 prefetch, the staged o) run the same ops, so each bucket's trials agree bit for bit (NaN poured into
// the step's cache columns first, rewritten by each run) and the tokens are the untuned engine's.
TEST(StepAutotune, EagerEngineTunesEachBucketOnceAndKeepsItsTokens) {
  const model::LlamaConfig cfg = model::llama2_debug();
  model::Model m(cfg, model::init_weights(cfg, 0.05, 5, at::kFloat, at::kCPU));
  std::vector<infer::EngineRequest> reqs(2);
  for (size_t i = 0; i < reqs.size(); ++i) {
    for (int64_t t = 0; t < 3 + 4 * static_cast<int64_t>(i); ++t) reqs[i].prompt.push_back(5 + (t * 31 + i) % 200);
    reqs[i].max_new_tokens = 12 - 6 * static_cast<int64_t>(i);  // slot 1 leaves first: buckets 2, then 1
    reqs[i].stop_on_eos = false;
  }
  infer::EngineOptions plain{2, 64, false, infer::StepKind::Fused};
  infer::EngineOptions tuned = plain;
  tuned.autotune = true;
  infer::Engine a(m, nullptr, tuned), b(m, nullptr, plain);
  const auto got = a.run(reqs), want = b.run(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(got[i].tokens, want[i].tokens) << "request " << i;
  const auto choices = a.step_choices();
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[0].rows, 2);
  EXPECT_EQ(choices[1].rows, 1);
  for (const auto& c : choices) {
    ASSERT_EQ(c.trials.size(), 4u) << infer::describe(c);
    EXPECT_EQ(c.trials[1].name, "L2 prefetch");
    EXPECT_EQ(c.trials[2].name, "o staged");
    EXPECT_EQ(c.trials[3].name, "no early kv");
    for (const auto& t : c.trials) {
      EXPECT_TRUE(t.ran && t.accepted) << infer::describe(c);
      EXPECT_EQ(t.error, 0) << infer::describe(c);
      EXPECT_GT(t.seconds, 0) << infer::describe(c);
    }
  }
  EXPECT_TRUE(b.step_choices().empty());
}

// On a GPU: every bucket the requests reach is tuned once; each variant that ran matches the configured step
// (all of them are correct kernels, so none is rejected); the one kept is the fastest; and the tokens stay within
// bf16 rounding of the engine without autotune.
TEST(GpuEngine, AutotuneKeepsTheFastestVerifiedStepPerBucket) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  const model::LlamaConfig cfg = testing::gpu_engine_config();
  const at::Device dev("cuda:0");
  model::Model m(cfg, model::init_weights(cfg, 0.05, 13, at::kBFloat16, dev));
  // More than 8 slots; the first slot's request the longest, so that the batch drains from its top: buckets
  // 16 down to 1 (the bucket holds every slot up to the last active one).
  std::vector<infer::EngineRequest> reqs(12);
  for (size_t i = 0; i < reqs.size(); ++i) {
    for (int64_t t = 0; t < 3 + 5 * static_cast<int64_t>(i); ++t) reqs[i].prompt.push_back(3 + (t * 43 + i) % 200);
    reqs[i].max_new_tokens = 6 + static_cast<int64_t>(11 - i) * 4;
    reqs[i].stop_on_eos = false;
  }
  infer::EngineOptions plain{16, 160, true, infer::StepKind::Fused};
  infer::EngineOptions tuned = plain;
  tuned.autotune = true;
  infer::Engine a(m, nullptr, tuned), b(m, nullptr, plain);
  const double worst = testing::worst_logprob_gap(a, b, reqs);
  std::printf("worst |logprob autotuned - default| %.2e\n", worst);
  EXPECT_LT(worst, 0.05);
  const auto choices = a.step_choices();
  ASSERT_FALSE(choices.empty());
  std::set<int64_t> buckets;
  for (const auto& c : choices) {
    std::printf("%s\n", infer::describe(c).c_str());
    EXPECT_TRUE(buckets.insert(c.rows).second) << "bucket " << c.rows << " tuned twice";
    ASSERT_FALSE(c.trials.empty());
    EXPECT_EQ(c.trials[0].name, "configured");
    EXPECT_EQ(c.trials[0].error, 0);
    EXPECT_GE(c.trials.size(), 2u) << c.rows;  // the tile GEMM applies up to 16 rows
    if (c.rows <= 2)  // head dim 64: the persistent step applies
      EXPECT_TRUE(std::any_of(c.trials.begin(), c.trials.end(), [](const auto& t) { return t.name == "persistent"; }))
          << c.rows;
    for (const auto& t : c.trials) {
      EXPECT_TRUE(t.ran) << c.rows << " " << t.name << ": " << t.failure;
      EXPECT_TRUE(t.accepted) << c.rows << " " << t.name << " error " << t.error;
      EXPECT_GT(t.seconds, 0) << c.rows << " " << t.name;
      EXPECT_LT(t.error, 2e-2) << c.rows << " " << t.name << ": 3 layers, so within a few bf16 roundings";
    }
  }
  EXPECT_TRUE(buckets.count(16) && buckets.count(1)) << "the batch filled and drained";
}

}  // namespace
}  // namespace chatmill
