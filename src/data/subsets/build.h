// `chatmill data build CONFIG`: one streaming pass over the inputs feeds every configured subset builder;
// each subset goes to OUTPUT_DIR/<name>/ with a manifest.json (input hashes, resolved config, counts, seed,
// output hashes). The same inputs and config give the same bytes.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "common/yaml_config.h"

namespace chatmill::data {

struct BuildSummary {
  std::vector<std::filesystem::path> manifests;
  int64_t records = 0, skipped = 0;
};

// Reads the config (all errors reported together, naming file and line), then builds.
BuildSummary build_subsets(const std::filesystem::path& config, const std::vector<std::string>& overrides);

}  // namespace chatmill::data
