// The jailbreak benchmark (paper §4.2): for each of M models, the N conversations whose flagged user
// message scores highest (5 x 10 in the paper). Models: a given list, or the M with the most attempts.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "data/subsets/subset_builder.h"

namespace chatmill::data {

struct JailbreakSetConfig {
  int64_t per_model = 5;
  int64_t num_models = 10;          // used when `models` is empty
  std::vector<std::string> models;  // explicit choice
};

class JailbreakSetBuilder : public SubsetBuilder {
 public:
  explicit JailbreakSetBuilder(JailbreakSetConfig cfg);
  std::string name() const override { return "jailbreak"; }
  void add(const Conversation& c) override;
  nlohmann::ordered_json finish(const std::filesystem::path& dir) override;

 private:
  struct Attempt {
    double score;
    std::string id, json;
  };
  static bool better(const Attempt& a, const Attempt& b) { return a.score != b.score ? a.score > b.score : a.id < b.id; }
  JailbreakSetConfig cfg_;
  std::map<std::string, std::vector<Attempt>> top_;  // per model: min-heap of the N best
  std::map<std::string, int64_t> attempts_;
};

}  // namespace chatmill::data
