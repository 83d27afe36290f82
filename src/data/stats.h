// The paper's analysis tables over a stream of conversations: Table 1 (basic statistics), Table 2 (unsafe
// content by category), Table 4 (jailbreak attempts and successes per model), and the model and language
// distributions (Figures 1-2).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/lmsys_reader.h"
#include "data/record.h"

namespace chatmill::data {

struct ModelCounts {
  int64_t conversations = 0;
  int64_t attempts = 0;   // a user message flagged
  int64_t successes = 0;  // an attempt whose assistant side is flagged too
};

struct DatasetStats {
  int64_t conversations = 0;
  int64_t turns = 0;  // sum of the records' `turn`
  int64_t user_messages = 0, assistant_messages = 0;
  int64_t prompt_tokens = 0, response_tokens = 0;  // content tokens, no bos
  int64_t flagged_conversations = 0;               // any message flagged
  std::array<int64_t, 5> flagged_by_category{};    // kTopCategories order; a conversation counts once per category
  std::map<std::string, int64_t> models, languages;
  std::map<std::string, ModelCounts> per_model;

  // `tokens[i]` = token count of message i's content.
  void add(const Conversation& c, const std::vector<int64_t>& tokens);

  // stats.json: the keys the issue names, plus distributions and the read report.
  nlohmann::ordered_json to_json(const ReadReport& report) const;
  std::string markdown(const ReadReport& report, const std::string& tokenizer_name) const;
};

// A horizontal bar chart (SVG) of the `top` largest counts, the rest summed as "other".
std::string bar_chart_svg(const std::string& title, const std::map<std::string, int64_t>& counts, size_t top);

}  // namespace chatmill::data
