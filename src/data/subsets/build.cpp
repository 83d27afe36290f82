#include "data/subsets/build.h"

#include <fstream>
#include <memory>

#include "common/error.h"
#include "common/sha256.h"
#include "common/yaml_config.h"
#include "data/conversation_source.h"
#include "data/subsets/conversation_filters.h"

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

BuildConfig parse_build_config(const fs::path& path, const std::vector<std::string>& overrides) {
  auto errors = std::make_shared<ConfigErrors>();
  YamlObject root(load_yaml(path, overrides), "", path.string(), errors);
  BuildConfig c;
  root.read("inputs", c.inputs, true);
  root.read("on_bad_record", c.on_bad_record);
  root.read("seed", c.seed);
  root.read("output_dir", c.output_dir, true);
  YamlObject subsets = root.object("subsets");
  root.check_unknown();
  if (subsets.has("moderation")) {
    YamlObject y = subsets.object("moderation");
    ModerationSetConfig m;
    m.seed = c.seed;
    y.read("per_category", m.per_category);
    y.read("non_flagged", m.non_flagged);
    y.read("prompt", m.prompt, true);
    y.read("teacher", m.teacher);
    y.read("sharegpt", m.sharegpt);
    y.read("sharegpt_count", m.sharegpt_count);
    y.check_unknown();
    c.moderation = m;
  }
  if (subsets.has("highquality")) {
    YamlObject y = subsets.object("highquality");
    HighQualityConfig h{kOpenAIAnthropic, false};
    y.read("models", h.models);
    y.read("exclude_flagged", h.exclude_flagged);
    y.check_unknown();
    c.highquality = h;
  }
  if (subsets.has("upvote")) {
    YamlObject y = subsets.object("upvote");
    UpvoteConfig u{"", kClosedModels, false};
    y.read("votes", u.votes, true);
    y.read("closed_models", u.closed_models);
    y.read("exclude_flagged", u.exclude_flagged);
    y.check_unknown();
    c.upvote = u;
  }
  if (subsets.has("jailbreak")) {
    YamlObject y = subsets.object("jailbreak");
    JailbreakSetConfig j;
    y.read("per_model", j.per_model);
    y.read("num_models", j.num_models);
    y.read("models", j.models);
    y.check_unknown();
    c.jailbreak = j;
  }
  if (subsets.has("arena_hard")) {
    YamlObject y = subsets.object("arena_hard");
    ArenaHardConfig a;
    y.read("language", a.language);
    y.read("min_chars", a.min_chars);
    y.read("max_chars", a.max_chars);
    y.read("near_duplicate_threshold", a.near_duplicate_threshold);
    y.check_unknown();
    c.arena_hard = a;
  }
  subsets.check_unknown();
  errors->throw_if_any(path.string());
  CHATMILL_CHECK(c.moderation || c.highquality || c.upvote || c.jailbreak || c.arena_hard, "config ", path,
                 " names no subset under 'subsets:' (moderation, highquality, upvote, jailbreak, arena_hard)");
  return c;
}

BuildSummary build_subsets(const BuildConfig& c) {
  std::vector<Planned> plan;
  if (c.moderation) {
    const auto& m = *c.moderation;
    Planned p{std::make_unique<ModerationSetBuilder>(m),
              {{"per_category", m.per_category}, {"non_flagged", m.non_flagged}, {"prompt", m.prompt},
               {"teacher", m.teacher}, {"sharegpt", m.sharegpt}, {"sharegpt_count", m.sharegpt_count}},
              {m.prompt}};
    if (!m.teacher.empty()) p.extra_inputs.push_back(m.teacher);
    for (const auto& s : m.sharegpt) p.extra_inputs.push_back(s);
    plan.push_back(std::move(p));
  }
  if (c.highquality)
    plan.push_back({std::make_unique<HighQualityBuilder>(c.highquality->models, c.highquality->exclude_flagged),
                    {{"models", c.highquality->models}, {"exclude_flagged", c.highquality->exclude_flagged}}, {}});
  if (c.upvote)
    plan.push_back({std::make_unique<UpvoteBuilder>(c.upvote->votes, c.upvote->closed_models, c.upvote->exclude_flagged),
                    {{"votes", c.upvote->votes}, {"closed_models", c.upvote->closed_models},
                     {"exclude_flagged", c.upvote->exclude_flagged}},
                    {c.upvote->votes}});
  if (c.jailbreak)
    plan.push_back({std::make_unique<JailbreakSetBuilder>(*c.jailbreak),
                    {{"per_model", c.jailbreak->per_model}, {"num_models", c.jailbreak->num_models},
                     {"models", c.jailbreak->models}},
                    {}});
  if (c.arena_hard)
    plan.push_back({std::make_unique<ArenaHardBuilder>(*c.arena_hard),
                    {{"language", c.arena_hard->language}, {"min_chars", c.arena_hard->min_chars},
                     {"max_chars", c.arena_hard->max_chars},
                     {"near_duplicate_threshold", c.arena_hard->near_duplicate_threshold}},
                    {}});

  // One pass over the conversations feeds every builder.
  ReadReport report;
  std::vector<fs::path> files(c.inputs.begin(), c.inputs.end());
  read_conversations(files, parse_on_bad_record(c.on_bad_record), report, [&](Conversation&& conv) {
    for (auto& p : plan) p.builder->add(conv);
  });

  nlohmann::ordered_json input_entries = nlohmann::ordered_json::array();
  for (const auto& f : files) input_entries.push_back(file_entry(f));
  BuildSummary summary{{}, report.records, report.skipped};
  for (auto& p : plan) {
    const fs::path dir = fs::path(c.output_dir) / p.builder->name();
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
        {"seed", c.seed},
        {"on_bad_record", c.on_bad_record},
        {"read", {{"records", report.records}, {"skipped", report.skipped}, {"skipped_by_reason", report.skipped_by_reason}}},
        {"counts", counts},
        {"outputs", outputs}};
    write_lines(dir / "manifest.json", {manifest.dump(2)});
    summary.manifests.push_back(dir / "manifest.json");
  }
  return summary;
}

BuildSummary build_subsets(const fs::path& config, const std::vector<std::string>& overrides) {
  return build_subsets(parse_build_config(config, overrides));
}

}  // namespace chatmill::data
