// Arena-Hard candidates (paper §4.4): first-turn user prompts in one language and a length range, with exact
// duplicates (after normalisation: lower case, collapsed whitespace) and near-duplicates (MinHash, see
// data/minhash.h) removed, first occurrence kept.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "data/minhash.h"
#include "data/subsets/subset_builder.h"

namespace chatmill::data {

struct ArenaHardConfig {
  std::string language = "English";
  int64_t min_chars = 32;
  int64_t max_chars = 1536;
  double near_duplicate_threshold = 0.8;
};

class ArenaHardBuilder : public SubsetBuilder {
 public:
  explicit ArenaHardBuilder(ArenaHardConfig cfg);
  std::string name() const override { return "arena_hard"; }
  void add(const Conversation& c) override;
  nlohmann::ordered_json finish(const std::filesystem::path& dir) override;

 private:
  ArenaHardConfig cfg_;
  NearDuplicateIndex near_;
  std::set<std::string> exact_;  // sha256 of normalised prompts
  std::vector<std::string> lines_;
  int64_t seen_ = 0, other_language_ = 0, bad_length_ = 0, exact_dups_ = 0, near_dups_ = 0;
};

}  // namespace chatmill::data
