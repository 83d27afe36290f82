#include "data/subsets/jailbreak_set.h"

#include <algorithm>

#include "common/error.h"
#include "data/lmsys_reader.h"
#include "data/subsets/conversation_filters.h"

namespace chatmill::data {

JailbreakSetBuilder::JailbreakSetBuilder(JailbreakSetConfig cfg) : cfg_(std::move(cfg)) {
  CHATMILL_CHECK(cfg_.per_model > 0, "jailbreak: per_model must be positive");
  CHATMILL_CHECK(!cfg_.models.empty() || cfg_.num_models > 0, "jailbreak: give models or a positive num_models");
}

void JailbreakSetBuilder::add(const Conversation& c) {
  const double score = max_flagged_user_score(c);
  if (score <= 0) return;  // no flagged user message: not an attempt
  ++attempts_[c.model];
  auto& heap = top_[c.model];
  heap.push_back({score, c.id, lmsys_to_json(c)});
  std::push_heap(heap.begin(), heap.end(), better);
  if (static_cast<int64_t>(heap.size()) > cfg_.per_model) {
    std::pop_heap(heap.begin(), heap.end(), better);
    heap.pop_back();
  }
}

nlohmann::ordered_json JailbreakSetBuilder::finish(const std::filesystem::path& dir) {
  std::vector<std::string> models = cfg_.models;
  if (models.empty()) {
    std::vector<std::pair<std::string, int64_t>> by_attempts(attempts_.begin(), attempts_.end());
    std::stable_sort(by_attempts.begin(), by_attempts.end(), [](auto& a, auto& b) { return a.second > b.second; });
    for (size_t i = 0; i < by_attempts.size() && static_cast<int64_t>(i) < cfg_.num_models; ++i)
      models.push_back(by_attempts[i].first);
  }
  std::vector<std::string> lines;
  nlohmann::ordered_json per_model = nlohmann::ordered_json::object();
  for (const auto& m : models) {
    auto heap = top_[m];
    std::sort(heap.begin(), heap.end(), better);
    for (const auto& a : heap) lines.push_back(a.json);
    per_model[m] = {{"attempts", attempts_[m]}, {"selected", heap.size()}};
  }
  write_lines(dir / "jailbreak.jsonl", lines);
  return {{"conversations", lines.size()}, {"per_model", per_model}, {"files", {"jailbreak.jsonl"}}};
}

}  // namespace chatmill::data
