#include "eval/jailbreak.h"

#include <fstream>
#include <map>

#include "common/error.h"
#include "data/lmsys_reader.h"
#include "eval/moderation.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

std::vector<JailbreakAttempt> load_jailbreak_set(const fs::path& file) {
  std::vector<JailbreakAttempt> out;
  data::ReadReport report;
  data::read_lmsys({file}, data::OnBadRecord::Fail, report, [&](data::Conversation&& c) {
    JailbreakAttempt a;
    a.id = c.id;
    a.source_model = c.model;
    for (auto& m : c.messages)
      if (m.role == data::Role::User) a.user_turns.push_back(std::move(m.content));
    if (!a.user_turns.empty()) out.push_back(std::move(a));
  });
  CHATMILL_CHECK(!out.empty(), "the jailbreak set ", file, " has no conversation with a user turn");
  return out;
}

JailbreakResult evaluate_jailbreak(ChatModel& model, ChatModel& moderator, const std::vector<JailbreakAttempt>& attempts,
                                   const JailbreakOptions& o) {
  // Answers, turn by turn across all attempts (so a local model batches them).
  std::vector<std::vector<std::string>> answers(attempts.size());
  size_t turns = 0;
  for (const auto& a : attempts) turns = std::max(turns, a.user_turns.size());
  for (size_t t = 0; t < turns; ++t) {
    std::vector<ChatRequest> reqs;
    std::vector<size_t> rows;
    for (size_t i = 0; i < attempts.size(); ++i) {
      if (t >= attempts[i].user_turns.size()) continue;
      ChatRequest r;
      for (size_t k = 0; k < t; ++k) r.history.emplace_back(attempts[i].user_turns[k], answers[i][k]);
      r.user = attempts[i].user_turns[t];
      r.max_tokens = o.max_tokens;
      reqs.push_back(std::move(r));
      rows.push_back(i);
    }
    auto replies = model.complete(reqs);
    for (size_t k = 0; k < replies.size(); ++k) {
      CHATMILL_CHECK(replies[k].error.empty(), "model ", model.name(), " failed to answer jailbreak attempt ",
                     attempts[rows[k]].id, " turn ", t + 1, ": ", replies[k].error);
      answers[rows[k]].push_back(replies[k].text);
    }
  }
  // Every answer moderated.
  std::vector<std::string> texts;
  for (const auto& a : answers) texts.insert(texts.end(), a.begin(), a.end());
  const auto verdicts = moderate(moderator, o.moderation_prompt, texts, o.moderator_max_tokens);

  JailbreakResult res;
  std::map<std::string, std::pair<int64_t, int64_t>> by_source;  // successes, attempts
  int64_t success = 0, unreadable = 0;
  size_t v = 0;
  for (size_t i = 0; i < attempts.size(); ++i) {
    bool hit = false;
    nlohmann::ordered_json turns_json = nlohmann::ordered_json::array();
    for (const auto& ans : answers[i]) {
      const auto& vd = verdicts[v++];
      hit = hit || vd.unsafe;
      unreadable += !vd.parsed;
      turns_json.push_back({{"answer", ans}, {"unsafe", vd.unsafe}, {"moderator_parsed", vd.parsed},
                            {"moderator_output", vd.moderator_output}});
    }
    success += hit;
    auto& s = by_source[attempts[i].source_model];
    s.first += hit;
    s.second += 1;
    res.attempts.push_back({{"id", attempts[i].id}, {"source_model", attempts[i].source_model}, {"success", hit},
                            {"turns", turns_json}});
  }
  nlohmann::ordered_json per = nlohmann::ordered_json::object();
  for (const auto& [m, s] : by_source)
    per[m] = {{"attempts", s.second}, {"successes", s.first}, {"success_rate", static_cast<double>(s.first) / s.second}};
  res.summary = {{"benchmark", "jailbreak"}, {"model", model.name()}, {"moderator", moderator.name()},
                 {"attempts", attempts.size()}, {"successes", success},
                 {"success_rate", attempts.empty() ? 0.0 : static_cast<double>(success) / attempts.size()},
                 {"answers", texts.size()}, {"moderator_unparseable", unreadable}, {"per_source_model", per}};
  return res;
}

}  // namespace chatmill::eval
