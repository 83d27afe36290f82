// `chatmill data build CONFIG`: one streaming pass over the inputs feeds every configured subset builder;
// each subset goes to OUTPUT_DIR/<name>/ with a manifest.json (input hashes, resolved config, counts, seed,
// output hashes). The same inputs and config give the same bytes.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/subsets/arena_hard.h"
#include "data/subsets/jailbreak_set.h"
#include "data/subsets/moderation_set.h"

namespace chatmill::data {

struct HighQualityConfig {
  std::vector<std::string> models;  // default: the OpenAI and Anthropic models of the release
  bool exclude_flagged = false;
};

struct UpvoteConfig {
  std::string votes;                       // Arena battles (JSON Lines)
  std::vector<std::string> closed_models;  // default: OpenAI, Anthropic, PaLM
  bool exclude_flagged = false;
};

struct BuildConfig {
  std::vector<std::string> inputs;
  std::string on_bad_record = "skip";
  uint64_t seed = 0;
  std::string output_dir;
  std::optional<ModerationSetConfig> moderation;
  std::optional<HighQualityConfig> highquality;
  std::optional<UpvoteConfig> upvote;
  std::optional<JailbreakSetConfig> jailbreak;
  std::optional<ArenaHardConfig> arena_hard;
};

// Reads the config; every problem is reported together, naming file and line.
BuildConfig parse_build_config(const std::filesystem::path& config, const std::vector<std::string>& overrides);

struct BuildSummary {
  std::vector<std::filesystem::path> manifests;
  int64_t records = 0, skipped = 0;
};

BuildSummary build_subsets(const BuildConfig& cfg);
BuildSummary build_subsets(const std::filesystem::path& config, const std::vector<std::string>& overrides);

}  // namespace chatmill::data
