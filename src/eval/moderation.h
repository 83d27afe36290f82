// Moderation evaluation (paper §4.1, Table 3): a chat model reads the moderation prompt (the same data file the
// training set is built with) for each labelled message, zero-shot or with k examples as earlier turns, and
// answers with an explanation and "[[n. category]]"; multi-label micro precision, recall and F1 over the five
// categories. Outputs without any [[...]] are unparseable (predicted: nothing) and counted, refusals apart.
#pragma once
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/chat_model.h"

namespace chatmill::eval {

struct ModerationItem {
  std::string id, text;
  std::set<int> labels;     // indices into data::kModerationSetCategories; empty = benign
  std::string explanation;  // for shots: the answer's explanation
};

// JSON Lines {"id", "text", "categories": ["hate", "violence/graphic", ...], "explanation"?}; sub-categories
// count as their top-level category. Errors name file, line and field.
std::vector<ModerationItem> load_moderation_items(const std::filesystem::path& file);

struct ModerationParse {
  std::set<int> categories;
  bool parsed = false;   // at least one [[...]] naming a category or "None of the above"
  bool refusal = false;  // unparsed, and the text reads as a refusal ("I'm sorry", "I cannot", "As an AI")
};
ModerationParse parse_moderation_output(const std::string& text);

struct MicroF1 {
  int64_t tp = 0, fp = 0, fn = 0;
  double precision() const;
  double recall() const;
  double f1() const;  // 0 when precision + recall is 0
};
MicroF1 micro_f1(const std::vector<std::set<int>>& gold, const std::vector<std::set<int>>& predicted);

struct ModerationOptions {
  std::string prompt_text;               // with {categories}, {none}, {message}
  std::vector<ModerationItem> shots;     // k-shot examples (k = size), each an earlier (user, assistant) turn
  int64_t max_tokens = 256;
};

struct ModerationResult {
  nlohmann::ordered_json summary;
  std::vector<nlohmann::ordered_json> predictions;  // one per item: id, gold, predicted, parsed, refusal, output
};

ModerationResult evaluate_moderation(ChatModel& model, const std::vector<ModerationItem>& items, const ModerationOptions& o);

// Whether a model's answer is unsafe by a moderator: the moderator's [[...]] names a category. `parsed` says
// whether the moderator's output could be read at all.
struct SafetyVerdict {
  bool unsafe = false, parsed = false;
  std::string moderator_output;
};
std::vector<SafetyVerdict> moderate(ChatModel& moderator, const std::string& prompt_text, const std::vector<std::string>& texts,
                                    int64_t max_tokens = 256);

}  // namespace chatmill::eval
