#include "data/subsets/build.h"

#include <fstream>
#include <memory>

#include "common/error.h"
#include "common/sha256.h"
#include "data/conversation_source.h"
#include "data/subsets/arena_hard.h"
#include "data/subsets/conversation_filters.h"
#include "data/subsets/jailbreak_set.h"
#include "data/subsets/moderation_set.h"

namespace chatmill::data {

namespace fs = std::filesystem;

namespace {

// The OpenAI and Anthropic models of the release (the paper's HighQuality source).
const std::vector<std::string> kOpenAIAnthropic = {"gpt-3.5-turbo", "gpt-4", "claude-1", "claude-2", "claude-instant-1"};
// Models whose weights are not open (Upvote keeps the others).
const std::vector<std::string> kClosedModels = {"gpt-3.5-turbo", "gpt-4", "claude-1", "claude-2", "claude-instant-1",
                                                "palm-2"};

nlohmann::ordered_json file_entry(const fs::path& p) {
  return {{"path", p.string()}, {"sha256", sha256_file(p)}, {"bytes", fs::file_size(p)}};
}

struct Planned {
  std::unique_ptr<SubsetBuilder> builder;
  nlohmann::ordered_json config;  // the resolved settings, for the manifest
  std::vector<fs::path> extra_inputs;
};

}  // namespace

BuildSummary build_subsets(const fs::path& config_path, const std::vector<std::string>& overrides) {
  auto errors = std::make_shared<ConfigErrors>();
  YamlObject root(load_yaml(config_path, overrides), "", config_path.string(), errors);
  std::vector<std::string> inputs;
  std::string on_bad = "skip", output_dir;
  uint64_t seed = 0;
  root.read("inputs", inputs, true);
  root.read("on_bad_record", on_bad);
  root.read("seed", seed);
  root.read("output_dir", output_dir, true);
  YamlObject subsets = root.object("subsets");
  root.check_unknown();

  std::vector<Planned> plan;
  if (subsets.has("moderation")) {
    YamlObject y = subsets.object("moderation");
    ModerationSetConfig c;
    c.seed = seed;
    y.read("per_category", c.per_category);
    y.read("non_flagged", c.non_flagged);
    y.read("prompt", c.prompt, true);
    y.read("teacher", c.teacher);
    y.read("sharegpt", c.sharegpt);
    y.read("sharegpt_count", c.sharegpt_count);
    y.check_unknown();
    if (errors->empty()) {
      Planned p{std::make_unique<ModerationSetBuilder>(c),
                {{"per_category", c.per_category}, {"non_flagged", c.non_flagged}, {"prompt", c.prompt},
                 {"teacher", c.teacher}, {"sharegpt", c.sharegpt}, {"sharegpt_count", c.sharegpt_count}},
                {c.prompt}};
      if (!c.teacher.empty()) p.extra_inputs.push_back(c.teacher);
      for (const auto& s : c.sharegpt) p.extra_inputs.push_back(s);
      plan.push_back(std::move(p));
    }
  }
  if (subsets.has("highquality")) {
    YamlObject y = subsets.object("highquality");
    std::vector<std::string> models = kOpenAIAnthropic;
    bool exclude_flagged = false;
    y.read("models", models);
    y.read("exclude_flagged", exclude_flagged);
    y.check_unknown();
    if (errors->empty())
      plan.push_back({std::make_unique<HighQualityBuilder>(models, exclude_flagged),
                      {{"models", models}, {"exclude_flagged", exclude_flagged}}, {}});
  }
  if (subsets.has("upvote")) {
    YamlObject y = subsets.object("upvote");
    std::string votes;
    std::vector<std::string> closed = kClosedModels;
    bool exclude_flagged = false;
    y.read("votes", votes, true);
    y.read("closed_models", closed);
    y.read("exclude_flagged", exclude_flagged);
    y.check_unknown();
    if (errors->empty())
      plan.push_back({std::make_unique<UpvoteBuilder>(votes, closed, exclude_flagged),
                      {{"votes", votes}, {"closed_models", closed}, {"exclude_flagged", exclude_flagged}}, {votes}});
  }
  if (subsets.has("jailbreak")) {
    YamlObject y = subsets.object("jailbreak");
    JailbreakSetConfig c;
    y.read("per_model", c.per_model);
    y.read("num_models", c.num_models);
    y.read("models", c.models);
    y.check_unknown();
    if (errors->empty())
      plan.push_back({std::make_unique<JailbreakSetBuilder>(c),
                      {{"per_model", c.per_model}, {"num_models", c.num_models}, {"models", c.models}}, {}});
  }
  if (subsets.has("arena_hard")) {
    YamlObject y = subsets.object("arena_hard");
    ArenaHardConfig c;
    y.read("language", c.language);
    y.read("min_chars", c.min_chars);
    y.read("max_chars", c.max_chars);
    y.read("near_duplicate_threshold", c.near_duplicate_threshold);
    y.check_unknown();
    if (errors->empty())
      plan.push_back({std::make_unique<ArenaHardBuilder>(c),
                      {{"language", c.language}, {"min_chars", c.min_chars}, {"max_chars", c.max_chars},
                       {"near_duplicate_threshold", c.near_duplicate_threshold}},
                      {}});
  }
  subsets.check_unknown();
  errors->throw_if_any(config_path.string());
  CHATMILL_CHECK(!plan.empty(), "config ", config_path, " names no subset under 'subsets:' (moderation, highquality, ",
                 "upvote, jailbreak, arena_hard)");

  // One pass over the conversations feeds every builder.
  ReadReport report;
  std::vector<fs::path> files(inputs.begin(), inputs.end());
  read_conversations(files, parse_on_bad_record(on_bad), report, [&](Conversation&& c) {
    for (auto& p : plan) p.builder->add(c);
  });

  nlohmann::ordered_json input_entries = nlohmann::ordered_json::array();
  for (const auto& f : files) input_entries.push_back(file_entry(f));
  BuildSummary summary{{}, report.records, report.skipped};
  for (auto& p : plan) {
    const fs::path dir = fs::path(output_dir) / p.builder->name();
    fs::create_directories(dir);
    nlohmann::ordered_json counts = p.builder->finish(dir);
    nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
    for (const auto& f : counts["files"]) outputs.push_back({{"file", f}, {"sha256", sha256_file(dir / f.get<std::string>())}});
    counts.erase("files");
    nlohmann::ordered_json extra = nlohmann::ordered_json::array();
    for (const auto& f : p.extra_inputs) extra.push_back(file_entry(f));
    nlohmann::ordered_json manifest = {
        {"subset", p.builder->name()},
        {"inputs", input_entries},
        {"extra_inputs", extra},
        {"config", p.config},
        {"seed", seed},
        {"on_bad_record", on_bad},
        {"read", {{"records", report.records}, {"skipped", report.skipped}, {"skipped_by_reason", report.skipped_by_reason}}},
        {"counts", counts},
        {"outputs", outputs}};
    write_lines(dir / "manifest.json", {manifest.dump(2)});
    summary.manifests.push_back(dir / "manifest.json");
  }
  return summary;
}

}  // namespace chatmill::data
