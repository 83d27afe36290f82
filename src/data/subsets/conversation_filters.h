// Subsets that keep whole conversations: HighQuality (by model) and Upvote (by Arena votes).
#pragma once
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/subsets/subset_builder.h"

namespace chatmill::data {

// Conversations whose model is in `models` (the paper: OpenAI and Anthropic models), in input order.
class HighQualityBuilder : public SubsetBuilder {
 public:
  HighQualityBuilder(std::vector<std::string> models, bool exclude_flagged);
  std::string name() const override { return "highquality"; }
  void add(const Conversation& c) override;
  nlohmann::ordered_json finish(const std::filesystem::path& dir) override;

 private:
  std::set<std::string> models_;
  bool exclude_flagged_;
  std::vector<std::string> lines_;
  std::map<std::string, int64_t> per_model_;
};

// Conversations with an open model (not in `closed_models`) that won an Arena battle: a votes file line
// {"model_a", "model_b", "winner": "model_a"|"model_b"|"tie"|"tie (bothbad)", "conversation_a_id",
// "conversation_b_id"}; ties choose no side.
class UpvoteBuilder : public SubsetBuilder {
 public:
  UpvoteBuilder(const std::filesystem::path& votes, std::vector<std::string> closed_models, bool exclude_flagged);
  std::string name() const override { return "upvote"; }
  void add(const Conversation& c) override;
  nlohmann::ordered_json finish(const std::filesystem::path& dir) override;

 private:
  std::set<std::string> winners_;  // conversation ids that won a battle
  std::set<std::string> closed_;
  bool exclude_flagged_;
  int64_t battles_ = 0, ties_ = 0;
  std::vector<std::string> lines_;
  std::map<std::string, int64_t> per_model_;
};

// Writes lines, each followed by '\n', through a temporary file renamed into place.
void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines);

}  // namespace chatmill::data
