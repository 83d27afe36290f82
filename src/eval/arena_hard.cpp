#include "eval/arena_hard.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "common/sha256.h"
#include "eval/jsonl.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

std::vector<ArenaPrompt> load_arena_prompts(const fs::path& file) {
  std::vector<ArenaPrompt> out;
  for_each_json_line(file, [&](const nlohmann::json& j, const std::string& where) {
    out.push_back({json_string(j, "prompt_id", where), json_string(j, "prompt", where)});
  });
  CHATMILL_CHECK(!out.empty(), "the prompt file ", file, " is empty");
  return out;
}

double PromptRating::mean() const {
  double t = 0;
  int n = 0;
  for (double s : scores)
    if (s >= 0) t += s, ++n;
  return n == 0 ? -1 : t / n;
}

std::vector<PromptRating> rate_prompts(const std::vector<ChatModel*>& raters, const std::vector<ArenaPrompt>& prompts,
                                       const std::string& rubric, JudgmentCache& cache, int64_t max_tokens) {
  CHATMILL_CHECK(!raters.empty(), "rating prompts needs at least one rater");
  const std::string rubric_hash = sha256_string(rubric).substr(0, 16);
  std::vector<PromptRating> out(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) out[i].prompt = prompts[i];
  for (ChatModel* rater : raters) {
    std::vector<ChatRequest> reqs;
    std::vector<std::pair<size_t, std::string>> pending;  // prompt index, cache key
    std::vector<std::string> keys(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      keys[i] = sha256_string(nlohmann::json({prompts[i].text, rater->name(), rubric_hash}).dump());
      if (cache.find(keys[i])) continue;
      ChatRequest r;
      r.user = fill_template(rubric, {{"prompt", prompts[i].text}}, "the rubric prompt");
      r.max_tokens = max_tokens;
      reqs.push_back(std::move(r));
      pending.emplace_back(i, keys[i]);
    }
    auto replies = rater->complete(reqs);
    int64_t failed = 0;
    std::string first;
    for (size_t k = 0; k < replies.size(); ++k) {
      if (!replies[k].error.empty()) {
        if (first.empty()) first = replies[k].error;
        ++failed;
        continue;
      }
      const auto& p = prompts[pending[k].first];
      cache.add(pending[k].second, {{"prompt_id", p.id}, {"rater", rater->name()}, {"rubric", rubric_hash},
                                    {"judgment", replies[k].text}, {"score", parse_rating(replies[k].text)}});
    }
    CHATMILL_CHECK(failed == 0, failed, " of ", reqs.size(), " ratings by ", rater->name(), " failed (", first,
                   "); the others are cached and will not be asked again");
    for (size_t i = 0; i < prompts.size(); ++i) out[i].scores.push_back(cache.find(keys[i])->at("score").get<double>());
  }
  return out;
}

std::vector<PromptRating> select_agreed(const std::vector<PromptRating>& ratings, double threshold) {
  std::vector<PromptRating> out;
  for (const auto& r : ratings)
    if (std::all_of(r.scores.begin(), r.scores.end(), [&](double s) { return s >= threshold; })) out.push_back(r);
  return out;
}

nlohmann::ordered_json validate_top_bottom(const std::vector<PromptRating>& ratings, ChatModel& strong, ChatModel& weak,
                                           ChatModel& judge, const std::map<std::string, JudgePrompt>& judge_prompts,
                                           JudgmentCache& cache, const fs::path& out_dir, const TopBottomOptions& o) {
  std::vector<const PromptRating*> top, bottom;
  for (const auto& r : ratings) {
    if (r.mean() > o.top_above) top.push_back(&r);
    if (r.mean() >= 0 && r.mean() < o.bottom_below) bottom.push_back(&r);
  }
  // Highest first / lowest first; ties in input order.
  std::stable_sort(top.begin(), top.end(), [](auto* a, auto* b) { return a->mean() > b->mean(); });
  std::stable_sort(bottom.begin(), bottom.end(), [](auto* a, auto* b) { return a->mean() < b->mean(); });
  if (static_cast<int64_t>(top.size()) > o.top_n) top.resize(o.top_n);
  if (static_cast<int64_t>(bottom.size()) > o.bottom_n) bottom.resize(o.bottom_n);

  nlohmann::ordered_json res = {{"benchmark", "arena-hard-validation"}, {"strong", strong.name()}, {"weak", weak.name()},
                                {"judge", judge.name()}};
  for (const auto& [group, list] : {std::pair<std::string, std::vector<const PromptRating*>>{"top", top}, {"bottom", bottom}}) {
    if (list.empty()) {
      res[group] = {{"prompts", 0}};
      continue;
    }
    JudgeInputs in;
    in.prompts = judge_prompts;
    nlohmann::ordered_json ids = nlohmann::ordered_json::array();
    for (size_t i = 0; i < list.size(); ++i) {
      in.questions.push_back({static_cast<int64_t>(i + 1), "arena", {list[i]->prompt.text}});
      ids.push_back(list[i]->prompt.id);
    }
    const fs::path dir = out_dir / group;
    // Answer files by model name, so another model never reuses them.
    auto answer = [&](ChatModel& m) {
      std::string file = m.name();
      for (auto& c : file)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
      const fs::path f = dir / "answers" / (file + ".jsonl");
      AnswerOptions ao;
      ao.max_new_tokens = o.max_tokens;
      ao.temperature = 0;
      ao.model_id = m.name();
      generate_mt_answers(m, in.questions, ao, f);
      auto got = load_model_answers(f);
      check_answers_cover(in.questions, got, f.string());
      return got;
    };
    auto a = answer(strong);
    auto b = answer(weak);
    auto pr = judge_pairwise(in, a, b, judge, cache, dir / "judgments.jsonl");
    res[group] = {{"prompts", list.size()}, {"prompt_ids", ids}, {"strong_win_rate", pr["win_rate"]},
                  {"tie_rate", pr["tie_rate"]}, {"weak_win_rate", pr["loss_rate"]}, {"inconsistent", pr["inconsistent"]}};
  }
  return res;
}

}  // namespace chatmill::eval
