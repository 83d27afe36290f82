// Generation controls: stopping (eos, stop strings, length), seeds, and sampling against HF's warpers.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "common/sample_model.h"
#include "common/test_env.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"

namespace chatmill {
namespace {

using testing::read_all;
using testing::SampleModel;
using testing::source_dir;


model::GenerationRequest request(std::vector<int64_t> prompt, int64_t n, double temperature = 0.0, uint64_t seed = 0) {
  model::GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = temperature;
  r.seed = seed;
  return r;
}

TEST(Generate, StopsAtMaxTokens) {
  SampleModel s;
  auto r = model::generate(s.m, {request(s.tok.encode("Once upon a time", true), 7)}, {&s.tok});
  EXPECT_EQ(r[0].tokens.size(), 7u);
  EXPECT_EQ(r[0].finish, model::FinishReason::Length);
  EXPECT_EQ(r[0].text, s.tok.decode(r[0].tokens));
}

TEST(Generate, StopsOnEosAndKeepsItOutOfTheText) {
  SampleModel s;
  auto prompt = s.tok.encode("The miller", true);
  auto free_run = model::generate(s.m, {request(prompt, 20)}, {&s.tok})[0];
  ASSERT_GE(free_run.tokens.size(), 6u);
  // Declare the 6th generated token an eos id: generation must stop right there.
  const int64_t eos = free_run.tokens[5];
  const size_t first = std::find(free_run.tokens.begin(), free_run.tokens.end(), eos) - free_run.tokens.begin();
  model::Model m2 = s.m;
  m2.config.eos_token_ids = {eos};
  auto r = model::generate(m2, {request(prompt, 20)}, {&s.tok})[0];
  EXPECT_EQ(r.finish, model::FinishReason::Eos);
  ASSERT_EQ(r.tokens.size(), first + 1);
  EXPECT_EQ(r.tokens.back(), eos);
  EXPECT_EQ(r.text, s.tok.decode(std::vector<int64_t>(r.tokens.begin(), r.tokens.end() - 1)));
}

TEST(Generate, StopsOnStopStringAndCutsTheText) {
  SampleModel s;
  auto prompt = s.tok.encode("The river", true);
  auto free_run = model::generate(s.m, {request(prompt, 40)}, {&s.tok})[0];
  ASSERT_GE(free_run.text.size(), 12u) << free_run.text;
  const std::string stop = free_run.text.substr(8, 3);
  auto req = request(prompt, 40);
  req.stop_strings = {"never-appears", stop};
  auto r = model::generate(s.m, {req}, {&s.tok})[0];
  EXPECT_EQ(r.finish, model::FinishReason::StopString);
  EXPECT_EQ(r.text, free_run.text.substr(0, free_run.text.find(stop)));
  EXPECT_LT(r.tokens.size(), free_run.tokens.size());
  // The tokens stop at the first step whose text contains the stop string.
  auto shorter = std::vector<int64_t>(r.tokens.begin(), r.tokens.end() - 1);
  EXPECT_EQ(s.tok.decode(shorter).find(stop), std::string::npos);
}

TEST(Generate, StopStringsNeedATokenizer) {
  SampleModel s;
  auto req = request({1, 5}, 4);
  req.stop_strings = {"x"};
  EXPECT_THROW(model::generate(s.m, {req}, model::GenerateOptions{}), Error);
}

TEST(Generate, SameSeedSameTextOtherSeedOtherText) {
  SampleModel s;
  auto prompt = s.tok.encode("Once upon a time", true);
  auto a = model::generate(s.m, {request(prompt, 30, 1.0, 42)}, {&s.tok})[0];
  auto b = model::generate(s.m, {request(prompt, 30, 1.0, 42)}, {&s.tok})[0];
  auto c = model::generate(s.m, {request(prompt, 30, 1.0, 43)}, {&s.tok})[0];
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NE(a.tokens, c.tokens);
}

TEST(Generate, SampledRequestGivesTheSameTokensAloneOrInABatch) {
  SampleModel s;
  auto p1 = s.tok.encode("The fox", true);
  auto p2 = s.tok.encode("In spring the traveller returned with seeds", true);
  auto r1 = request(p1, 25, 0.8, 7);
  r1.sampling.top_p = 0.9;
  auto r2 = request(p2, 25, 1.2, 9);
  r2.sampling.top_k = 40;
  auto alone1 = model::generate(s.m, {r1}, {&s.tok})[0];
  auto alone2 = model::generate(s.m, {r2}, {&s.tok})[0];
  auto both = model::generate(s.m, {r1, r2}, {&s.tok});
  EXPECT_EQ(both[0].tokens, alone1.tokens);
  EXPECT_EQ(both[1].tokens, alone2.tokens);
}

TEST(Generate, RejectsBadRequests) {
  SampleModel s;
  EXPECT_THROW(model::generate(s.m, {request({}, 4)}), Error);
  EXPECT_THROW(model::generate(s.m, {request({1, 100000}, 4)}), Error);
  auto bad = request({1}, 4, 1.0);
  bad.sampling.top_p = 0.0;
  EXPECT_THROW(model::generate(s.m, {bad}), Error);
}

TEST(Sampler, WarpersMatchTransformers) {
  auto ref = read_all(testing::testdata() / "ref" / "warpers.safetensors");
  for (int i = 0; ref.count("case" + std::to_string(i)); ++i) {
    const std::string key = "case" + std::to_string(i);
    at::Tensor params = ref[key + "_params"];
    model::SamplingParams p{params[0].item<double>(), static_cast<int64_t>(params[1].item<double>()),
                            params[2].item<double>()};
    at::Tensor ours = model::warp_logits(ref["logits"], p);
    at::Tensor theirs = ref[key];
    // Same tokens removed, and the kept scores equal.
    EXPECT_TRUE(at::equal(at::isinf(ours), at::isinf(theirs))) << key;
    at::Tensor kept = ~at::isinf(theirs);
    EXPECT_LE(testing::max_abs_diff(ours.masked_select(kept), theirs.masked_select(kept)), 1e-6) << key;
  }
}

TEST(Sampler, GreedyAndDegenerateSettingsPickTheArgmax) {
  at::Tensor logits = at::randn({3, 50}, at::kFloat);
  auto argmax = logits.argmax(-1);
  for (double u : {0.0, 0.5, 0.999}) {
    auto top1 = model::sample_tokens(logits, {1.0, 1, 1.0}, {u, u, u});
    auto tiny_p = model::sample_tokens(logits, {1.0, 0, 1e-6}, {u, u, u});
    for (int b = 0; b < 3; ++b) {
      EXPECT_EQ(top1[b], argmax[b].item<int64_t>());
      EXPECT_EQ(tiny_p[b], argmax[b].item<int64_t>());
    }
  }
  auto greedy = model::sample_tokens(logits, {0.0, 0, 1.0}, {});
  for (int b = 0; b < 3; ++b) EXPECT_EQ(greedy[b], argmax[b].item<int64_t>());
}

TEST(Sampler, DrawsFollowTheSoftmax) {
  at::Tensor logits = at::tensor({2.0f, 1.0f, 0.0f, -1.0f, -30.0f}).unsqueeze(0);
  at::Tensor probs = logits.softmax(-1)[0];
  model::SequenceRng rng(123);
  std::vector<int> counts(5, 0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) counts[model::sample_tokens(logits, {1.0, 0, 1.0}, {rng.uniform()})[0]]++;
  for (int k = 0; k < 5; ++k) {
    const double p = probs[k].item<double>();
    const double sigma = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(counts[k] / static_cast<double>(n), p, 5 * sigma + 1e-9) << "token " << k;
  }
  // top-k 2 never draws outside the two most likely tokens.
  for (int i = 0; i < 2000; ++i) EXPECT_LT(model::sample_tokens(logits, {1.0, 2, 1.0}, {rng.uniform()})[0], 2);
}

}  // namespace
}  // namespace chatmill
