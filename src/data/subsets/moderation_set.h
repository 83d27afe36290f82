// The moderation training set (paper §4.1): the top-K flagged user messages of each category by score,
// K messages that were not flagged, optionally ShareGPT conversations; every sample is the moderation
// instruction (a prompt file) with the message, and the target is an explanation + "[[n. category]]".
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/random.h"
#include "data/subsets/subset_builder.h"

namespace chatmill::data {

// The numbered categories of the moderation prompt, in the paper's order; "None of the above" follows.
inline constexpr std::array<const char*, 5> kModerationSetCategories = {"hate", "self-harm", "sexual", "violence",
                                                                       "harassment"};

// "1. hate" .. "5. harassment"; -1 gives "6. None of the above".
std::string moderation_category_label(int index);
// The moderation prompt (with {categories}, {none} and {message}) filled for one message; the training set and
// the moderation evaluation both use it, so a model is evaluated on the prompt it was trained on.
std::string moderation_instruction(const std::string& prompt_text, const std::string& message);

struct ModerationSetConfig {
  int64_t per_category = 1000;           // K flagged messages per category
  int64_t non_flagged = 1000;            // K messages not flagged
  std::string prompt;                    // the instruction, with {categories}, {none} and {message}
  std::string teacher;                   // optional JSONL {"message_id", "explanation"}
  std::vector<std::string> sharegpt;     // optional ShareGPT files to mix in
  int64_t sharegpt_count = 0;            // how many of their conversations (seeded draw)
  uint64_t seed = 0;
};

class ModerationSetBuilder : public SubsetBuilder {
 public:
  explicit ModerationSetBuilder(ModerationSetConfig cfg);
  std::string name() const override { return "moderation"; }
  void add(const Conversation& c) override;
  nlohmann::ordered_json finish(const std::filesystem::path& dir) override;

  // The instruction for one message, and the target for a set of categories (indices into
  // kModerationSetCategories; empty = none of the above).
  std::string instruction(const std::string& message) const;
  static std::string target(const std::string& explanation, const std::vector<int>& categories);

 private:
  struct Candidate {
    double score = 0;
    std::string id, text;
    std::vector<int> categories;
  };
  static bool better(const Candidate& a, const Candidate& b);  // higher score, then smaller id
  std::string explanation(const Candidate& c, bool* from_teacher) const;

  ModerationSetConfig cfg_;
  std::string prompt_text_;
  std::map<std::string, std::string> teacher_;
  std::array<std::vector<Candidate>, 5> top_;  // min-heaps by `better`, at most per_category each
  ReservoirSample<Candidate> not_flagged_;     // uniform sample of the user messages not flagged
};

}  // namespace chatmill::data
