#include "data/stats.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace chatmill::data {

void DatasetStats::add(const Conversation& c, const std::vector<int64_t>& tokens) {
  ++conversations;
  turns += c.turn;
  ++models[c.model];
  ++languages[c.language];
  ModelCounts& mc = per_model[c.model];
  ++mc.conversations;
  bool flagged = false, user_flagged = false, assistant_flagged = false;
  unsigned cats = 0;
  for (size_t i = 0; i < c.messages.size(); ++i) {
    const bool user = c.messages[i].role == Role::User;
    (user ? user_messages : assistant_messages)++;
    (user ? prompt_tokens : response_tokens) += tokens[i];
    if (i < c.moderation.size() && c.moderation[i].flagged) {
      flagged = true;
      (user ? user_flagged : assistant_flagged) = true;
      cats |= c.moderation[i].top_flags();
    }
  }
  if (flagged) ++flagged_conversations;
  for (int t = 0; t < 5; ++t)
    if (cats & (1u << t)) ++flagged_by_category[t];
  if (user_flagged) {
    ++mc.attempts;
    if (assistant_flagged) ++mc.successes;
  }
}

namespace {

double ratio(int64_t a, int64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }

std::vector<std::pair<std::string, int64_t>> sorted_desc(const std::map<std::string, int64_t>& m) {
  std::vector<std::pair<std::string, int64_t>> v(m.begin(), m.end());
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second > b.second; });
  return v;
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

}  // namespace

nlohmann::ordered_json DatasetStats::to_json(const ReadReport& report) const {
  nlohmann::ordered_json j;
  j["conversations"] = conversations;
  j["models"] = models.size();
  j["languages"] = languages.size();
  j["mean_turns"] = ratio(turns, conversations);
  j["mean_prompt_tokens"] = ratio(prompt_tokens, user_messages);
  j["mean_response_tokens"] = ratio(response_tokens, assistant_messages);
  j["flagged_conversations"] = flagged_conversations;
  nlohmann::ordered_json cats;
  for (int t = 0; t < 5; ++t) cats[kTopCategories[t]] = flagged_by_category[t];
  j["flagged_by_category"] = cats;
  nlohmann::ordered_json pm;
  for (const auto& [model, n] : sorted_desc(models)) {
    const auto& mc = per_model.at(model);
    pm[model] = {{"conversations", mc.conversations}, {"attempts", mc.attempts}, {"successes", mc.successes}};
  }
  j["per_model"] = pm;
  j["skipped_records"] = report.skipped;
  j["skipped_by_reason"] = report.skipped_by_reason;
  nlohmann::ordered_json md, ld;
  for (const auto& [k, v] : sorted_desc(models)) md[k] = v;
  for (const auto& [k, v] : sorted_desc(languages)) ld[k] = v;
  j["model_distribution"] = md;
  j["language_distribution"] = ld;
  j["user_messages"] = user_messages;
  j["assistant_messages"] = assistant_messages;
  return j;
}

std::string DatasetStats::markdown(const ReadReport& report, const std::string& tokenizer_name) const {
  char buf[512];
  std::string s = "# Dataset statistics\n\n## Table 1: basic statistics\n\n| | |\n|---|---|\n";
  std::snprintf(buf, sizeof buf,
                "| conversations | %lld |\n| models | %zu |\n| languages | %zu |\n| turns per conversation | %.2f |\n"
                "| tokens per prompt | %.1f |\n| tokens per response | %.1f |\n\n(tokens: %s, content only, no bos)\n\n",
                static_cast<long long>(conversations), models.size(), languages.size(), ratio(turns, conversations),
                ratio(prompt_tokens, user_messages), ratio(response_tokens, assistant_messages), tokenizer_name.c_str());
  s += buf;
  s += "## Table 2: flagged conversations by category\n\n| category | conversations |\n|---|---|\n";
  s += "| all flagged | " + std::to_string(flagged_conversations) + " |\n";
  for (int t = 0; t < 5; ++t) s += "| " + std::string(kTopCategories[t]) + " | " + std::to_string(flagged_by_category[t]) + " |\n";
  s += "\n## Table 4: jailbreak attempts and successes per model\n\n| model | conversations | attempts | successes | success rate |\n|---|---|---|---|---|\n";
  for (const auto& [model, n] : sorted_desc(models)) {
    const auto& mc = per_model.at(model);
    std::snprintf(buf, sizeof buf, "| %s | %lld | %lld | %lld | %.1f%% |\n", model.c_str(),
                  static_cast<long long>(mc.conversations), static_cast<long long>(mc.attempts),
                  static_cast<long long>(mc.successes), 100 * ratio(mc.successes, mc.attempts));
    s += buf;
  }
  s += "\n## Languages\n\n| language | conversations |\n|---|---|\n";
  for (const auto& [lang, n] : sorted_desc(languages)) s += "| " + lang + " | " + std::to_string(n) + " |\n";
  s += "\n## Input\n\n" + std::to_string(report.records) + " records read, " + std::to_string(report.skipped) + " skipped";
  for (const auto& [reason, n] : report.skipped_by_reason) s += "; " + reason + ": " + std::to_string(n);
  return s + "\n";
}

std::string bar_chart_svg(const std::string& title, const std::map<std::string, int64_t>& counts, size_t top) {
  auto rows = sorted_desc(counts);
  if (rows.size() > top) {
    int64_t other = 0;
    for (size_t i = top; i < rows.size(); ++i) other += rows[i].second;
    rows.resize(top);
    rows.emplace_back("other", other);
  }
  const int bar_h = 20, gap = 6, left = 200, width = 520, top_margin = 40;
  const int height = top_margin + static_cast<int>(rows.size()) * (bar_h + gap) + 20;
  const int64_t max = rows.empty() ? 1 : std::max<int64_t>(1, std::max_element(rows.begin(), rows.end(), [](auto& a, auto& b) {
                                                                return a.second < b.second;
                                                              })->second);
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(left + width + 100) +
                  "\" height=\"" + std::to_string(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">" + escape_xml(title) + "</text>\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const int y = top_margin + static_cast<int>(i) * (bar_h + gap);
    const int w = static_cast<int>(static_cast<double>(rows[i].second) / static_cast<double>(max) * width);
    s += "<text x=\"" + std::to_string(left - 8) + "\" y=\"" + std::to_string(y + 15) + "\" text-anchor=\"end\">" +
         escape_xml(rows[i].first) + "</text>\n";
    s += "<rect x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(y) + "\" width=\"" + std::to_string(std::max(w, 1)) +
         "\" height=\"" + std::to_string(bar_h) + "\" fill=\"#4C72B0\"/>\n";
    s += "<text x=\"" + std::to_string(left + std::max(w, 1) + 6) + "\" y=\"" + std::to_string(y + 15) + "\">" +
         std::to_string(rows[i].second) + "</text>\n";
  }
  return s + "</svg>\n";
}

}  // namespace chatmill::data
