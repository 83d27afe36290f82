#include "eval/mt_bench.h"

#include <chrono>
#include <fstream>
#include <set>

#include "common/error.h"
#include "common/sha256.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hash_turns(const std::vector<std::string>& turns) {
  return sha256_string(nlohmann::json(turns).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void append_json(const fs::path& file, const nlohmann::ordered_json& j) {
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::app);
  CHATMILL_CHECK(out, "cannot write ", file);
  out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

const JudgePrompt& prompt_named(const JudgeInputs& in, const std::string& name) {
  auto it = in.prompts.find(name);
  CHATMILL_CHECK(it != in.prompts.end(), "the judge prompt file has no prompt named '", name, "'");
  return it->second;
}

// The fields of a judge prompt for question q, turn t (1 or 2), with answers (one or two models).
std::map<std::string, std::string> fields(const JudgeInputs& in, const MtQuestion& q, int turn,
                                          const std::vector<const ModelAnswer*>& answers) {
  std::map<std::string, std::string> f;
  auto ref = in.references.find(q.id);
  auto ref_turn = [&](int k) { return ref != in.references.end() && ref->second.size() > static_cast<size_t>(k) ? ref->second[k] : ""; };
  if (needs_reference(q.category))
    CHATMILL_CHECK(ref != in.references.end(), "question ", q.id, " (", q.category, ") needs a reference answer; none was given");
  f["ref_answer_1"] = ref_turn(0);
  f["ref_answer_2"] = ref_turn(1);
  if (turn == 1) f["question"] = q.turns[0];
  f["question_1"] = q.turns[0];
  f["question_2"] = q.turns.size() > 1 ? q.turns[1] : "";
  auto turn_of = [](const ModelAnswer* a, size_t k) { return a->turns.size() > k ? a->turns[k] : std::string(); };
  if (answers.size() == 1) {
    f["answer"] = turn_of(answers[0], 0);
    f["answer_1"] = turn_of(answers[0], 0);
    f["answer_2"] = turn_of(answers[0], 1);
  } else {
    f["answer_a"] = turn_of(answers[0], 0);
    f["answer_b"] = turn_of(answers[1], 0);
    f["answer_a_1"] = turn_of(answers[0], 0);
    f["answer_b_1"] = turn_of(answers[1], 0);
    f["answer_a_2"] = turn_of(answers[0], 1);
    f["answer_b_2"] = turn_of(answers[1], 1);
  }
  return f;
}

ChatRequest judge_request(const std::string& system, const std::string& user, int64_t max_tokens) {
  ChatRequest r;
  r.system = system;
  r.user = user;
  r.temperature = 0.0;
  r.max_tokens = max_tokens;
  return r;
}

struct Pending {
  std::string key;
  ChatRequest request;
  nlohmann::json record;  // what is known before the judge answers
};

// Asks the judge for every pending request, caching each reply that came; throws afterwards if any failed.
void run_pending(std::vector<Pending>& pending, ChatModel& judge, JudgmentCache& cache, bool single) {
  if (pending.empty()) return;
  std::vector<ChatRequest> requests;
  for (const auto& p : pending) requests.push_back(p.request);
  auto replies = judge.complete(requests);
  std::string first_error;
  int64_t failed = 0;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (!replies[i].error.empty()) {
      if (first_error.empty()) first_error = replies[i].error;
      ++failed;
      continue;
    }
    nlohmann::json rec = pending[i].record;
    rec["judgment"] = replies[i].text;
    if (single) rec["score"] = parse_rating(replies[i].text);
    else rec["verdict"] = std::string(1, parse_verdict(replies[i].text));
    cache.add(pending[i].key, rec);
  }
  CHATMILL_CHECK(failed == 0, failed, " of ", pending.size(), " judgments failed (", first_error, "); the ",
                 pending.size() - failed, " that came are cached and will not be asked again");
}

}  // namespace

int64_t generate_mt_answers(ChatModel& model, const std::vector<MtQuestion>& questions, const AnswerOptions& o,
                            const fs::path& answers_file) {
  CHATMILL_CHECK(o.chunk >= 1, "answer chunk must be at least 1");
  const auto done = load_model_answers(answers_file);
  std::vector<const MtQuestion*> todo;
  for (const auto& q : questions)
    if (!done.count(q.id) || done.at(q.id).turns.size() < q.turns.size()) todo.push_back(&q);
  int64_t made = 0;
  for (size_t start = 0; start < todo.size(); start += static_cast<size_t>(o.chunk)) {
    const size_t end = std::min(todo.size(), start + static_cast<size_t>(o.chunk));
    std::vector<std::vector<std::string>> answers(end - start);
    size_t turns = 0;
    for (size_t i = start; i < end; ++i) turns = std::max(turns, todo[i]->turns.size());
    for (size_t t = 0; t < turns; ++t) {
      std::vector<ChatRequest> reqs;
      std::vector<size_t> rows;
      for (size_t i = start; i < end; ++i) {
        const MtQuestion& q = *todo[i];
        if (t >= q.turns.size()) continue;
        ChatRequest r;
        for (size_t k = 0; k < t; ++k) r.history.emplace_back(q.turns[k], answers[i - start][k]);
        r.user = q.turns[t];
        r.max_tokens = o.max_new_tokens;
        r.temperature = o.temperature >= 0 ? o.temperature : mt_bench_temperature(q.category);  // < 1e-4: greedy
        r.seed = o.seed + static_cast<uint64_t>(q.id) * 2 + t;
        reqs.push_back(std::move(r));
        rows.push_back(i - start);
      }
      auto replies = model.complete(reqs);
      for (size_t k = 0; k < replies.size(); ++k) {
        CHATMILL_CHECK(replies[k].error.empty(), "answering question ", todo[start + rows[k]]->id, " turn ", t + 1, " with ",
                       model.name(), ": ", replies[k].error, " (", made, " answers saved in ", answers_file.string(), ")");
        answers[rows[k]].push_back(replies[k].text);
      }
    }
    for (size_t i = start; i < end; ++i) {
      ModelAnswer a;
      a.question_id = todo[i]->id;
      a.model_id = o.model_id;
      a.answer_id = sha256_string(o.model_id + ":" + std::to_string(a.question_id)).substr(0, 22);
      a.turns = answers[i - start];
      a.tstamp = now_s();
      append_model_answer(answers_file, a);
      ++made;
    }
  }
  return made;
}

JudgmentCache::JudgmentCache(fs::path file) : file_(std::move(file)) {
  if (!fs::exists(file_)) return;
  std::ifstream in(file_);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    // A torn last line (a killed run) is skipped, as is a record without a key and a score or verdict: that
    // judgment is asked again.
    const bool usable = j.is_object() && j.contains("key") && j["key"].is_string() &&
                        ((j.contains("score") && j["score"].is_number()) ||
                         (j.contains("verdict") && j["verdict"].is_string() && !j["verdict"].get<std::string>().empty()));
    if (usable) entries_[j["key"]] = j;
  }
}

const nlohmann::json* JudgmentCache::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void JudgmentCache::add(const std::string& key, nlohmann::json record) {
  record["key"] = key;
  if (file_.has_parent_path()) fs::create_directories(file_.parent_path());
  std::ofstream out(file_, std::ios::app);
  CHATMILL_CHECK(out, "cannot write the judgment cache ", file_);
  out << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out.flush();
  entries_[key] = std::move(record);
}

std::map<int64_t, std::vector<std::string>> load_references(const fs::path& file) {
  std::map<int64_t, std::vector<std::string>> out;
  for (auto& [id, a] : load_model_answers(file)) out[id] = a.turns;
  return out;
}

void check_answers_cover(const std::vector<MtQuestion>& qs, const std::map<int64_t, ModelAnswer>& answers,
                         const std::string& source) {
  std::set<int64_t> ids;
  for (const auto& q : qs) {
    ids.insert(q.id);
    auto it = answers.find(q.id);
    CHATMILL_CHECK(it != answers.end(), "answer file ", source, " has no answer to question ", q.id);
    CHATMILL_CHECK(it->second.turns.size() >= q.turns.size(), "answer file ", source, ": question ", q.id, " has ",
                   it->second.turns.size(), " answered turns of ", q.turns.size());
  }
  for (const auto& [id, _] : answers)
    CHATMILL_CHECK(ids.count(id), "answer file ", source, " answers question ", id,
                   ", which is not in the question file: answers and questions do not belong together");
}

nlohmann::ordered_json judge_single(const JudgeInputs& in, const std::map<int64_t, ModelAnswer>& answers, ChatModel& judge,
                                    JudgmentCache& cache, const fs::path& judgments_file) {
  std::vector<Pending> pending;
  std::vector<std::pair<std::string, nlohmann::json>> order;  // (key, record) for every judgment, in order
  for (const auto& q : in.questions) {
    const ModelAnswer& a = answers.at(q.id);
    for (int turn = 1; turn <= static_cast<int>(std::min<size_t>(2, q.turns.size())); ++turn) {
      const bool ref = needs_reference(q.category);
      const std::string name = std::string(ref ? "single-math-v1" : "single-v1") + (turn == 2 ? "-multi-turn" : "");
      const JudgePrompt& p = prompt_named(in, name);
      const std::string user = fill_template(p.prompt_template, fields(in, q, turn, {&a}),
                                             "question " + std::to_string(q.id) + ", prompt " + name);
      const std::string key = sha256_string(nlohmann::json({q.id, turn, hash_turns(a.turns), judge.name(), name}).dump());
      nlohmann::json rec = {{"question_id", q.id}, {"model", a.model_id}, {"turn", turn}, {"category", q.category},
                            {"judge", judge.name()}, {"prompt", name}, {"user_prompt", user}};
      order.emplace_back(key, rec);
      if (!cache.find(key)) pending.push_back({key, judge_request(p.system_prompt, user, in.judge_max_tokens), rec});
    }
  }
  run_pending(pending, judge, cache, true);

  std::map<int, std::vector<double>> by_turn;
  std::map<std::string, std::vector<double>> by_cat;
  std::vector<double> all;
  int64_t invalid = 0;
  for (const auto& [key, rec] : order) {
    const nlohmann::json& done = *cache.find(key);
    append_json(judgments_file, done);
    const double s = done["score"];
    if (s < 0) {
      ++invalid;  // no [[n]] or [n]: dropped, as FastChat drops -1
      continue;
    }
    all.push_back(s);
    by_turn[rec["turn"].get<int>()].push_back(s);
    by_cat[rec["category"].get<std::string>()].push_back(s);
  }
  auto mean = [](const std::vector<double>& v) {
    double t = 0;
    for (double x : v) t += x;
    return v.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(t / static_cast<double>(v.size()));
  };
  nlohmann::ordered_json cats = nlohmann::ordered_json::object();
  for (const auto& [c, v] : by_cat) cats[c] = mean(v);
  return {{"benchmark", "mt-bench"}, {"mode", "single"}, {"model", answers.empty() ? "" : answers.begin()->second.model_id},
          {"judge", judge.name()}, {"score", mean(all)}, {"turn_1", mean(by_turn[1])}, {"turn_2", mean(by_turn[2])},
          {"per_category", cats}, {"judgments", order.size()}, {"invalid", invalid},
          {"newly_judged", pending.size()}};
}

nlohmann::ordered_json judge_pairwise(const JudgeInputs& in, const std::map<int64_t, ModelAnswer>& a,
                                      const std::map<int64_t, ModelAnswer>& b, ChatModel& judge, JudgmentCache& cache,
                                      const fs::path& judgments_file) {
  std::vector<Pending> pending;
  struct Game {
    std::string key_ab, key_ba;
    int64_t qid;
    int turn;
  };
  std::vector<Game> games;
  std::vector<std::pair<std::string, nlohmann::json>> order;
  for (const auto& q : in.questions) {
    const ModelAnswer& x = a.at(q.id);
    const ModelAnswer& y = b.at(q.id);
    for (int turn = 1; turn <= static_cast<int>(std::min<size_t>(2, q.turns.size())); ++turn) {
      const bool ref = needs_reference(q.category);
      const std::string name = std::string(ref ? "pair-math-v1" : "pair-v2") + (turn == 2 ? "-multi-turn" : "");
      const JudgePrompt& p = prompt_named(in, name);
      Game g{"", "", q.id, turn};
      for (int swap = 0; swap < 2; ++swap) {
        const ModelAnswer* first = swap ? &y : &x;
        const ModelAnswer* second = swap ? &x : &y;
        const std::string user = fill_template(p.prompt_template, fields(in, q, turn, {first, second}),
                                               "question " + std::to_string(q.id) + ", prompt " + name);
        const std::string key = sha256_string(nlohmann::json({q.id, turn, hash_turns(first->turns), hash_turns(second->turns),
                                                              judge.name(), name}).dump());
        nlohmann::json rec = {{"question_id", q.id}, {"model_a", first->model_id}, {"model_b", second->model_id},
                              {"turn", turn}, {"judge", judge.name()}, {"prompt", name}, {"user_prompt", user}};
        (swap ? g.key_ba : g.key_ab) = key;
        order.emplace_back(key, rec);
        if (!cache.find(key)) pending.push_back({key, judge_request(p.system_prompt, user, in.judge_max_tokens), rec});
      }
      games.push_back(g);
    }
  }
  run_pending(pending, judge, cache, false);
  for (const auto& [key, _] : order) append_json(judgments_file, *cache.find(key));
  int64_t win = 0, loss = 0, tie = 0, inconsistent = 0;
  for (const auto& g : games) {
    const char v1 = cache.find(g.key_ab)->at("verdict").get<std::string>()[0];  // model a in position A
    const char v2 = cache.find(g.key_ba)->at("verdict").get<std::string>()[0];  // model a in position B
    const int w1 = v1 == 'A' ? 1 : v1 == 'B' ? -1 : 0;
    const int w2 = v2 == 'B' ? 1 : v2 == 'A' ? -1 : 0;
    if (w1 == w2) {
      (w1 > 0 ? win : w1 < 0 ? loss : tie)++;
    } else {
      ++tie;  // the verdict depends on the order: a tie, as FastChat counts it
      ++inconsistent;
    }
  }
  const double n = static_cast<double>(games.size());
  const std::string ma = a.empty() ? "" : a.begin()->second.model_id, mb = b.empty() ? "" : b.begin()->second.model_id;
  return {{"benchmark", "mt-bench"}, {"mode", "pairwise"}, {"model_a", ma}, {"model_b", mb}, {"judge", judge.name()},
          {"games", games.size()}, {"win", win}, {"tie", tie}, {"loss", loss}, {"inconsistent", inconsistent},
          {"win_rate", win / n}, {"tie_rate", tie / n}, {"loss_rate", loss / n}, {"newly_judged", pending.size()}};
}

}  // namespace chatmill::eval
