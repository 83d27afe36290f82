// Subset builders on the shipped sample, each checked against a brute-force recomputation, and the
// byte-for-byte reproducibility of `data build`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <set>

#include "common/sha256.h"
#include "common/test_env.h"
#include "data/conversation_source.h"
#include "data/minhash.h"
#include "data/subsets/build.h"
#include "data/subsets/moderation_set.h"
#include "data/subsets/subset_builder.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

fs::path sample(const std::string& name) { return testing::source_dir() / "data" / "sample" / name; }

std::vector<data::Conversation> conversations() {
  std::vector<data::Conversation> out;
  data::ReadReport r;
  data::read_conversations({sample("lmsys_chat_sample.jsonl")}, data::OnBadRecord::Fail, r,
                           [&](data::Conversation&& c) { out.push_back(std::move(c)); });
  return out;
}

// Builds the sample config into `dir`; returns the output folder.
fs::path build(const std::string& name, std::vector<std::string> overrides = {}) {
  auto dir = testing::scratch(name);
  overrides.push_back("output_dir=" + (dir / "out").string());
  const auto src = testing::source_dir();
  // The config's paths are relative to the repository.
  std::vector<std::string> abs = {"inputs=[" + (src / "data/sample/lmsys_chat_sample.jsonl").string() + "]",
                                  "subsets.moderation.prompt=" + (src / "data/prompts/moderation_v1.txt").string(),
                                  "subsets.moderation.teacher=" + sample("moderation_teacher_sample.jsonl").string(),
                                  "subsets.moderation.sharegpt=[" + sample("sharegpt_sample.json").string() + "]",
                                  "subsets.upvote.votes=" + sample("arena_votes_sample.jsonl").string()};
  abs.insert(abs.end(), overrides.begin(), overrides.end());
  data::build_subsets(src / "configs/data/sample_subsets.yaml", abs);
  return dir / "out";
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

TEST(Subsets, RebuildingGivesTheSameBytes) {
  auto a = build("subsets_a"), b = build("subsets_b");
  int files = 0;
  for (auto& e : fs::recursive_directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    auto other = b / fs::relative(e.path(), a);
    ASSERT_TRUE(fs::exists(other)) << other;
    EXPECT_EQ(sha256_file(e.path()), sha256_file(other)) << fs::relative(e.path(), a);
    ++files;
  }
  EXPECT_EQ(files, 10);  // five subsets, each a data file and a manifest
  auto m = read_json(a / "highquality" / "manifest.json");
  EXPECT_EQ(m["inputs"][0]["sha256"], sha256_file(sample("lmsys_chat_sample.jsonl")));
  EXPECT_EQ(m["outputs"][0]["sha256"], sha256_file(a / "highquality" / "highquality.jsonl"));
  EXPECT_EQ(m["seed"], 0);
}

TEST(Subsets, HighQualityAndUpvoteMatchBruteForce) {
  auto out = build("subsets_filters");
  const std::set<std::string> hq = {"gpt-3.5-turbo", "gpt-4", "claude-1", "claude-2", "claude-instant-1"};
  const std::set<std::string> closed = {"gpt-3.5-turbo", "gpt-4", "claude-1", "claude-2", "claude-instant-1", "palm-2"};
  std::set<std::string> winners;
  for (const auto& v : read_jsonl(sample("arena_votes_sample.jsonl"))) {
    if (v["winner"] == "model_a") winners.insert(v["conversation_a_id"].get<std::string>());
    if (v["winner"] == "model_b") winners.insert(v["conversation_b_id"].get<std::string>());
  }
  std::vector<std::string> want_hq, want_up;
  for (const auto& c : conversations()) {
    if (hq.count(c.model)) want_hq.push_back(c.id);
    if (!closed.count(c.model) && winners.count(c.id)) want_up.push_back(c.id);
  }
  std::vector<std::string> got_hq, got_up;
  for (const auto& j : read_jsonl(out / "highquality" / "highquality.jsonl")) got_hq.push_back(j["conversation_id"]);
  for (const auto& j : read_jsonl(out / "upvote" / "upvote.jsonl")) got_up.push_back(j["conversation_id"]);
  EXPECT_EQ(got_hq, want_hq);
  EXPECT_EQ(got_up, want_up);
  EXPECT_FALSE(want_hq.empty());
  EXPECT_FALSE(want_up.empty());
  // Written records parse back to the same conversations (all columns kept).
  std::vector<data::Conversation> back;
  data::ReadReport r;
  data::read_conversations({out / "highquality" / "highquality.jsonl"}, data::OnBadRecord::Fail, r,
                           [&](data::Conversation&& c) { back.push_back(std::move(c)); });
  auto all = conversations();
  for (const auto& c : back) {
    auto it = std::find_if(all.begin(), all.end(), [&](auto& x) { return x.id == c.id; });
    ASSERT_NE(it, all.end());
    EXPECT_EQ(data::lmsys_to_json(*it), data::lmsys_to_json(c));
  }
}

TEST(Subsets, JailbreakTakesTheTopAttemptsOfTheModelsWithMostAttempts) {
  auto out = build("subsets_jailbreak", {"subsets.jailbreak.per_model=2", "subsets.jailbreak.num_models=3"});
  std::map<std::string, std::vector<std::pair<double, std::string>>> attempts;
  for (const auto& c : conversations())
    if (double s = data::max_flagged_user_score(c); s > 0) attempts[c.model].push_back({-s, c.id});
  std::vector<std::pair<std::string, size_t>> models;
  for (auto& [m, v] : attempts) models.push_back({m, v.size()});
  std::stable_sort(models.begin(), models.end(), [](auto& a, auto& b) { return a.second > b.second; });
  std::vector<std::string> want;
  for (size_t i = 0; i < 3; ++i) {
    auto v = attempts[models[i].first];
    std::sort(v.begin(), v.end());
    for (size_t k = 0; k < std::min<size_t>(2, v.size()); ++k) want.push_back(v[k].second);
  }
  std::vector<std::string> got;
  for (const auto& j : read_jsonl(out / "jailbreak" / "jailbreak.jsonl")) got.push_back(j["conversation_id"]);
  EXPECT_EQ(got, want);
}

TEST(Subsets, ModerationSetTakesTopScoresPerCategoryWithTargets) {
  auto out = build("subsets_moderation", {"subsets.moderation.per_category=3", "subsets.moderation.non_flagged=10",
                                          "subsets.moderation.sharegpt_count=5"});
  auto entries = read_json(out / "moderation" / "moderation.json");
  ASSERT_TRUE(entries.is_array());
  // Brute force: per category, every flagged user message with its category score, best first.
  std::map<std::string, std::vector<std::pair<double, std::string>>> by_cat;
  for (const auto& c : conversations())
    for (size_t i = 0; i < c.messages.size(); ++i)
      if (c.messages[i].role == data::Role::User && c.moderation[i].flagged)
        for (int t = 0; t < 5; ++t)
          if (c.moderation[i].top_flags() & (1u << t))
            by_cat[data::kTopCategories[t]].push_back({-c.moderation[i].top_score(t), data::message_id(c, i)});
  std::vector<std::string> want;
  std::set<std::string> used;
  for (const char* cat : data::kModerationSetCategories) {
    auto v = by_cat[cat];
    std::sort(v.begin(), v.end());
    for (size_t k = 0; k < std::min<size_t>(3, v.size()); ++k)
      if (used.insert(v[k].second).second) want.push_back(v[k].second);
  }
  std::vector<std::string> got;
  int benign = 0, sharegpt = 0;
  for (const auto& e : entries) {
    const std::string source = e["source"];
    if (source == "lmsys-flagged") got.push_back(e["message_id"]);
    benign += source == "lmsys-not-flagged";
    sharegpt += source == "sharegpt";
    if (source == "sharegpt") continue;
    const std::string human = e["conversations"][0]["value"], gpt = e["conversations"][1]["value"];
    EXPECT_NE(human.find("1. hate\n2. self-harm\n3. sexual\n4. violence\n5. harassment\n6. None of the above"), std::string::npos);
    EXPECT_NE(gpt.find("[["), std::string::npos);
    if (source == "lmsys-not-flagged") EXPECT_NE(gpt.find("[[6. None of the above]]"), std::string::npos) << gpt;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(benign, 10);
  EXPECT_EQ(sharegpt, 5);
  auto m = read_json(out / "moderation" / "manifest.json");
  EXPECT_EQ(m["counts"]["explanations"]["teacher"].get<int>(), static_cast<int>(want.size()));  // the sample's teacher covers every flagged message
  EXPECT_EQ(data::ModerationSetBuilder::target("Because.", {0, 3}), "Because. [[1. hate]] [[4. violence]]");
}

TEST(Subsets, ArenaHardRemovesExactAndNearDuplicates) {
  auto out = build("subsets_arena");
  auto m = read_json(out / "arena_hard" / "manifest.json")["counts"];
  EXPECT_GE(m["exact_duplicates"].get<int>(), 2);  // the sample repeats a prompt three times
  EXPECT_GE(m["near_duplicates"].get<int>(), 1);
  EXPECT_GT(m["other_language"].get<int>(), 0);
  EXPECT_GT(m["outside_length"].get<int>(), 0);
  std::set<std::string> norm;
  for (const auto& j : read_jsonl(out / "arena_hard" / "arena_hard_candidates.jsonl")) {
    const std::string p = j["prompt"];
    EXPECT_GE(p.size(), 32u);
    EXPECT_TRUE(norm.insert(data::normalize_for_dedup(p)).second) << "exact duplicate kept: " << p;
  }
  EXPECT_EQ(static_cast<int>(norm.size()), m["prompts"].get<int>());
}

TEST(MinHash, FindsNearDuplicatesAndKeepsDistinctTexts) {
  data::NearDuplicateIndex idx(0.8);
  const std::string base =
      "Explain how a water mill turns the energy of a river into flour, step by step, with the parts named and the "
      "reason each part is shaped the way it is, as if to a curious twelve-year-old.";
  EXPECT_FALSE(idx.check_and_add(base));
  EXPECT_TRUE(idx.check_and_add(base + "!"));                        // one character more
  EXPECT_TRUE(idx.check_and_add("  EXPLAIN how a water mill  " + base.substr(28)));  // case and spacing
  EXPECT_FALSE(idx.check_and_add("Write a short poem about a fox who counts the stars every night."));
  EXPECT_FALSE(idx.check_and_add("What is the difference between knowing and understanding, in a few sentences?"));
}

TEST(Subsets, ConfigErrorsAreReportedTogether) {
  auto dir = testing::scratch("subsets_bad");
  std::ofstream(dir / "bad.yaml") << "inputs: [x.jsonl]\nseed: many\nsubsets:\n  highquality:\n    modles: [gpt-4]\n  upvote: {}\n";
  testing::expect_error([&] { data::build_subsets(dir / "bad.yaml", {}); },
                        {"bad.yaml:2: seed must be an integer", "unknown key 'subsets.highquality.modles'",
                         "subsets.upvote.votes is required", "output_dir is required"});
}

}  // namespace
}  // namespace chatmill
