// Topic analysis: k-means recovers well-separated clusters, and a prompt's embedding does not depend on the
// batch it is padded into.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "common/test_env.h"
#include "eval/topics.h"
#include "model/weights.h"

namespace chatmill {
namespace {

TEST(Topics, KMeansRecoversSeparatedClusters) {
  // Five tight bundles of unit vectors around random directions in 32 dimensions.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor centres = at::randn({5, 32}, gen, at::kFloat);
  std::vector<at::Tensor> points;
  std::vector<int64_t> truth;
  for (int64_t c = 0; c < 5; ++c)
    for (int i = 0; i < 40; ++i) {
      points.push_back(centres[c] + 0.05 * at::randn({32}, gen, at::kFloat));
      truth.push_back(c);
    }
  at::Tensor x = at::stack(points);
  x = x / x.norm(2, {-1}, true);
  auto r = eval::kmeans(x, 5, 100, 7);
  // Same partition as the truth, up to the clusters' names.
  std::map<int64_t, std::set<int64_t>> names;
  for (size_t i = 0; i < truth.size(); ++i) names[truth[i]].insert(r.assignment[i]);
  std::set<int64_t> used;
  for (auto& [t, s] : names) {
    EXPECT_EQ(s.size(), 1u) << "true cluster " << t << " was split";
    used.insert(*s.begin());
  }
  EXPECT_EQ(used.size(), 5u);
  EXPECT_LT(r.iterations, 100);
  auto again = eval::kmeans(x, 5, 100, 7);
  EXPECT_EQ(again.assignment, r.assignment);  // seeded
}

TEST(Topics, EmbeddingDoesNotDependOnTheBatch) {
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.vocab_size = tok.vocab_size();
  model::Model m(cfg, model::init_weights(cfg, 0.2, 5, at::kFloat, at::kCPU));
  std::vector<eval::TopicPrompt> prompts = {{"a:0", "A short prompt about the river."},
                                            {"b:0", "A much longer prompt about the mill, the wheel, the stones, the "
                                                    "flour and the bread that the baker made for the market."},
                                            {"c:0", "Why is the river never tired?"}};
  eval::TopicConfig tc;
  tc.batch_size = 3;
  at::Tensor batched = eval::embed_prompts(m, tok, prompts, tc);
  tc.batch_size = 1;
  at::Tensor alone = eval::embed_prompts(m, tok, prompts, tc);
  EXPECT_LE(testing::max_abs_diff(batched, alone), 1e-5);
  EXPECT_LE(testing::max_abs_diff(batched.norm(2, {-1}), at::ones({3})), 1e-5);
}

TEST(Topics, SamplerKeepsQualifyingPromptsWithinTheCap) {
  eval::TopicConfig tc;
  tc.max_prompts = 3;
  eval::TopicPromptSampler s(tc);
  auto conv = [](std::string id, std::string lang, std::string text) {
    data::Conversation c;
    c.id = id;
    c.language = lang;
    c.messages = {{data::Role::User, text}, {data::Role::Assistant, "ok"}};
    return c;
  };
  s.add(conv("x", "English", "too short"));
  s.add(conv("y", "German", "Eine deutsche Frage, die lang genug ist, um zu zählen."));
  for (int i = 0; i < 10; ++i) s.add(conv("e" + std::to_string(i), "English", "An English prompt long enough to count, number " + std::to_string(i)));
  EXPECT_EQ(s.seen(), 10);
  auto kept = s.take();
  EXPECT_EQ(kept.size(), 3u);
}

}  // namespace
}  // namespace chatmill
