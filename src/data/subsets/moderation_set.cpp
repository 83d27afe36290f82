#include "data/subsets/moderation_set.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "common/error.h"
#include "common/text.h"
#include "data/line_reader.h"
#include "data/sharegpt_reader.h"
#include "data/subsets/conversation_filters.h"
#include "data/token_store.h"

namespace chatmill::data {

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// kModerationSetCategories index of a top-level category name.
int set_index(const char* top) {
  for (int i = 0; i < 5; ++i)
    if (std::strcmp(kModerationSetCategories[i], top) == 0) return i;
  return -1;
}

std::string category_label(int i) { return moderation_category_label(i); }

nlohmann::ordered_json sharegpt_entry(const std::string& id, const std::string& human, const std::string& gpt) {
  return {{"id", id}, {"conversations", {{{"from", "human"}, {"value", human}}, {{"from", "gpt"}, {"value", gpt}}}}};
}

}  // namespace

ModerationSetBuilder::ModerationSetBuilder(ModerationSetConfig cfg)
    : cfg_(std::move(cfg)), not_flagged_(static_cast<size_t>(std::max<int64_t>(cfg_.non_flagged, 0)), cfg_.seed) {
  CHATMILL_CHECK(cfg_.per_category >= 0 && cfg_.non_flagged >= 0 && cfg_.sharegpt_count >= 0,
                 "moderation: per_category, non_flagged and sharegpt_count must be >= 0");
  prompt_text_ = read_text_file(cfg_.prompt, "moderation prompt file");
  while (!prompt_text_.empty() && prompt_text_.back() == '\n') prompt_text_.pop_back();  // the file's own newline
  CHATMILL_CHECK(prompt_text_.find("{message}") != std::string::npos, "moderation prompt ", cfg_.prompt,
                 " has no {message} placeholder");
  if (!cfg_.teacher.empty()) {
    auto reader = LineReader::open(cfg_.teacher);
    std::string line;
    while (reader->next(line)) {
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      const std::string where = detail::concat(cfg_.teacher, ":", reader->line_number());
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        CHATMILL_FAIL("malformed JSON in teacher file at ", where, ": ", e.what());
      }
      CHATMILL_CHECK(j.contains("message_id") && j["message_id"].is_string() && j.contains("explanation") &&
                         j["explanation"].is_string(),
                     "teacher file ", where, ": each line needs string fields message_id and explanation");
      teacher_[j["message_id"]] = j["explanation"];
    }
  }
}

bool ModerationSetBuilder::better(const Candidate& a, const Candidate& b) {
  return a.score != b.score ? a.score > b.score : a.id < b.id;
}

void ModerationSetBuilder::add(const Conversation& c) {
  for (size_t i = 0; i < c.messages.size() && i < c.moderation.size(); ++i) {
    if (c.messages[i].role != Role::User) continue;
    const Moderation& m = c.moderation[i];
    if (!m.flagged) {
      not_flagged_.add({0, message_id(c, i), c.messages[i].content, {}});
      continue;
    }
    Candidate base{0, message_id(c, i), c.messages[i].content, {}};
    const unsigned flags = m.top_flags();
    for (int t = 0; t < 5; ++t)
      if (flags & (1u << t)) base.categories.push_back(set_index(kTopCategories[t]));
    std::sort(base.categories.begin(), base.categories.end());
    for (int t = 0; t < 5; ++t) {
      if (!(flags & (1u << t))) continue;
      auto& heap = top_[set_index(kTopCategories[t])];
      Candidate cand = base;
      cand.score = m.top_score(t);
      // A min-heap (worst on top) of the K best: push, then drop the worst when over K.
      heap.push_back(std::move(cand));
      std::push_heap(heap.begin(), heap.end(), better);
      if (static_cast<int64_t>(heap.size()) > cfg_.per_category) {
        std::pop_heap(heap.begin(), heap.end(), better);
        heap.pop_back();
      }
    }
  }
}

std::string moderation_category_label(int i) {
  return i < 0 ? "6. None of the above" : std::to_string(i + 1) + ". " + kModerationSetCategories[i];
}

std::string moderation_instruction(const std::string& prompt_text, const std::string& message) {
  std::string cats;
  for (int i = 0; i < 5; ++i) cats += category_label(i) + "\n";
  cats += category_label(-1);
  return replace_all(replace_all(replace_all(prompt_text, "{categories}", cats), "{none}", category_label(-1)),
                     "{message}", message);
}

std::string ModerationSetBuilder::instruction(const std::string& message) const {
  return moderation_instruction(prompt_text_, message);
}

std::string ModerationSetBuilder::target(const std::string& explanation, const std::vector<int>& categories) {
  std::string t = explanation;
  if (categories.empty()) return t + " [[" + category_label(-1) + "]]";
  for (int c : categories) t += " [[" + category_label(c) + "]]";
  return t;
}

std::string ModerationSetBuilder::explanation(const Candidate& c, bool* from_teacher) const {
  if (auto it = teacher_.find(c.id); it != teacher_.end()) {
    *from_teacher = true;
    return it->second;
  }
  *from_teacher = false;
  if (c.categories.empty()) return "The message does not contain harmful content.";
  std::string names;
  for (size_t i = 0; i < c.categories.size(); ++i)
    names += (i ? (i + 1 == c.categories.size() ? " and " : ", ") : "") + std::string(kModerationSetCategories[c.categories[i]]);
  return "The message contains " + names + " content.";
}

nlohmann::ordered_json ModerationSetBuilder::finish(const std::filesystem::path& dir) {
  std::vector<std::string> lines;
  std::set<std::string> used;
  int64_t teacher = 0, templated = 0;
  nlohmann::ordered_json per_category = nlohmann::ordered_json::object();
  auto emit = [&](const Candidate& c, const char* source) {
    bool from_teacher = false;
    const std::string expl = explanation(c, &from_teacher);
    (from_teacher ? teacher : templated)++;
    auto e = sharegpt_entry("moderation-" + c.id, instruction(c.text), target(expl, c.categories));
    e["message_id"] = c.id;
    e["source"] = source;
    lines.push_back(e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  };
  for (int k = 0; k < 5; ++k) {
    auto heap = top_[k];
    std::sort(heap.begin(), heap.end(), better);
    int64_t n = 0;
    for (const auto& c : heap)
      if (used.insert(c.id).second) {  // a message top in two categories appears once, with both labels
        emit(c, "lmsys-flagged");
        ++n;
      }
    per_category[kModerationSetCategories[k]] = n;
  }
  auto benign = not_flagged_.take_in_order();
  std::sort(benign.begin(), benign.end(), [](auto& a, auto& b) { return a.id < b.id; });
  for (const auto& c : benign) emit(c, "lmsys-not-flagged");

  int64_t mixed = 0;
  if (cfg_.sharegpt_count > 0) {
    std::vector<std::string> pool;
    ReadReport report;
    for (const auto& f : cfg_.sharegpt)
      read_sharegpt(f, OnBadRecord::Skip, report, [&](Conversation&& c) {
        nlohmann::ordered_json turns = nlohmann::ordered_json::array();
        for (const auto& m : c.messages)
          turns.push_back({{"from", m.role == Role::User ? "human" : "gpt"}, {"value", m.content}});
        nlohmann::ordered_json e = {{"id", "sharegpt-" + c.id}, {"conversations", turns}, {"source", "sharegpt"}};
        pool.push_back(e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      });
    std::vector<int64_t> order(pool.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    seeded_shuffle(order, cfg_.seed);
    order.resize(std::min<size_t>(order.size(), static_cast<size_t>(cfg_.sharegpt_count)));
    std::sort(order.begin(), order.end());
    for (int64_t i : order) lines.push_back(pool[i]);
    mixed = static_cast<int64_t>(order.size());
  }
  // A ShareGPT file (a JSON list), one conversation per line so a person can read and diff it.
  std::vector<std::string> file{"["};
  for (size_t i = 0; i < lines.size(); ++i) file.push_back(lines[i] + (i + 1 < lines.size() ? "," : ""));
  file.push_back("]");
  write_lines(dir / "moderation.json", file);
  return {{"samples", lines.size()},
          {"flagged_per_category", per_category},
          {"not_flagged", benign.size()},
          {"not_flagged_seen", not_flagged_.seen()},
          {"sharegpt", mixed},
          {"explanations", {{"teacher", teacher}, {"templated", templated}}},
          {"explanation_source", teacher_.empty() ? "templated" : (templated == 0 ? "teacher" : "teacher, templated where missing")},
          {"files", {"moderation.json"}}};
}

}  // namespace chatmill::data
